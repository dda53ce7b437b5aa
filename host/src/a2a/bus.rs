//! A2A over the bus (orchestrator–worker): a skill served through topics instead of HTTP, so
//! workers in one consumer group share the load and a request outlives a worker crash.
//!
//! The envelope (the binding `BINDING` in agent cards):
//!
//! - **Request**: a record on `agent.task-requests.{skill}`, keyed by a request id, with headers
//!   `correlation-id` (the caller's), `a2a-request-id` and `a2a-reply-to` (the results topic),
//!   and as payload the params of an A2A 1.0 `SendMessage`: `{"message": {…}}`.
//! - **Result**: a record on the reply-to topic (`agent.task-results.{skill}` by default),
//!   keyed by the request id, with the same `correlation-id` and `a2a-request-id`, and as
//!   payload the result of `SendMessage`: `{"task": {…}}`.
//!
//! Workers consume requests in the group `agenthost.a2a.{skill}` and commit a request only
//! after its result is published: a worker killed mid-task leaves the request to another. A
//! requester matches results by request id and ignores the rest (a request redelivered after
//! a crash may be answered twice; the first answer wins).
//!
//! The envelope is the host's: agents cannot set `a2a-*` or `agenthost-*` headers (the publish
//! capability strips them), a reply-to outside `agent.task-results.*` is refused, and a result
//! an agent published (it carries the `agenthost-agent` provenance header the host stamps on
//! every agent's record) is ignored, so an agent can neither steer a worker's result to a
//! topic of its choosing nor answer someone else's request.

use super::model::{Message, Task};
use super::wire::{self, Dialect};
use crate::agent::{Acks, AgentVersion};
use crate::bus::{self, Bus, Outgoing, Record, StartAt, headers};
use crate::delivery::{Attempt, Handler};
use crate::invocation::InvocationError;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// The `protocolBinding` of the bus interface in agent cards.
pub const BINDING: &str = "https://agenthost.dev/a2a/bindings/bus/v1";

pub use crate::config::{request_topic, result_topic};

/// The consumer group of a skill's workers, across hosts.
pub fn worker_group(skill: &str) -> String {
    format!("agenthost.a2a.{skill}")
}

fn header<'a>(record: &'a Record, key: &str) -> Option<&'a str> {
    record
        .headers
        .iter()
        .rev()
        .find(|h| h.key == key)
        .and_then(|h| std::str::from_utf8(&h.value).ok())
}

/// The bus binding's worker side as a delivery handler: each record of
/// `agent.task-requests.<skill>` is a task request, run on the agent, its result published.
pub struct SkillRequests {
    pub skill: String,
    pub a2a: Arc<super::A2a>,
    pub bus: Arc<dyn Bus>,
}

#[async_trait::async_trait]
impl Handler for SkillRequests {
    async fn handle(
        &self,
        version: &AgentVersion,
        attempt: Attempt<'_>,
        // Results go out through the shared producer: bus-served skills stay at-least-once.
        _txn: Option<Arc<dyn bus::TxnPublisher>>,
    ) -> Result<Acks, InvocationError> {
        serve_request(
            &self.a2a,
            self.bus.as_ref(),
            version,
            &self.skill,
            attempt.record,
            attempt.correlation_id,
        )
        .await
        .map(|()| Acks::none())
    }
}

