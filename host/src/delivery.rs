//! The delivery engine: turns a consumer-group subscription into agent invocations with the
//! promised semantics, on any [`Bus`].
//!
//! - One worker per assigned partition hands its records out in offset order, one at a time per
//!   chain (`delivery.ordering`: the records of one key, or the whole partition), so records of
//!   different keys overlap their invocations and broker round trips, while a key's records are
//!   handled in order; a partition in backoff never blocks the others.
//! - `delivery.concurrency` bounds invocations in flight across the subscription's partitions.
//! - An offset is committed only once every record below it returned ok or was written to the
//!   dead-letter topic; a crash replays at most what was read and unfinished (at-least-once).
//! - Failures are retried with exponential backoff up to `max_attempts`; rejections and
//!   exhausted records are dead-lettered with headers naming agent, version, attempts and error.
//! - With `delivery.batch` above 1 and a component that exports `on-events`, the records free
//!   to start at once (at most one per chain) go to one invocation together; each is then
//!   finished, retried or dead-lettered on its own, retries one at a time.

use crate::agent::{Acks, AgentVersion};
use crate::bus::{
    self, Bus, BusError, Outgoing, PartitionReader, Rebalance, Record, Subscription,
    TopicPartition, headers, set_header,
};
use crate::config::{DeliveryMode, Ordering};
use crate::invocation::InvocationError;
use crate::metrics::Metrics;
use crate::registry::AgentCell;
use crate::wit::{agent, types};
use futures::FutureExt;
use pipeline::{Chain, Pipeline};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

mod pipeline;

/// How long a revoked or stopping partition may take to finish its in-flight record.
const DRAIN_BOUND: Duration = Duration::from_secs(30);
/// Pause before retrying a bus operation that failed (fetch, commit, dead-letter publish).
const BUS_RETRY: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct Deps {
    pub bus: Arc<dyn Bus>,
    pub metrics: Arc<Metrics>,
}

/// What a subscription's records are to its agent.
#[derive(Clone)]
pub enum Handler {
    /// Bus events: `on-event`.
    Events,
    /// A2A task requests for `skill` (the bus binding): `on-message`, the result published.
    BusTasks {
        skill: String,
        a2a: Arc<crate::a2a::A2a>,
    },
}

/// Runs one subscription of an agent until `stop` is cancelled. If the membership ends (the
/// bus closed it), it subscribes again.
pub fn spawn_subscription(
    deps: Deps,
    cell: Arc<AgentCell>,
    group: String,
    topics: Vec<String>,
    handler: Handler,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let agent = cell.name().to_owned();
        let rewound = Rewound::default();
        while !stop.is_cancelled() {
            let subscription = match deps.bus.subscribe(&group, &topics).await {
                Ok(s) => s,
                Err(err) => {
                    tracing::error!(agent, group, ?topics, error = %err, "cannot subscribe; retrying");
                    if sleep_or_stop(Duration::from_secs(2), &stop).await {
                        break;
                    }
                    continue;
                }
            };
            tracing::info!(agent, group, ?topics, bus = deps.bus.kind(), "subscribed");
            run_membership(
                &deps,
                &cell,
                &group,
                &handler,
                &rewound,
                subscription,
                &stop,
            )
            .await;
        }
        tracing::info!(agent, group, "subscription stopped");
    })
}

