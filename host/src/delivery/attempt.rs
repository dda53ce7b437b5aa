//! One record (or one batch of records) from its first attempt to its end: handed to the
//! handler, its sent records' acknowledgements awaited, retried with backoff on whichever version
//! is live then, handed from a failing canary to the live version, or dead-lettered.

use super::backoff;
use super::correlation_id_of;
use super::handler::Attempt;
use super::pipeline::Chain;
use super::release::Release;
use super::sleep_or_stop;
use super::worker::{Finished, PartitionWorker, RecordEnd};
use crate::agent::{Acks, AgentVersion};
use crate::bus::Record;
use crate::invocation::InvocationError;
use std::sync::Arc;

impl PartitionWorker {
    /// Handles `record` until it is finished: first on `version`, the version picked when the
    /// record was read (the live one, or a canary), retries on whichever version is live then.
    /// A failure on a canary is not the event's fault: it is handed to the live version at
    /// once, without counting as an attempt.
    ///
    /// Once an invocation succeeds, the record's chain is released before its sent records
    /// are acknowledged: they are in the bus in order, so the chain's next record may run. The
    /// record itself is finished (and its offset committable) only once they are. A sent record
    /// that is not acknowledged makes a failed attempt like any other.
    pub(super) async fn deliver(
        &self,
        record: &Record,
        version: Arc<AgentVersion>,
        release: &mut Release,
    ) -> Finished {
        let correlation_id = correlation_id_of(record);
        let attempt = self.rewound.take(record) + 1;
        // Whether it is a canary is asked before the invocation: a canary rolled back while this
        // record ran (by other records' failures) must still hand it to the live version.
        let on_canary = self.cell.is_canary(&version);
        let first = self
            .attempt(record, &version, &correlation_id, attempt, release)
            .await;
        self.follow_up(
            record,
            (version, on_canary),
            &correlation_id,
            attempt,
            first,
            release,
        )
        .await
    }

    /// Hands records free to start to `version` in one `on-events` invocation, then finishes
    /// each on its own: done once acknowledged, or retried one at a time, or dead-lettered, as
    /// [`PartitionWorker::deliver`] would. A record that succeeded lets its chain go before its
    /// acknowledgements are in; one that failed holds its chain through its retries.
    pub(super) async fn deliver_batch(
        self: Arc<Self>,
        batch: Vec<(Chain, Record)>,
        version: Arc<AgentVersion>,
        mut releases: Vec<Release>,
    ) -> Vec<RecordEnd> {
        let correlation_ids: Vec<String> =
            batch.iter().map(|(_, r)| correlation_id_of(r)).collect();
        let attempts: Vec<u32> = batch
            .iter()
            .map(|(_, r)| self.rewound.take(r) + 1)
            .collect();
        let handed = batch
            .iter()
            .zip(correlation_ids.iter().zip(&attempts))
            .map(|((_, record), (id, attempt))| Attempt {
                record,
                correlation_id: id,
                attempt: *attempt,
            })
            .collect();
        let on_canary = self.cell.is_canary(&version);
        let outcomes = {
            let _permit = self.concurrency.acquire().await.ok();
            self.handler.handle_batch(&version, handed).await
        };
        let this = &*self;
        let finishing = batch
            .iter()
            .zip(outcomes)
            .zip(releases.iter_mut())
            .zip(correlation_ids.iter().zip(&attempts))
            .map(|((((_, record), outcome), release), (id, attempt))| {
                let version = version.clone();
                async move {
                    let first = acknowledged(outcome, release).await;
                    this.follow_up(record, (version, on_canary), id, *attempt, first, release)
                        .await
                }
            });
        let finished = futures::future::join_all(finishing).await;
        batch
            .into_iter()
            .zip(finished)
            .zip(releases)
            .map(|(((chain, record), finished), release)| RecordEnd {
                chain,
                offset: record.offset,
                finished,
                released: release.is_released(),
            })
            .collect()
    }

