//! Exactly-once delivery: each attempt at a record runs in a transaction of its partition, and
//! its publishes and the offset commit become visible together. Runs one record at a time on the
//! partition, outside the read-ahead of at-least-once delivery.

use super::dead_letter::{DeadLettered, dead_letter_record};
use super::handler::Attempt;
use super::worker::{Finished, PartitionWorker};
use super::{BUS_RETRY, correlation_id_of, sleep_or_stop};
use crate::agent::AgentVersion;
use crate::bus::{BusError, PartitionReader, Record, TxnPublisher};
use crate::invocation::InvocationError;
use std::sync::Arc;

impl PartitionWorker {
    /// Exactly-once: each attempt runs in a transaction of the record's partition; its
    /// publishes and the offset commit become visible together. A failed attempt is aborted,
    /// so downstream never sees its publishes; the dead letter, if it comes to that, is
    /// committed with the offset in a transaction of its own.
    pub(super) async fn deliver_exactly_once(
        &self,
        reader: &mut dyn PartitionReader,
        record: &Record,
    ) -> Finished {
        let correlation_id = correlation_id_of(record);
        let mut attempt = 1u32;
        loop {
            let agent = self.cell.current();
            let delivery = &agent.manifest.delivery;
            let Some(txn) = self.begin_transaction(reader).await else {
                return Finished::Stopped;
            };
            let result = {
                let _permit = self.concurrency.acquire().await.ok();
                let handed = Attempt {
                    record,
                    correlation_id: &correlation_id,
                    attempt,
                };
                self.handler.handle(&agent, handed, Some(txn)).await
            };
            let err = match result {
                // In a transaction, `send` publishes into it at once: nothing is left to wait for.
                Ok(_nothing_pending) => match self.commit_transaction(reader, record).await {
                    Some(true) => return Finished::Done,
                    None => return Finished::Stopped,
                    // Aborted: nothing of this attempt is visible; handle the record again.
                    Some(false) => continue,
                },
                Err(err) => err,
            };
            reader.abort_transaction().await;
            if err.is_permanent() || attempt >= delivery.max_attempts {
                return self
                    .dead_letter_exactly_once(
                        reader,
                        record,
                        &agent,
                        &correlation_id,
                        attempt,
                        &err,
                    )
                    .await;
            }
            if self
                .wait_to_retry(record, &agent, &correlation_id, attempt, &err, true)
                .await
            {
                return Finished::Stopped;
            }
            attempt += 1;
        }
    }

    /// Commits the dead letter of `record` with the offset past it, in a transaction of its own.
    async fn dead_letter_exactly_once(
        &self,
        reader: &mut dyn PartitionReader,
        record: &Record,
        agent: &AgentVersion,
        correlation_id: &str,
        attempts: u32,
        err: &InvocationError,
    ) -> Finished {
        let dl = dead_letter_record(record, agent, correlation_id, attempts, err);
        loop {
            let Some(txn) = self.begin_transaction(reader).await else {
                return Finished::Stopped;
            };
            if let Err(e) = txn.publish(dl.clone()).await {
                tracing::warn!(agent = &*agent.name, error = %e, "dead-letter publish failed; retrying");
                reader.abort_transaction().await;
                if sleep_or_stop(BUS_RETRY, &self.stop).await {
                    return Finished::Stopped;
                }
                continue;
            }
            match self.commit_transaction(reader, record).await {
                Some(true) => {
                    DeadLettered {
                        agent,
                        record,
                        correlation_id,
                        topic: &dl.topic,
                        attempts,
                        error: err,
                    }
                    .record(&self.deps, &self.cell);
                    return Finished::Done;
                }
                Some(false) => {}
                None => return Finished::Stopped,
            }
        }
    }

    /// Opens a transaction on the partition, retrying bus errors; `None` if the partition was
    /// revoked or the worker is stopping.
    async fn begin_transaction(
        &self,
        reader: &mut dyn PartitionReader,
    ) -> Option<Arc<dyn TxnPublisher>> {
        let what = format!("beginning a transaction on {}", reader.topic_partition());
        retry_bus!(
            self.cell.name(),
            &what,
            &self.stop,
            reader.begin_transaction().await
        )
    }

    /// Commits the open transaction with the offset past `record`: `Some(true)` committed,
    /// `Some(false)` aborted (try again), `None` revoked or stopping.
    async fn commit_transaction(
        &self,
        reader: &mut dyn PartitionReader,
        record: &Record,
    ) -> Option<bool> {
        match reader.commit_transaction(record.offset + 1).await {
            Ok(()) => Some(true),
            Err(BusError::Closed) => None,
            Err(err) => {
                tracing::warn!(agent = self.cell.name(), partition = %reader.topic_partition(), offset = record.offset,
                    error = %err, "transaction commit failed; the record is handled again in a new transaction");
                if sleep_or_stop(BUS_RETRY, &self.stop).await {
                    None
                } else {
                    Some(false)
                }
            }
        }
    }
}
