//! Dead letters: a record the agent rejected or that used up its attempts goes, unchanged, to
//! the agent's dead-letter topic with headers saying why and where it came from. Its offset
//! moves on only once the dead letter is stored.

use super::Deps;
use super::worker::{Finished, PartitionWorker};
use crate::agent::AgentVersion;
use crate::bus::{Outgoing, Record, headers, set_header};
use crate::invocation::InvocationError;
use crate::registry::AgentCell;

/// A record that went to the dead-letter topic: logged, audited and counted together, by
/// [`DeadLettered::record`], wherever it happens (with or without a transaction).
pub(super) struct DeadLettered<'a> {
    pub agent: &'a AgentVersion,
    pub record: &'a Record,
    pub correlation_id: &'a str,
    pub topic: &'a str,
    pub attempts: u32,
    pub error: &'a InvocationError,
}

impl DeadLettered<'_> {
    /// Where it is said once it is stored: the host's log, the audit log (capability
    /// `dead-letter`), the metrics and the agent's counters.
    pub fn record(&self, deps: &Deps, cell: &AgentCell) {
        let (agent, record) = (self.agent, self.record);
        tracing::warn!(agent = &*agent.name, version = &*agent.version, correlation_id = self.correlation_id,
            topic = record.topic, partition = record.partition, offset = record.offset,
            attempts = self.attempts, error = %self.error, dead_letter = self.topic, "event dead-lettered");
        agent.audit(
            self.correlation_id,
            "dead-letter",
            self.topic,
            crate::audit::Outcome::Allowed,
            &self.error.to_string(),
        );
        deps.metrics.record_dead_letter(&agent.name, &agent.version);
        cell.stats
            .dead_letters
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl PartitionWorker {
    /// Publishes the dead letter of `record` and waits until it is stored: only then may the
    /// offset move past the record. `Stopped` if the worker stops first.
    pub(super) async fn dead_letter(
        &self,
        record: &Record,
        agent: &AgentVersion,
        correlation_id: &str,
        attempts: u32,
        err: &InvocationError,
    ) -> Finished {
        let dl = dead_letter_record(record, agent, correlation_id, attempts, err);
        let what = format!("dead-letter publish to {}", dl.topic);
        let stored = retry_bus!(
            &agent.name,
            &what,
            &self.stop,
            self.deps.bus.publish(dl.clone()).await
        );
        if stored.is_none() {
            return Finished::Stopped;
        }
        DeadLettered {
            agent,
            record,
            correlation_id,
            topic: &dl.topic,
            attempts,
            error: err,
        }
        .record(&self.deps, &self.cell);
        Finished::Done
    }
}

/// The original record, addressed to the dead-letter topic, with why and where it came from.
pub fn dead_letter_record(
    record: &Record,
    agent: &AgentVersion,
    correlation_id: &str,
    attempts: u32,
    err: &InvocationError,
) -> Outgoing {
    let mut headers = record.headers.clone();
    set_header(&mut headers, headers::CORRELATION_ID, correlation_id);
    set_header(&mut headers, headers::AGENT, agent.name.as_bytes());
    set_header(
        &mut headers,
        headers::AGENT_VERSION,
        agent.version.as_bytes(),
    );
    set_header(&mut headers, headers::ATTEMPTS, attempts.to_string());
    set_header(
        &mut headers,
        headers::ERROR,
        crate::text::truncate(&err.to_string(), 4096).as_bytes(),
    );
    set_header(&mut headers, headers::SOURCE_TOPIC, record.topic.as_bytes());
    set_header(
        &mut headers,
        headers::SOURCE_PARTITION,
        record.partition.to_string(),
    );
    set_header(
        &mut headers,
        headers::SOURCE_OFFSET,
        record.offset.to_string(),
    );
    Outgoing {
        topic: agent.manifest.delivery.dead_letter.clone(),
        key: record.key.clone(),
        payload: record.payload.clone(),
        headers,
    }
}