/// The worker side: runs `agent` on one request record and publishes the result. An error
/// means the request is not finished (retried, then dead-lettered); a task that failed is a
/// result like any other.
pub async fn serve_request(
    a2a: &super::A2a,
    bus: &dyn Bus,
    agent: &AgentVersion,
    skill: &str,
    record: &Record,
    correlation_id: &str,
) -> Result<(), InvocationError> {
    let params: serde_json::Value = serde_json::from_slice(&record.payload)
        .map_err(|e| InvocationError::Rejected(format!("the A2A task request is not JSON: {e}")))?;
    let send = wire::parse_send(&params, Dialect::V1).map_err(|e| {
        InvocationError::Rejected(format!("malformed A2A task request: {}", e.message))
    })?;
    let request_id = header(record, headers::A2A_REQUEST_ID)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{}-{}-{}", record.topic, record.partition, record.offset));
    let reply_to = reply_topic(record, skill).map_err(InvocationError::Rejected)?;
    let task = a2a
        .service
        .send_and_wait(
            &agent.name,
            send.message,
            correlation_id,
            0,
            &format!("bus:{skill}"),
        )
        .await
        .map_err(|e| InvocationError::Retry(format!("cannot run the task: {}", e.message)))?;
    let payload = wire::send_result(&task, Dialect::V1, wire::View::full(None));
    let mut headers = Vec::new();
    bus::set_header(
        &mut headers,
        headers::CORRELATION_ID,
        correlation_id.as_bytes(),
    );
    bus::set_header(&mut headers, headers::A2A_REQUEST_ID, request_id.as_bytes());
    bus::set_header(&mut headers, "content-type", b"application/json");
    bus.publish(Outgoing {
        topic: reply_to,
        key: Some(request_id.into_bytes()),
        payload: payload.to_string().into_bytes(),
        headers,
    })
    .await
    .map_err(|e| InvocationError::Retry(format!("cannot publish the task result: {e}")))?;
    Ok(())
}

/// Where a request's result goes: its `a2a-reply-to`, which must be a results topic, or the
/// skill's own results topic.
fn reply_topic(record: &Record, skill: &str) -> Result<String, String> {
    let Some(reply_to) = header(record, headers::A2A_REPLY_TO) else {
        return Ok(result_topic(skill));
    };
    bus::validate_topic(reply_to)
        .map_err(|e| format!("the request's a2a-reply-to is not a topic: {e}"))?;
    if !reply_to.starts_with("agent.task-results.") {
        return Err(format!(
            "the request's a2a-reply-to {reply_to:?} is not a results topic (agent.task-results.*)"
        ));
    }
    Ok(reply_to.to_owned())
}

/// Requests waiting for their result, by request id.
type Pending = Mutex<HashMap<String, oneshot::Sender<Result<Task, String>>>>;

/// The requester side: publishes requests and hands each result to the call waiting for it.
pub struct BusRequester {
    bus: Arc<dyn Bus>,
    /// Skills this host reaches over the bus (`[a2a] bus_skills`).
    skills: HashSet<String>,
    pending: Arc<Pending>,
    /// Skills whose results topic is being read.
    reading: tokio::sync::Mutex<HashSet<String>>,
    stop: CancellationToken,
}

/// Forgets a pending request when its caller gives up (the invocation timed out).
struct PendingGuard<'a> {
    pending: &'a Pending,
    id: String,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl BusRequester {
    pub fn new(bus: Arc<dyn Bus>, skills: &[String], stop: CancellationToken) -> Self {
        Self {
            bus,
            skills: skills.iter().cloned().collect(),
            pending: Arc::default(),
            reading: tokio::sync::Mutex::new(HashSet::new()),
            stop,
        }
    }

    pub fn serves(&self, skill: &str) -> bool {
        self.skills.contains(skill)
    }

    /// Sends `message` to the workers of `skill` and waits for the result.
    pub async fn send(
        &self,
        skill: &str,
        message: &Message,
        correlation_id: &str,
        timeout: Duration,
    ) -> Result<Task, String> {
        self.ensure_reading(skill).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), tx);
        let _guard = PendingGuard {
            pending: &self.pending,
            id: id.clone(),
        };
        let mut headers = Vec::new();
        bus::set_header(
            &mut headers,
            headers::CORRELATION_ID,
            correlation_id.as_bytes(),
        );
        bus::set_header(&mut headers, headers::A2A_REQUEST_ID, id.as_bytes());
        bus::set_header(
            &mut headers,
            headers::A2A_REPLY_TO,
            result_topic(skill).as_bytes(),
        );
        bus::set_header(&mut headers, "content-type", b"application/json");
        let payload = json!({ "message": wire::message_json(message, Dialect::V1) });
        self.bus
            .publish(Outgoing {
                topic: request_topic(skill),
                key: Some(id.clone().into_bytes()),
                payload: payload.to_string().into_bytes(),
                headers,
            })
            .await
            .map_err(|e| format!("cannot publish the task request: {e}"))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the host stopped before the result arrived".into()),
            Err(_) => Err(format!(
                "no result on {} within {}",
                result_topic(skill),
                humantime::format_duration(timeout)
            )),
        }
    }

    /// Starts reading the skill's results topic (from its current end) unless it is read
    /// already. Returns once the reader is positioned, so no result published later is missed.
    async fn ensure_reading(&self, skill: &str) -> Result<(), String> {
        let mut reading = self.reading.lock().await;
        if reading.contains(skill) {
            return Ok(());
        }
        let topic = result_topic(skill);
        let mut reader = self
            .bus
            .read(&topic, StartAt::End)
            .await
            .map_err(|e| format!("cannot read {topic}: {e}"))?;
        reading.insert(skill.to_owned());
        let pending = self.pending.clone();
        let bus = self.bus.clone();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            loop {
                let record = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = reader.next() => r,
                };
                match record {
                    Ok(record) => deliver_result(&pending, &record),
                    Err(error) => {
                        tracing::warn!(topic, %error, "reading A2A results failed; reopening");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        match bus.read(&topic, StartAt::End).await {
                            Ok(r) => reader = r,
                            Err(error) => tracing::warn!(topic, %error, "cannot reopen"),
                        }
                    }
                }
            }
        });
        Ok(())
    }
}

