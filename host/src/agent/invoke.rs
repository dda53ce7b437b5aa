//! Invoking an agent: one bus event, a batch of them through `on-events`, or one A2A message
//! or MCP tool call.
//! Every invocation takes the same path: its subjects are announced in the audit log before
//! the agent runs (capability `event`, `a2a.message` or `mcp.serve`), it runs in an `invocation` span, and
//! it is concluded — each failed subject audited, each counted in the metrics. With the
//! capability uses in between, that is one request's path through the agents (`agenthost
//! trace`).

use super::AgentVersion;
use super::acks::Acks;
use super::instance::{Begin, Exports};
use super::{event_target, to_event};
use crate::audit::{AuditEntry, AuditLog, Outcome};
use crate::bus::{Record, TxnPublisher};
use crate::invocation::InvocationError;
use crate::metrics::InvocationKind;
use crate::runtime::StoreData;
use crate::wit::{agent, types};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::Store;

/// What an invocation is for — one event or message (a batch has several) — for its audit
/// entries and metrics.
struct Subject<'a> {
    correlation_id: &'a str,
    /// The card skill the caller addressed (an MCP tool's), for `invocation.skill`.
    skill: Option<&'a str>,
    /// `topic[partition]@offset`, or `task <id>`.
    target: String,
    /// For a redelivered event, which attempt this is.
    detail: String,
}

/// The audit log's name for a subject of `kind`.
fn capability(kind: InvocationKind) -> &'static str {
    match kind {
        InvocationKind::Event => "event",
        InvocationKind::Message => "a2a.message",
        InvocationKind::Tool => "mcp.serve",
    }
}

impl AgentVersion {
    /// Delivers one bus event to an instance. The event is finished once the returned
    /// acknowledgements of the records it sent are in.
    pub async fn on_event(&self, event: agent::Event) -> Result<Acks, InvocationError> {
        self.on_event_in(event, None).await
    }
    /// Delivers one bus record as its `on-event` (attempt `attempt`, 1 for the first), its
    /// publishes joining `txn` (exactly-once delivery), if given.
    pub async fn on_record(
        &self,
        record: &Record,
        correlation_id: &str,
        attempt: u32,
        txn: Option<Arc<dyn TxnPublisher>>,
    ) -> Result<Acks, InvocationError> {
        self.on_event_in(to_event(record, correlation_id, attempt), txn)
            .await
    }
    /// Delivers bus records (each with its correlation id and attempt) to one instance through
    /// `on-events`: see [`AgentVersion::on_events`].
    pub async fn on_records(
        &self,
        records: Vec<(&Record, &str, u32)>,
    ) -> Vec<Result<Acks, InvocationError>> {
        let events = records
            .into_iter()
            .map(|(record, correlation_id, attempt)| to_event(record, correlation_id, attempt))
            .collect();
        self.on_events(events).await
    }
    /// Delivers one bus event whose publishes join `txn` (exactly-once delivery), if given.
    pub async fn on_event_in(
        &self,
        event: agent::Event,
        txn: Option<Arc<dyn TxnPublisher>>,
    ) -> Result<Acks, InvocationError> {
        let correlation_id = event.correlation_id.clone();
        let subject = Subject {
            correlation_id: &correlation_id,
            skill: None,
            target: event_target(&event.topic, event.partition, event.offset),
            detail: attempt_detail(event.attempt),
        };
        self.invoke(
            InvocationKind::Event,
            subject,
            txn,
            move |exports, store| {
                Box::pin(async move {
                    exports
                        .plugin
                        .agenthost_agent_agent()
                        .call_on_event(store, &event)
                        .await
                })
            },
        )
        .await
        .map(|((), acks)| acks)
    }

    /// Delivers one A2A message, part of task `task_id`, to an instance.
    pub async fn on_message(
        &self,
        message: types::Message,
        correlation_id: &str,
        task_id: &str,
    ) -> Result<types::Reply, InvocationError> {
        let subject = Subject {
            correlation_id,
            skill: None,
            target: format!("task {task_id}"),
            detail: String::new(),
        };
        self.message_in(InvocationKind::Message, subject, message)
            .await
    }

