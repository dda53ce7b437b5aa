//! What a subscription's records are handed to. The engine decides when a record runs, on which
//! version, how often and what is committed; the handler runs it. Agents' bus events are
//! [`AgentEvents`]; the A2A bus binding's task requests are served by `a2a::bus::SkillRequests`.

use crate::agent::{Acks, AgentVersion};
use crate::bus::{Record, TxnPublisher};
use crate::invocation::InvocationError;
use std::sync::Arc;

/// One record as the engine hands it out: the record, its correlation id, and which attempt
/// at it this is (1 for the first).
pub struct Attempt<'a> {
    pub record: &'a Record,
    pub correlation_id: &'a str,
    pub attempt: u32,
}

#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Runs one record on `version`. With exactly-once delivery its publishes join `txn`.
    /// `Ok` carries the acknowledgements still to come of what it sent.
    async fn handle(
        &self,
        version: &AgentVersion,
        attempt: Attempt<'_>,
        txn: Option<Arc<dyn TxnPublisher>>,
    ) -> Result<Acks, InvocationError>;

    /// How many records `version` takes in one invocation; 1 when it takes them one by one.
    fn batch_size(&self, _version: &AgentVersion) -> usize {
        1
    }

    /// Runs several records in one invocation of `version` (only asked when
    /// [`Handler::batch_size`] is above 1): one outcome per record, in order.
    async fn handle_batch(
        &self,
        version: &AgentVersion,
        attempts: Vec<Attempt<'_>>,
    ) -> Vec<Result<Acks, InvocationError>> {
        let mut outcomes = Vec::with_capacity(attempts.len());
        for attempt in attempts {
            outcomes.push(self.handle(version, attempt, None).await);
        }
        outcomes
    }

    /// Whether its records may be delivered exactly-once (in a transaction with the offset),
    /// when the manifest asks for it.
    fn transactional(&self) -> bool {
        false
    }
}

/// An agent's bus events: `on-event`, or `on-events` for a batch.
pub struct AgentEvents;

#[async_trait::async_trait]
impl Handler for AgentEvents {
    async fn handle(
        &self,
        version: &AgentVersion,
        attempt: Attempt<'_>,
        txn: Option<Arc<dyn TxnPublisher>>,
    ) -> Result<Acks, InvocationError> {
        version
            .on_record(attempt.record, attempt.correlation_id, attempt.attempt, txn)
            .await
    }

    fn batch_size(&self, version: &AgentVersion) -> usize {
        if version.takes_batches() {
            version.manifest.delivery.batch as usize
        } else {
            1
        }
    }

    async fn handle_batch(
        &self,
        version: &AgentVersion,
        attempts: Vec<Attempt<'_>>,
    ) -> Vec<Result<Acks, InvocationError>> {
        let records = attempts
            .iter()
            .map(|a| (a.record, a.correlation_id, a.attempt))
            .collect();
        version.on_records(records).await
    }

    fn transactional(&self) -> bool {
        true
    }
}
