//! One partition of a subscription, from read to committed: its records handed out in offset
//! order, one at a time per chain, batched when the version takes batches, and the lowest
//! unfinished offset committed as it moves.

use super::pipeline::{Chain, Pipeline};
use super::release::Release;
use super::{BUS_RETRY, Deps, Handler, sleep_or_stop};
use crate::agent::AgentVersion;
use crate::bus::{BusError, PartitionReader, Record, TopicPartition};
use crate::manifest::{DeliveryMode, Ordering};
use crate::registry::AgentCell;
use futures::FutureExt;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub(super) struct PartitionWorker {
    pub(super) deps: Deps,
    pub(super) cell: Arc<AgentCell>,
    pub(super) handler: Arc<dyn Handler>,
    pub(super) concurrency: Arc<Semaphore>,
    pub(super) stop: CancellationToken,
    /// Cancelled to end the membership and join again (see [`Finished::Rewind`]).
    pub(super) rejoin: CancellationToken,
    pub(super) rewound: Rewound,
}
/// The attempts already spent on records that made their partition start over, by
/// `(topic, partition, offset)`: read again, such a record goes on counting from there, so
/// `delivery.max_attempts` still ends in a dead letter. Kept by the subscription across its
/// memberships; an entry is taken when its record is handled again (one left by a partition
/// that moved to another member is a few bytes until the host stops).
#[derive(Clone, Default)]
pub(super) struct Rewound(Arc<std::sync::Mutex<std::collections::HashMap<RecordAt, u32>>>);
/// Where a record is: topic, partition, offset.
type RecordAt = (String, u32, u64);
impl Rewound {
    pub(super) fn remember(&self, record: &Record, attempts: u32) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(
            (record.topic.clone(), record.partition, record.offset),
            attempts,
        );
    }

    /// The attempts spent on `record` before its partition started over, if it did. Asked for
    /// every record, and almost always empty: then no key is built.
    pub(super) fn take(&self, record: &Record) -> u32 {
        let mut rewound = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if rewound.is_empty() {
            return 0;
        }
        rewound
            .remove(&(record.topic.clone(), record.partition, record.offset))
            .unwrap_or(0)
    }
}

/// A partition worker's records between read and committed.
struct WorkerState {
    /// Each record with the version live when it was read.
    pipeline: Pipeline<(Record, Arc<AgentVersion>)>,
    /// One task per record, or per batch of records, in flight; each yields how each of its
    /// records ended.
    in_flight: JoinSet<Vec<RecordEnd>>,
    /// Records free to start that go to the next batch (see [`PartitionWorker::flush`]).
    ready: Vec<(Chain, (Record, Arc<AgentVersion>))>,
    /// Chains let go by records that were handled and whose sent records are still being
    /// acknowledged: the chain's next record may start.
    releases: mpsc::UnboundedReceiver<Chain>,
    release_tx: mpsc::UnboundedSender<Chain>,
    /// Records that were handled and let their chain go, waiting only for the acknowledgements
    /// of the records they sent (bounded by [`MAX_AWAITING_ACKS`]).
    awaiting_acks: usize,
    /// The offset last committed by this worker.
    committed: Option<u64>,
    /// Stopped, revoked or failing: read nothing more, finish what was read.
    stopping: bool,
}
/// How a record handed out by a partition worker ended.
pub(super) struct RecordEnd {
    pub chain: Chain,
    pub offset: u64,
    pub finished: Finished,
    /// Whether it let its chain go before finishing (see [`super::attempt::Release`]).
    pub released: bool,
}

/// Records per partition that may wait for their sent records' acknowledgements at once (the
/// raw pipe in the S2 benchmark awaits as many): beyond it, reading waits for acknowledgements.
/// A bound on memory (the records are kept until finished) and on what a crash replays.
const MAX_AWAITING_ACKS: usize = 1024;
impl WorkerState {
    /// Whether another record may be read: fewer than `window` records between read and
    /// handled, and fewer than [`MAX_AWAITING_ACKS`] waiting for acknowledgements.
    fn has_room(&self, window: usize) -> bool {
        may_read(self.pipeline.len(), self.awaiting_acks, window)
    }