/// Serves one membership of the group: a worker per assigned partition, until `stop`, until
/// the bus ends the membership, or until a partition must start over from a record (see
/// [`Finished::Rewind`]). Leaves the group after every worker finished.
async fn run_membership(
    deps: &Deps,
    cell: &Arc<AgentCell>,
    group: &str,
    handler: &Handler,
    rewound: &Rewound,
    mut subscription: Box<dyn Subscription>,
    stop: &CancellationToken,
) {
    let agent = cell.name();
    let rejoin = CancellationToken::new();
    let concurrency = Arc::new(Semaphore::new(
        cell.current().manifest.delivery.concurrency as usize,
    ));
    let mut workers: BTreeMap<TopicPartition, (CancellationToken, JoinHandle<()>)> =
        BTreeMap::new();
    loop {
        let rebalance = tokio::select! {
            _ = stop.cancelled() => break,
            _ = rejoin.cancelled() => {
                tracing::warn!(agent, group, "leaving and rejoining the group, so a partition is read again from its committed offset");
                deps.metrics.record_bus_error("rewind");
                break;
            }
            r = subscription.next_rebalance() => r,
        };
        match rebalance {
            Ok(Rebalance::Assigned(readers)) => {
                for reader in readers {
                    let tp = reader.topic_partition().clone();
                    tracing::info!(agent, group, partition = %tp, "partition assigned");
                    let token = stop.child_token();
                    let worker = PartitionWorker {
                        deps: deps.clone(),
                        cell: cell.clone(),
                        handler: handler.clone(),
                        concurrency: concurrency.clone(),
                        stop: token.clone(),
                        rejoin: rejoin.clone(),
                        rewound: rewound.clone(),
                    };
                    workers.insert(tp, (token, tokio::spawn(Arc::new(worker).run(reader))));
                }
            }
            Ok(Rebalance::Revoked { partitions, done }) => {
                let revoked = partitions
                    .iter()
                    .filter_map(|tp| workers.remove(tp).map(|w| (tp.clone(), w)));
                drain(agent, revoked.collect()).await;
                let _ = done.send(());
            }
            Err(BusError::Closed) => {
                tracing::warn!(
                    agent,
                    group,
                    "the bus ended the group membership; rejoining"
                );
                break;
            }
            Err(err) => {
                tracing::warn!(agent, group, error = %err, "subscription error");
                if sleep_or_stop(BUS_RETRY, stop).await {
                    break;
                }
            }
        }
    }
    drain(agent, std::mem::take(&mut workers).into_iter().collect()).await;
    subscription.close().await;
}

/// Stops the workers of `partitions` after their in-flight record, all within one bound.
async fn drain(
    agent: &str,
    partitions: Vec<(TopicPartition, (CancellationToken, JoinHandle<()>))>,
) {
    let waits = partitions.into_iter().map(|(tp, (token, handle))| async move {
        token.cancel();
        if tokio::time::timeout(DRAIN_BOUND, handle).await.is_err() {
            tracing::warn!(agent, partition = %tp, "in-flight work did not finish in time; it will be redelivered");
        }
    });
    futures::future::join_all(waits).await;
}