    /// One attempt at `record` on `agent`, up to its sent records' acknowledgements: whether it
    /// let its chain go (see [`acknowledged`]), and how it ended.
    async fn attempt(
        &self,
        record: &Record,
        agent: &AgentVersion,
        correlation_id: &str,
        attempt: u32,
        release: &mut Release,
    ) -> (bool, Result<(), InvocationError>) {
        let result = {
            let _permit = self.concurrency.acquire().await.ok();
            let handed = Attempt {
                record,
                correlation_id,
                attempt,
            };
            self.handler.handle(agent, handed, None).await
        };
        // The invocation's slot is free again; its sent records' acknowledgements are awaited
        // outside it, so round trips to the broker overlap across invocations.
        acknowledged(result, release).await
    }

    /// Takes `record` from an attempt's end (`outcome`, on `agent`) until it is finished:
    /// done, retried with backoff on whichever version is live then, or dead-lettered.
    async fn follow_up(
        &self,
        record: &Record,
        // The version it was first handed to, and whether that was a canary on trial then.
        (mut agent, mut on_canary): (Arc<AgentVersion>, bool),
        correlation_id: &str,
        mut attempt: u32,
        mut outcome: (bool, Result<(), InvocationError>),
        release: &mut Release,
    ) -> Finished {
        loop {
            let (released, result) = outcome;
            let delivery = &agent.manifest.delivery;
            self.cell.record_outcome(&agent, result.is_ok());
            let err = match result {
                Ok(()) => return Finished::Done,
                Err(err) => err,
            };
            if released && !err.is_permanent() && attempt < delivery.max_attempts {
                tracing::warn!(agent = &*agent.name, version = &*agent.version, correlation_id, topic = record.topic,
                    partition = record.partition, offset = record.offset, attempt, error = %err,
                    "a record it sent was not stored after its key's next record may have started; the partition is read again from this record");
                self.rewound.remember(record, attempt);
                return Finished::Rewind;
            }
            if on_canary {
                tracing::warn!(agent = &*agent.name, version = &*agent.version, correlation_id, topic = record.topic,
                    partition = record.partition, offset = record.offset, error = %err,
                    "canary invocation failed; handing the event to the live version");
            } else {
                if err.is_permanent() || attempt >= delivery.max_attempts {
                    return self
                        .dead_letter(record, &agent, correlation_id, attempt, &err)
                        .await;
                }
                if self
                    .wait_to_retry(record, &agent, correlation_id, attempt, &err, false)
                    .await
                {
                    return Finished::Stopped;
                }
                attempt += 1;
            }
            // After a swap, retries go to the new version; the live one is never a canary.
            agent = self.cell.current();
            on_canary = false;
            outcome = self
                .attempt(record, &agent, correlation_id, attempt, release)
                .await;
        }
    }

    /// Logs a failed attempt that will be retried and waits out its backoff. Returns true if
    /// the subscription stopped meanwhile. `aborted`: the attempt's transaction was aborted
    /// (exactly-once), so nothing it published is visible.
    pub(super) async fn wait_to_retry(
        &self,
        record: &Record,
        agent: &AgentVersion,
        correlation_id: &str,
        attempt: u32,
        err: &InvocationError,
        aborted: bool,
    ) -> bool {
        let delivery = &agent.manifest.delivery;
        let wait = backoff(delivery.backoff, delivery.max_backoff, attempt);
        tracing::warn!(agent = &*agent.name, version = &*agent.version, correlation_id, topic = record.topic,
            partition = record.partition, offset = record.offset, attempt, error = %err,
            retry_in = %humantime::format_duration(wait), transaction = aborted.then_some("aborted"),
            "invocation failed; will retry");
        sleep_or_stop(wait, &self.stop).await
    }
}

/// How an invocation's record ended once what it sent is acknowledged: whether it let its chain
/// go first (it succeeded and sent records; they are in the bus in order, so the chain's next
/// record may run), and whether it and its sent records all succeeded.
async fn acknowledged(
    result: Result<Acks, InvocationError>,
    release: &mut Release,
) -> (bool, Result<(), InvocationError>) {
    match result {
        Ok(acks) => {
            let released = !acks.is_empty();
            if released {
                release.now();
            }
            (released, acks.wait().await)
        }
        Err(err) => (false, Err(err)),
    }
}