fn deliver_result(pending: &Pending, record: &Record) {
    let Some(id) = header(record, headers::A2A_REQUEST_ID) else {
        return;
    };
    // Published by an agent, not by a worker host: a forgery, whatever its request id.
    if let Some(agent) = header(record, headers::AGENT) {
        tracing::warn!(
            topic = record.topic,
            partition = record.partition,
            offset = record.offset,
            agent,
            "an A2A result published by an agent is ignored"
        );
        return;
    }
    let Some(waiting) = pending.lock().unwrap_or_else(|p| p.into_inner()).remove(id) else {
        // Another host's request, or an answer that came twice.
        return;
    };
    let parsed = serde_json::from_slice::<serde_json::Value>(&record.payload)
        .map_err(|e| e.to_string())
        .and_then(|v| wire::parse_send_result(&v));
    let _ = waiting.send(parsed.map_err(|error| {
        format!(
            "malformed result at {} partition {} offset {}: {error}",
            record.topic, record.partition, record.offset
        )
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(headers: &[(&str, &str)]) -> Record {
        Record {
            topic: "agent.task-results.s".into(),
            partition: 0,
            offset: 7,
            key: None,
            payload:
                br#"{"task":{"id":"t","contextId":"c","status":{"state":"TASK_STATE_COMPLETED"}}}"#
                    .to_vec(),
            headers: headers
                .iter()
                .map(|(k, v)| bus::Header {
                    key: (*k).into(),
                    value: v.as_bytes().to_vec(),
                })
                .collect(),
            timestamp_ms: 0,
        }
    }

    #[test]
    fn a_reply_to_outside_the_results_topics_is_refused() {
        assert_eq!(
            reply_topic(&record(&[]), "s").unwrap(),
            "agent.task-results.s"
        );
        assert_eq!(
            reply_topic(
                &record(&[(headers::A2A_REPLY_TO, "agent.task-results.other")]),
                "s"
            )
            .unwrap(),
            "agent.task-results.other"
        );
        let err = reply_topic(
            &record(&[(headers::A2A_REPLY_TO, "secrets.exfiltrated.v1")]),
            "s",
        )
        .unwrap_err();
        assert!(err.contains("not a results topic"), "{err}");
    }

    #[test]
    fn a_result_an_agent_published_does_not_answer_a_request() {
        let pending: Pending = Mutex::default();
        let (tx, mut rx) = oneshot::channel();
        pending.lock().unwrap().insert("r1".into(), tx);
        deliver_result(
            &pending,
            &record(&[
                (headers::A2A_REQUEST_ID, "r1"),
                ("agenthost-agent", "squatter"),
            ]),
        );
        assert!(rx.try_recv().is_err(), "the forged result was taken");
        deliver_result(&pending, &record(&[(headers::A2A_REQUEST_ID, "r1")]));
        assert!(rx.try_recv().is_ok());
    }
}