    /// A record that released its chain early has finished. Its release was sent before its
    /// task ended, so it is in `releases` if not counted yet: count it first.
    fn acks_arrived(&mut self, worker: &Arc<PartitionWorker>) {
        worker.released_meanwhile(self);
        self.awaiting_acks = self.awaiting_acks.saturating_sub(1);
    }
}
/// [`WorkerState::has_room`] for `unfinished` records read and not finished, of which
/// `awaiting_acks` wait only for acknowledgements.
fn may_read(unfinished: usize, awaiting_acks: usize, window: usize) -> bool {
    awaiting_acks < MAX_AWAITING_ACKS && unfinished.saturating_sub(awaiting_acks) < window
}
pub(super) enum Finished {
    /// Handled or dead-lettered: commit past it.
    Done,
    /// Stopped before the record was finished: do not commit; it will be delivered again.
    Stopped,
    /// A record it sent was not stored after the record had let its chain go, so the chain's
    /// next records may have run already. Handling it again here would put its output after
    /// theirs (a key's last output would be a stale one); instead the partition stops without
    /// committing past it and the membership is rejoined, so it and everything after it are
    /// read again in order — a redelivery, as after a crash.
    Rewind,
}

impl PartitionWorker {
    /// Reads the partition and hands its records out: a chain's records one at a time, up to
    /// `window` records between read and finished. Commits the lowest unfinished offset as it
    /// moves. When stopped (revoked, shutting down) it reads nothing more, handles the records
    /// it has read (a record stopped in backoff stays unfinished, with its key's records behind
    /// it), and returns once they are finished and their offset is committed.
    pub(super) async fn run(self: Arc<Self>, mut reader: Box<dyn PartitionReader>) {
        let delivery = self.cell.current().manifest.delivery.clone();
        let ordering = delivery.ordering;
        // Enough read ahead to keep `concurrency` invocations busy when keys repeat, or to fill
        // a batch; a chain that is one record at a time has no use for more than the next record.
        // Records only waiting for acknowledgements do not count: they need no invocation, and
        // counting them would hold the partition to `window` records per broker round trip.
        let window = match ordering {
            Ordering::Key => (delivery.concurrency.max(delivery.batch) as usize)
                .saturating_mul(2)
                .max(2),
            Ordering::Partition => 2,
        };
        let (release_tx, releases) = mpsc::unbounded_channel();
        let mut state = WorkerState {
            pipeline: Pipeline::default(),
            in_flight: JoinSet::new(),
            ready: Vec::new(),
            releases,
            release_tx,
            awaiting_acks: 0,
            committed: None,
            stopping: false,
        };
        loop {
            if state.stopping && state.in_flight.is_empty() {
                // A release still queued may start a waiting record, which must be handled
                // too (see `finished`).
                self.released_meanwhile(&mut state);
                self.flush(&mut state);
                if state.in_flight.is_empty() {
                    break;
                }
            }
            tokio::select! {
                biased;
                _ = self.stop.cancelled(), if !state.stopping => state.stopping = true,
                Some(chain) = state.releases.recv() => {
                    // A batch lets its records' chains go together: take them all, so the
                    // records they free start together too.
                    self.released_early(&mut state, chain);
                    self.released_meanwhile(&mut state);
                }
                Some(joined) = state.in_flight.join_next(), if !state.in_flight.is_empty() => {
                    self.finished(&mut state, joined);
                }
                r = reader.next(), if !state.stopping && state.has_room(window) => match r {
                    Ok(record) => {
                        // Exactly-once runs one transaction at a time on the partition: the
                        // records before this one finish first. Bus-served A2A skills reply
                        // through the shared producer, so they stay at-least-once.
                        let exactly_once = self.cell.current().manifest.delivery.mode
                            == DeliveryMode::ExactlyOnce
                            && self.handler.transactional();
                        if exactly_once {
                            if !self.settle(&mut state, reader.as_mut()).await {
                                break;
                            }
                            let offset = record.offset;
                            let version = self.cell.current();
                            state.pipeline.admit(Chain::Partition, offset, (record.clone(), version));
                            match self.deliver_exactly_once(reader.as_mut(), &record).await {
                                Finished::Done => {
                                    state.pipeline.finish(&Chain::Partition, offset);
                                    // The offset was committed inside the record's transaction.
                                    state.committed = Some(offset + 1);
                                }
                                // (A transaction's publishes have no acknowledgements to
                                // await after the invocation: it never rewinds.)
                                Finished::Stopped | Finished::Rewind => break,
                            }
                            continue;
                        }
                        let batch = self.admit(&mut state, record, ordering);
                        // A batch takes what the reader already has, without waiting for more.
                        while batch > 1 && state.ready.len() < batch && state.has_room(window) {
                            match reader.next().now_or_never() {
                                Some(Ok(record)) => {
                                    self.admit(&mut state, record, ordering);
                                }
                                Some(Err(err)) => {
                                    self.read_failed(&mut state, reader.topic_partition(), err).await;
                                    break;
                                }
                                None => break,
                            }
                        }
                    }
                    Err(err) => self.read_failed(&mut state, reader.topic_partition(), err).await,
                },
                else => break,
            }
            self.flush(&mut state);
            if !self.commit(&mut state, reader.as_mut()).await {
                break;
            }
        }
        // Whatever is still in flight (a bound of `drain` ran out, or the partition was revoked
        // under it) is abandoned uncommitted: the partition's next owner delivers it again.
        state.in_flight.abort_all();
    }