    /// Delivers one MCP call of tool `tool` (audited as `mcp.serve` on `tool NAME`), as a
    /// message, to an instance; `invocation.skill` tells the agent it is for card skill
    /// `skill`.
    pub async fn on_tool_call(
        &self,
        message: types::Message,
        correlation_id: &str,
        tool: &str,
        skill: &str,
    ) -> Result<types::Reply, InvocationError> {
        let subject = Subject {
            correlation_id,
            skill: Some(skill),
            target: format!("tool {tool}"),
            detail: String::new(),
        };
        self.message_in(InvocationKind::Tool, subject, message)
            .await
    }

    async fn message_in(
        &self,
        kind: InvocationKind,
        subject: Subject<'_>,
        message: types::Message,
    ) -> Result<types::Reply, InvocationError> {
        let (reply, acks) = self
            .invoke(kind, subject, None, move |exports, store| {
                Box::pin(async move {
                    exports
                        .plugin
                        .agenthost_agent_agent()
                        .call_on_message(store, &message)
                        .await
                })
            })
            .await?;
        // The reply says the work is done: what it sent must be stored first.
        acks.wait().await?;
        Ok(reply)
    }

    /// One subject through an export that answers `result<_, failure>`: the agent's own
    /// failure becomes an invocation error.
    async fn invoke<R: Send>(
        &self,
        kind: InvocationKind,
        subject: Subject<'_>,
        txn: Option<Arc<dyn TxnPublisher>>,
        call: impl for<'a> FnOnce(
            &'a Exports,
            &'a mut Store<StoreData>,
        ) -> futures::future::BoxFuture<
            'a,
            wasmtime::Result<Result<R, types::Failure>>,
        >,
    ) -> Result<(R, Acks), InvocationError> {
        let started = Instant::now();
        let subjects = [subject];
        self.announce(kind, &subjects);
        let [subject] = &subjects;
        let correlation_id = subject.correlation_id;
        // Everything the invocation logs (denials, MCP and A2A calls, failures) is inside this
        // span, and it is what OTLP export sends: agent, version, kind, correlation id.
        let span = tracing::info_span!(
            "invocation",
            agent = &*self.name,
            version = &*self.version,
            kind = kind.as_str(),
            correlation_id,
            outcome = tracing::field::Empty,
        );
        let begin = Begin::One {
            correlation_id,
            txn,
            skill: subject.skill,
        };
        let outcome = tracing::Instrument::instrument(self.run(begin, call), span.clone())
            .await
            .and_then(|(r, sent)| {
                let acks = Acks::whole(sent).failing_as(self.unstored_entry(kind, subject));
                r.map(|value| (value, acks)).map_err(failure)
            });
        self.conclude(kind, &subjects, [outcome.as_ref().err()], started, &span);
        outcome
    }

    /// Delivers several bus events to one instance through `on-events` (see
    /// [`AgentVersion::takes_batches`]). Each event gets its own outcome: its acknowledgements
    /// to wait for, or why it failed. An error of the whole call (a trap, a limit, a timeout, a
    /// wrong number of results) is every event's outcome.
    ///
    /// Announced, audited and counted per event, as if each were delivered alone.
    pub async fn on_events(&self, events: Vec<agent::Event>) -> Vec<Result<Acks, InvocationError>> {
        let started = Instant::now();
        let count = events.len();
        let ids: Vec<String> = events.iter().map(|e| e.correlation_id.clone()).collect();
        let subjects: Vec<Subject> = events
            .iter()
            .zip(&ids)
            .map(|(e, id)| Subject {
                correlation_id: id,
                skill: None,
                target: event_target(&e.topic, e.partition, e.offset),
                detail: attempt_detail(e.attempt),
            })
            .collect();
        self.announce(InvocationKind::Event, &subjects);
        let span = tracing::info_span!(
            "invocation",
            agent = &*self.name,
            version = &*self.version,
            kind = "events",
            // As i64: OpenTelemetry has no unsigned integers, and a u64 is exported as text.
            events = i64::try_from(count).unwrap_or(i64::MAX),
            correlation_id = ids.first().map_or("", String::as_str),
            outcome = tracing::field::Empty,
            failed = tracing::field::Empty,
        );
        let call = tracing::Instrument::instrument(
            self.run(Begin::Batch(&ids), move |exports, store| {
                Box::pin(async move {
                    let Some(guest) = &exports.events else {
                        wasmtime::bail!("the component does not export on-events");
                    };
                    guest.call_on_events(store, &events).await
                })
            }),
            span.clone(),
        )
        .await;
        let outcomes: Vec<Result<Acks, InvocationError>> = match call {
            Ok((results, _)) if results.len() != count => {
                let err = InvocationError::Trap(format!(
                    "on-events returned {} results for {count} events",
                    results.len()
                ));
                (0..count).map(|_| Err(err.clone())).collect()
            }
            Ok((results, sent)) => results
                .into_iter()
                .zip(Acks::per_event(sent, count))
                .zip(&subjects)
                .map(|((result, acks), subject)| {
                    let failing = self.unstored_entry(InvocationKind::Event, subject);
                    result.map_err(failure).map(|()| acks.failing_as(failing))
                })
                .collect(),
            Err(err) => (0..count).map(|_| Err(err.clone())).collect(),
        };
        let errors = outcomes.iter().map(|o| o.as_ref().err());
        self.conclude(InvocationKind::Event, &subjects, errors, started, &span);
        outcomes
    }

    /// Before the agent runs: each subject in the audit log.
    fn announce(&self, kind: InvocationKind, subjects: &[Subject]) {
        for subject in subjects {
            self.audit(
                subject.correlation_id,
                capability(kind),
                &subject.target,
                Outcome::Allowed,
                &subject.detail,
            );
        }
    }

    /// After it ran: each failed subject audited, each subject counted, and the span given
    /// the first failure as its outcome and how many failed.
    fn conclude<'e>(
        &self,
        kind: InvocationKind,
        subjects: &[Subject],
        errors: impl IntoIterator<Item = Option<&'e InvocationError>>,
        started: Instant,
        span: &tracing::Span,
    ) {
        let elapsed = started.elapsed();
        let mut first = None;
        let mut failed = 0usize;
        for (subject, error) in subjects.iter().zip(errors) {
            if let Some(err) = error {
                first.get_or_insert(err);
                failed += 1;
                self.audit(
                    subject.correlation_id,
                    capability(kind),
                    &subject.target,
                    Outcome::Failed,
                    &err.to_string(),
                );
            }
            self.metrics.record_invocation(kind, elapsed, error);
        }
        span.record("outcome", first.map_or("ok", InvocationError::label));
        // Declared by a batch's span only; a single subject's ignores it.
        span.record("failed", i64::try_from(failed).unwrap_or(i64::MAX));
    }

    /// Where and what [`Acks::wait`] records when a sent record is not stored: the subject's
    /// failure, as a failed invocation would be audited.
    fn unstored_entry(
        &self,
        kind: InvocationKind,
        subject: &Subject,
    ) -> (Arc<AuditLog>, AuditEntry) {
        let entry = AuditEntry::new(
            &*self.name,
            &*self.version,
            subject.correlation_id,
            capability(kind),
            &subject.target,
            Outcome::Failed,
        );
        (self.grants.audit.clone(), entry)
    }
}

/// The audit detail of a subject: which attempt, for a redelivered event.
fn attempt_detail(attempt: u32) -> String {
    match attempt {
        0 | 1 => String::new(),
        n => format!("attempt {n}"),
    }
}

fn failure(f: types::Failure) -> InvocationError {
    match f {
        types::Failure::Retry(reason) => InvocationError::Retry(reason),
        types::Failure::Reject(reason) => InvocationError::Rejected(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redelivery_says_which_attempt_it_is() {
        assert_eq!(attempt_detail(1), "");
        assert_eq!(attempt_detail(3), "attempt 3");
    }

    #[test]
    fn an_agents_own_failure_says_whether_to_retry() {
        let retry = failure(types::Failure::Retry("busy".into()));
        assert_eq!(retry, InvocationError::Retry("busy".into()));
        assert!(!retry.is_permanent());
        assert!(failure(types::Failure::Reject("bad".into())).is_permanent());
        assert_eq!(capability(InvocationKind::Message), "a2a.message");
        assert_eq!(capability(InvocationKind::Tool), "mcp.serve");
    }
}