/// Sleeps for `d`; returns true if `stop` was cancelled first.
async fn sleep_or_stop(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

struct PartitionWorker {
    deps: Deps,
    cell: Arc<AgentCell>,
    handler: Handler,
    concurrency: Arc<Semaphore>,
    stop: CancellationToken,
    /// Cancelled to end the membership and join again (see [`Finished::Rewind`]).
    rejoin: CancellationToken,
    rewound: Rewound,
}

/// The attempts already spent on records that made their partition start over, by
/// `(topic, partition, offset)`: read again, such a record goes on counting from there, so
/// `delivery.max_attempts` still ends in a dead letter. Kept by the subscription across its
/// memberships; an entry is taken when its record is handled again (one left by a partition
/// that moved to another member is a few bytes until the host stops).
#[derive(Clone, Default)]
struct Rewound(Arc<std::sync::Mutex<std::collections::HashMap<RecordAt, u32>>>);

/// Where a record is: topic, partition, offset.
type RecordAt = (String, u32, u64);

impl Rewound {
    fn remember(&self, record: &Record, attempts: u32) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(
            (record.topic.clone(), record.partition, record.offset),
            attempts,
        );
    }

    /// The attempts spent on `record` before its partition started over, if it did. Asked for
    /// every record, and almost always empty: then no key is built.
    fn take(&self, record: &Record) -> u32 {
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
    /// One task per record, or per batch of records, in flight; each yields, per record, its
    /// chain, offset, outcome, and whether it already released its chain (through `releases`).
    in_flight: JoinSet<Vec<(Chain, u64, Finished, bool)>>,
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

enum Finished {
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
    async fn run(self: Arc<Self>, mut reader: Box<dyn PartitionReader>) {
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
                            && matches!(self.handler, Handler::Events);
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

    /// Records per invocation for `version` here: its `delivery.batch` if it takes batches of
    /// bus events, else 1.
    fn batch_size(&self, version: &AgentVersion) -> usize {
        if matches!(self.handler, Handler::Events) && version.takes_batches() {
            version.manifest.delivery.batch as usize
        } else {
            1
        }
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
        joined: Result<Vec<(Chain, u64, Finished, bool)>, tokio::task::JoinError>,
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
    fn record_finished(
        self: &Arc<Self>,
        state: &mut WorkerState,
        (chain, offset, finished, released): (Chain, u64, Finished, bool),
    ) {
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
            vec![(chain, record.offset, finished, release.chain.is_none())]
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
        loop {
            match reader.commit(next_offset).await {
                Ok(()) => {
                    state.committed = Some(next_offset);
                    return true;
                }
                Err(BusError::Closed) => return false,
                Err(err) => {
                    tracing::warn!(agent = self.cell.name(), partition = %reader.topic_partition(), error = %err, "commit failed; retrying");
                    if sleep_or_stop(BUS_RETRY, &self.stop).await {
                        return false;
                    }
                }
            }
        }
    }

    /// Handles `record` until it is finished: first on `version`, the version picked when the
    /// record was read (the live one, or a canary), retries on whichever version is live then.
    /// A failure on a canary is not the event's fault: it is handed to the live version at
    /// once, without counting as an attempt.
    ///
    /// Once an invocation succeeds, the record's chain is released before its sent records
    /// are acknowledged: they are in the bus in order, so the chain's next record may run. The
    /// record itself is finished (and its offset committable) only once they are. A sent record
    /// that is not acknowledged makes a failed attempt like any other.
    async fn deliver(
        &self,
        record: &Record,
        version: Arc<AgentVersion>,
        release: &mut Release,
    ) -> Finished {
        let correlation_id = correlation_id_of(record);
        let attempt = self.rewound.take(record) + 1;
        let first = self
            .attempt(record, &version, &correlation_id, attempt, release)
            .await;
        self.follow_up(record, version, &correlation_id, attempt, first, release)
            .await
    }

    /// Hands records free to start to `version` in one `on-events` invocation, then finishes
    /// each on its own: done once acknowledged, or retried one at a time, or dead-lettered, as
    /// [`PartitionWorker::deliver`] would. A record that succeeded lets its chain go before its
    /// acknowledgements are in; one that failed holds its chain through its retries.
    async fn deliver_batch(
        self: Arc<Self>,
        batch: Vec<(Chain, Record)>,
        version: Arc<AgentVersion>,
        mut releases: Vec<Release>,
    ) -> Vec<(Chain, u64, Finished, bool)> {
        let correlation_ids: Vec<String> =
            batch.iter().map(|(_, r)| correlation_id_of(r)).collect();
        let attempts: Vec<u32> = batch
            .iter()
            .map(|(_, r)| self.rewound.take(r) + 1)
            .collect();
        let events = batch
            .iter()
            .zip(correlation_ids.iter().zip(&attempts))
            .map(|((_, record), (id, attempt))| to_event(record, id, *attempt))
            .collect();
        let outcomes = {
            let _permit = self.concurrency.acquire().await.ok();
            version.on_events(events).await
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
                    this.follow_up(record, version, id, *attempt, first, release)
                        .await
                }
            });
        let finished = futures::future::join_all(finishing).await;
        batch
            .into_iter()
            .zip(finished)
            .zip(releases)
            .map(|(((chain, record), finished), release)| {
                (chain, record.offset, finished, release.chain.is_none())
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
            match &self.handler {
                Handler::Events => {
                    agent
                        .on_event(to_event(record, correlation_id, attempt))
                        .await
                }
                Handler::BusTasks { skill, a2a } => crate::a2a::bus::serve_request(
                    a2a,
                    self.deps.bus.as_ref(),
                    agent,
                    skill,
                    record,
                    correlation_id,
                )
                .await
                .map(|()| Acks::none()),
            }
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
        mut agent: Arc<AgentVersion>,
        correlation_id: &str,
        mut attempt: u32,
        mut outcome: (bool, Result<(), InvocationError>),
        release: &mut Release,
    ) -> Finished {
        loop {
            let (released, result) = outcome;
            let on_canary = self.cell.is_canary(&agent);
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
            // After a swap, retries go to the new version.
            agent = self.cell.current();
            outcome = self
                .attempt(record, &agent, correlation_id, attempt, release)
                .await;
        }
    }

    /// Logs a failed attempt that will be retried and waits out its backoff. Returns true if
    /// the subscription stopped meanwhile. `aborted`: the attempt's transaction was aborted
    /// (exactly-once), so nothing it published is visible.
    async fn wait_to_retry(
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

    /// Exactly-once: each attempt runs in a transaction of the record's partition; its
    /// publishes and the offset commit become visible together. A failed attempt is aborted,
    /// so downstream never sees its publishes; the dead letter, if it comes to that, is
    /// committed with the offset in a transaction of its own.
    async fn deliver_exactly_once(
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
                agent
                    .on_event_in(to_event(record, &correlation_id, attempt), Some(txn))
                    .await
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
                let dl = dead_letter_record(record, &agent, &correlation_id, attempt, &err);
                tracing::warn!(agent = &*agent.name, version = &*agent.version, correlation_id, topic = record.topic,
                    partition = record.partition, offset = record.offset, attempts = attempt, error = %err,
                    dead_letter = dl.topic, "dead-lettering event (in a transaction)");
                return self
                    .dead_letter_exactly_once(reader, record, &agent, dl, &correlation_id, &err)
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

    async fn dead_letter_exactly_once(
        &self,
        reader: &mut dyn PartitionReader,
        record: &Record,
        agent: &AgentVersion,
        dl: Outgoing,
        correlation_id: &str,
        err: &InvocationError,
    ) -> Finished {
        loop {
            let Some(txn) = self.begin_transaction(reader).await else {
                return Finished::Stopped;
            };
            if let Err(e) = txn.publish(dl.clone()).await {
                tracing::error!(agent = &*agent.name, error = %e, "dead-letter publish failed; retrying");
                reader.abort_transaction().await;
                if sleep_or_stop(BUS_RETRY, &self.stop).await {
                    return Finished::Stopped;
                }
                continue;
            }
            match self.commit_transaction(reader, record).await {
                Some(true) => {
                    audit_dead_letter(agent, correlation_id, &dl.topic, err);
                    self.deps
                        .metrics
                        .record_dead_letter(&agent.name, &agent.version);
                    self.cell
                        .stats
                        .dead_letters
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
    ) -> Option<Arc<dyn bus::TxnPublisher>> {
        loop {
            match reader.begin_transaction().await {
                Ok(txn) => return Some(txn),
                Err(BusError::Closed) => return None,
                Err(err) => {
                    tracing::warn!(agent = self.cell.name(), partition = %reader.topic_partition(), error = %err, "cannot begin a transaction; retrying");
                    if sleep_or_stop(BUS_RETRY, &self.stop).await {
                        return None;
                    }
                }
            }
        }
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

    async fn dead_letter(
        &self,
        record: &Record,
        agent: &AgentVersion,
        correlation_id: &str,
        attempts: u32,
        err: &InvocationError,
    ) -> Finished {
        let dl = dead_letter_record(record, agent, correlation_id, attempts, err);
        tracing::warn!(agent = &*agent.name, version = &*agent.version, correlation_id, topic = record.topic,
            partition = record.partition, offset = record.offset, attempts, error = %err,
            dead_letter = dl.topic, "dead-lettering event");
        // The offset may only move past this record once the dead letter is stored.
        loop {
            match self.deps.bus.publish(dl.clone()).await {
                Ok(_) => {
                    audit_dead_letter(agent, correlation_id, &dl.topic, err);
                    self.deps
                        .metrics
                        .record_dead_letter(&agent.name, &agent.version);
                    self.cell
                        .stats
                        .dead_letters
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Finished::Done;
                }
                Err(e) => {
                    tracing::error!(agent = &*agent.name, error = %e, "dead-letter publish failed; retrying");
                    if sleep_or_stop(BUS_RETRY, &self.stop).await {
                        return Finished::Stopped;
                    }
                }
            }
        }
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

/// A record's hold on its chain, let go at most once: early (through the worker's channel)
/// once the record was handled and only acknowledgements are outstanding, or at its end.
struct Release {
    chain: Option<Chain>,
    to: mpsc::UnboundedSender<Chain>,
}

impl Release {
    fn new(chain: &Chain, to: &mpsc::UnboundedSender<Chain>) -> Self {
        Self {
            chain: Some(chain.clone()),
            to: to.clone(),
        }
    }

    fn now(&mut self) {
        if let Some(chain) = self.chain.take() {
            // The worker outlives its tasks; if it is gone, nothing waits for the chain.
            let _ = self.to.send(chain);
        }
    }
}

/// A dead letter in the audit trail: where the record went and why.
fn audit_dead_letter(
    agent: &AgentVersion,
    correlation_id: &str,
    topic: &str,
    err: &InvocationError,
) {
    agent.audit(
        correlation_id,
        "dead-letter",
        topic,
        crate::audit::Outcome::Allowed,
        &err.to_string(),
    );
}

/// The correlation id of a record: its header, or a new one minted here, where it entered.
pub fn correlation_id_of(record: &Record) -> String {
    record
        .header(headers::CORRELATION_ID)
        .and_then(|v| std::str::from_utf8(v).ok())
        .filter(|s| !s.is_empty())
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

pub fn to_event(record: &Record, correlation_id: &str, attempt: u32) -> agent::Event {
    agent::Event {
        topic: record.topic.clone(),
        partition: record.partition,
        offset: record.offset,
        key: record.key.clone(),
        payload: record.payload.clone(),
        headers: record
            .headers
            .iter()
            .map(|h| types::Header {
                key: h.key.clone(),
                value: h.value.clone(),
            })
            .collect(),
        timestamp_ms: record.timestamp_ms,
        correlation_id: correlation_id.to_owned(),
        attempt,
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

/// `base * 2^(attempt-1)`, capped at `max`.
pub fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(max).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let (b, m) = (Duration::from_millis(200), Duration::from_secs(5));
        assert_eq!(backoff(b, m, 1), Duration::from_millis(200));
        assert_eq!(backoff(b, m, 2), Duration::from_millis(400));
        assert_eq!(backoff(b, m, 3), Duration::from_millis(800));
        assert_eq!(backoff(b, m, 10), m);
        assert_eq!(backoff(b, m, 100), m);
    }

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

    #[test]
    fn correlation_id_comes_from_the_header_or_is_minted() {
        let mut r = Record {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            key: None,
            payload: vec![],
            headers: vec![bus::Header::new("correlation-id", "abc")],
            timestamp_ms: 0,
        };
        assert_eq!(correlation_id_of(&r), "abc");
        r.headers.clear();
        let minted = correlation_id_of(&r);
        assert_eq!(minted.len(), 36, "{minted}");
    }
}