    /// Takes a record just read into the pipeline, started (or readied for a batch) if its
    /// chain is free. Returns the batch size of the version it was pinned to (1: no batches).
    fn admit(
        self: &Arc<Self>,
        state: &mut WorkerState,
        record: Record,
        ordering: Ordering,
    ) -> usize {
        // The version is pinned when the record is read, in offset order: across a swap, the
        // partition's records switch version once, whichever starts first.
        let chain = Chain::of(&record, ordering);
        let offset = record.offset;
        let version = self.cell.pick(record.key.as_deref(), offset);
        let batch = self.batch_size(&version);
        if let Some(ready) = state
            .pipeline
            .admit(chain.clone(), offset, (record, version))
        {
            self.start(state, chain, ready);
        }
        batch
    }

    /// Records per invocation for `version` here (1: no batches).
    fn batch_size(&self, version: &AgentVersion) -> usize {
        self.handler.batch_size(version)
    }

    /// A read failed: revoked (stop), or a bus error (pause, then read again).
    async fn read_failed(
        &self,
        state: &mut WorkerState,
        partition: &TopicPartition,
        err: BusError,
    ) {
        match err {
            // Revoked: the partition belongs to another member now.
            BusError::Closed => state.stopping = true,
            err => {
                tracing::warn!(agent = self.cell.name(), %partition, error = %err, "fetch failed");
                state.stopping = sleep_or_stop(BUS_RETRY, &self.stop).await;
            }
        }
    }

    /// Starts the records readied for batches: those pinned to one version together, up to its
    /// `delivery.batch` per invocation.
    fn flush(self: &Arc<Self>, state: &mut WorkerState) {
        while let Some((_, (_, version))) = state.ready.first() {
            let version = version.clone();
            let size = self.batch_size(&version);
            let mut batch = Vec::with_capacity(size.min(state.ready.len()));
            let mut rest = Vec::new();
            for entry in state.ready.drain(..) {
                if batch.len() < size && Arc::ptr_eq(&entry.1.1, &version) {
                    batch.push((entry.0, entry.1.0));
                } else {
                    rest.push(entry);
                }
            }
            state.ready = rest;
            let worker = self.clone();
            let releases: Vec<Release> = batch
                .iter()
                .map(|(chain, _)| Release::new(chain, &state.release_tx))
                .collect();
            state
                .in_flight
                .spawn(async move { worker.deliver_batch(batch, version, releases).await });
        }
    }

    /// Starts the next record of a chain its record let go before finishing.
    fn released(self: &Arc<Self>, state: &mut WorkerState, chain: Chain) {
        if let Some(next) = state.pipeline.release(&chain) {
            self.start(state, chain, next);
        }
    }

    /// A record let its chain go before finishing: it now only waits for acknowledgements.
    fn released_early(self: &Arc<Self>, state: &mut WorkerState, chain: Chain) {
        state.awaiting_acks += 1;
        self.released(state, chain);
    }

    /// Starts what the releases already queued let go.
    fn released_meanwhile(self: &Arc<Self>, state: &mut WorkerState) {
        while let Ok(chain) = state.releases.try_recv() {
            self.released_early(state, chain);
        }
    }

    /// Handles one record's end: settles its offset, and frees its chain (unless it did so
    /// already) to start the chain's next record.
    fn finished(
        self: &Arc<Self>,
        state: &mut WorkerState,
        joined: Result<Vec<RecordEnd>, tokio::task::JoinError>,
    ) {
        match joined {
            Ok(records) => {
                for record in records {
                    self.record_finished(state, record);
                }
            }
            Err(err) => {
                // A bug, not input: the records stay unfinished, so their offset is never
                // committed; the partition stops here and is delivered again after a rebalance
                // or restart rather than skipping them.
                tracing::error!(agent = self.cell.name(), error = %err, "a delivery task failed; the partition stops without committing past its records");
                state.stopping = true;
            }
        }
    }

    /// Handles one record's end (see [`PartitionWorker::finished`]).
    fn record_finished(self: &Arc<Self>, state: &mut WorkerState, end: RecordEnd) {
        let RecordEnd {
            chain,
            offset,
            finished,
            released,
        } = end;
        match finished {
            Finished::Done => {
                if released {
                    state.acks_arrived(self);
                }
                // Even when stopping, the records already read are handled: a record waiting
                // behind its key would otherwise hold the committed offset below later records
                // that did finish, and the next owner would handle those twice.
                state.pipeline.settle(offset);
                if !released {
                    self.released(state, chain);
                }
            }
            // Stopped in backoff: unfinished, delivered again by the partition's next owner.
            Finished::Stopped => {
                if released {
                    state.acks_arrived(self);
                }
                state.stopping = true;
            }
            // Unfinished, so the committed offset stays below it; read again after the rejoin.
            Finished::Rewind => {
                if released {
                    state.acks_arrived(self);
                }
                state.stopping = true;
                self.rejoin.cancel();
            }
        }
    }

    /// Starts a record whose chain is free: in a task of its own, or readied for the next
    /// batch when its version takes batches.
    fn start(
        self: &Arc<Self>,
        state: &mut WorkerState,
        chain: Chain,
        (record, version): (Record, Arc<AgentVersion>),
    ) {
        if self.batch_size(&version) > 1 {
            state.ready.push((chain, (record, version)));
            return;
        }
        let worker = self.clone();
        let release = Release::new(&chain, &state.release_tx);
        state.in_flight.spawn(async move {
            let mut release = release;
            let finished = worker.deliver(&record, version, &mut release).await;
            vec![RecordEnd {
                chain,
                offset: record.offset,
                finished,
                released: release.is_released(),
            }]
        });
    }

    /// Waits for every record in flight to finish and commits past them; false if the
    /// partition was revoked or the worker stopped meanwhile.
    async fn settle(
        self: &Arc<Self>,
        state: &mut WorkerState,
        reader: &mut dyn PartitionReader,
    ) -> bool {
        loop {
            self.released_meanwhile(state);
            let Some(joined) = state.in_flight.join_next().await else {
                break;
            };
            self.finished(state, joined);
        }
        self.commit(state, reader).await && !state.stopping && state.pipeline.is_empty()
    }

    /// Commits the lowest unfinished offset if it moved. A commit that fails is retried,
    /// because giving up would only mean a redelivery — but never losing a record. False if
    /// the partition was revoked or the worker stopped while retrying.
    async fn commit(&self, state: &mut WorkerState, reader: &mut dyn PartitionReader) -> bool {
        let Some(next_offset) = state.pipeline.committable() else {
            return true;
        };
        if state.committed == Some(next_offset) {
            return true;
        }
        let what = format!("commit of {}", reader.topic_partition());
        let committed = retry_bus!(
            self.cell.name(),
            &what,
            &self.stop,
            reader.commit(next_offset).await
        );
        if committed.is_some() {
            state.committed = Some(next_offset);
        }
        committed.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_waiting_for_acknowledgements_leave_the_window_to_invocations() {
        // 16 read, none sent yet: the window (16) is full.
        assert!(!may_read(16, 0, 16));
        // 16 read, 10 of them handled and waiting for acks: 6 left to invoke, room for more.
        assert!(may_read(16, 10, 16));
        assert!(!may_read(26, 10, 16));
        // Acknowledgements have a bound of their own.
        assert!(may_read(MAX_AWAITING_ACKS, MAX_AWAITING_ACKS - 1, 16));
        assert!(!may_read(MAX_AWAITING_ACKS, MAX_AWAITING_ACKS, 16));
    }
}
