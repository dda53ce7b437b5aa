//! Consumer-group membership on Kafka: one `StreamConsumer` per subscription, its main queue
//! served on a dedicated thread (rebalance callbacks run there and may block it), and one split
//! queue per assigned partition handed to the delivery engine.

use super::{ClientKind, Inner, client_config};
use crate::bus::{self, BusError, PartitionReader, Record, Subscription, TopicPartition};
use async_trait::async_trait;
use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

type GroupConsumer = StreamConsumer<GroupContext>;

/// Longest a revoke waits for the delivery engine to finish the partitions' in-flight records.
/// Below librdkafka's default `max.poll.interval.ms` (300 s) and above the engine's drain bound.
const REVOKE_WAIT: Duration = Duration::from_secs(35);
/// How long leaving the group at shutdown may take (revoke and final commit).
const LEAVE_WAIT: Duration = Duration::from_secs(10);

pub(super) async fn subscribe(
    inner: Arc<Inner>,
    group: &str,
    topics: &[String],
) -> Result<Box<dyn Subscription>, BusError> {
    let claim = inner.claims.acquire(group, topics)?;
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let context = GroupContext {
        group: group.to_owned(),
        consumer: OnceLock::new(),
        events: events_tx,
        tokens: Mutex::new(HashMap::new()),
        closing: AtomicBool::new(false),
        metrics: inner.metrics.clone(),
        inner: inner.clone(),
    };
    let config = client_config(
        &inner.config,
        ClientKind::Consumer,
        &[
            ("group.id", group),
            // Offsets of finished records are stored by `commit`; librdkafka commits them every
            // second and synchronously on revoke and close. Nothing unfinished is ever committed.
            ("enable.auto.commit", "true"),
            ("enable.auto.offset.store", "false"),
            ("auto.commit.interval.ms", "1000"),
            // A new group starts at the oldest record, as on the local bus: nothing published before
            // an agent first subscribed is skipped.
            ("auto.offset.reset", "earliest"),
            // A broker stall shorter than the session timeout less one heartbeat interval (5 s)
            // pauses processing without a rebalance: librdkafka counts the session from the
            // last answered heartbeat. Not longer: tansu 0.6 never expires a member, and a
            // longer session timeout made a restarted member wait out a join in which the
            // killed one kept every partition (seen in the kill -9 test).
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "1000"),
            // Eager rebalancing: every member must agree on one protocol, and some brokers (tansu)
            // take the first member's first.
            ("partition.assignment.strategy", "range"),
            ("topic.metadata.refresh.interval.ms", "10000"),
            // Every split queue prefetches; bound it so many partitions of a slow agent stay small.
            ("queued.max.messages.kbytes", "8192"),
            ("statistics.interval.ms", "5000"),
        ],
    );
    // The consumer spawns a tokio task of its own: create it inside the runtime.
    let consumer: Arc<GroupConsumer> =
        Arc::new(config.create_with_context(context).map_err(|e| {
            BusError::Unavailable(format!(
                "cannot create a Kafka consumer for group {group:?}: {e}"
            ))
        })?);
    let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topic_refs).map_err(|e| {
        BusError::Unavailable(format!(
            "cannot subscribe group {group:?} to {topics:?}: {e}"
        ))
    })?;

    let (shutdown_tx, shutdown_rx) = oneshot::channel();
    let (closed_tx, closed_rx) = oneshot::channel();
    let handle = tokio::runtime::Handle::current();
    let driver_consumer = consumer.clone();
    std::thread::Builder::new()
        .name(format!("kafka-group-{group}"))
        .spawn(move || {
            handle.block_on(drive(driver_consumer, shutdown_rx));
            let _ = closed_tx.send(());
        })
        .map_err(|e| BusError::Unavailable(format!("cannot start the consumer thread: {e}")))?;
    drop(consumer);
    Ok(Box::new(KafkaSubscription {
        events: events_rx,
        shutdown: Some(shutdown_tx),
        closed: Some(closed_rx),
        _claim: claim,
    }))
}

/// Serves the consumer's main queue until shutdown. Rebalances and statistics are handled here;
/// records never arrive here (every partition is split before it is assigned).
async fn drive(consumer: Arc<GroupConsumer>, mut shutdown: oneshot::Receiver<()>) {
    let ctx = consumer.context();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            result = consumer.recv() => match result {
                Ok(m) => tracing::error!(group = ctx.group, topic = m.topic(), partition = m.partition(), offset = m.offset(),
                    "record on the shared queue: its partition was not split before assignment"),
                Err(KafkaError::MessageConsumption(RDKafkaErrorCode::PollExceeded)) => {
                    ctx.metrics.record_bus_error("poll_exceeded");
                    tracing::warn!(group = ctx.group, "max.poll.interval.ms exceeded: the group took the partitions away; rejoining");
                }
                Err(e) => {
                    ctx.metrics.record_bus_error("consumer");
                    tracing::warn!(group = ctx.group, error = %e, "Kafka consumer error; librdkafka keeps retrying");
                    // Errors can repeat quickly while a broker is down; don't spin.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
        }
    }
    // Leave the group: the revoke this causes runs on this thread, commits synchronously and
    // releases the partitions to the other members at once instead of after a session timeout.
    ctx.closing.store(true, Ordering::SeqCst);
    consumer.unsubscribe();
    let until = Instant::now() + LEAVE_WAIT;
    while Instant::now() < until
        && consumer
            .assignment()
            .map(|a| a.count() > 0)
            .unwrap_or(false)
    {
        let _ = tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await;
    }
}

pub(super) struct GroupContext {
    group: String,
    consumer: OnceLock<Weak<GroupConsumer>>,
    events: mpsc::UnboundedSender<bus::Rebalance>,
    /// One token per assigned partition: cancelled when it is revoked, so a late worker can
    /// neither read nor store an offset for a partition another member now owns.
    tokens: Mutex<HashMap<(String, i32), CancellationToken>>,
    closing: AtomicBool,
    metrics: Arc<crate::metrics::Metrics>,
    /// For the transactional producers of exactly-once partitions.
    inner: Arc<Inner>,
}

impl ClientContext for GroupContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (&partition, p) in &t.partitions {
                // Partition -1 is librdkafka's internal unassigned partition.
                let (Ok(partition), true) = (u32::try_from(partition), p.desired) else {
                    continue;
                };
                if p.consumer_lag_stored >= 0 {
                    self.metrics.set_consumer_lag(
                        &self.group,
                        topic,
                        partition,
                        p.consumer_lag_stored,
                    );
                }
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    /// Runs on the driver thread before librdkafka applies the change.
    fn pre_rebalance(&self, base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => self.assign(list),
            Rebalance::Revoke(list) => self.revoke(base, list),
            Rebalance::Error(e) => {
                self.metrics.record_bus_error("rebalance");
                tracing::warn!(group = self.group, error = %e, "rebalance error");
            }
        }
    }

    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        _offsets: &TopicPartitionList,
    ) {
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                self.metrics.record_bus_error("commit");
                tracing::warn!(group = self.group, error = %e, "offset commit failed; it is retried with the next one");
            }
        }
    }
}

impl GroupContext {
    /// Splits every newly assigned partition into its own queue — before the assignment takes
    /// effect, so none of its records can reach the shared queue — and hands them to the engine.
    fn assign(&self, list: &TopicPartitionList) {
        let Some(consumer) = self.consumer.get().and_then(Weak::upgrade) else {
            return;
        };
        let mut readers: Vec<Box<dyn PartitionReader>> = Vec::new();
        for element in list.elements() {
            let (topic, partition) = (element.topic().to_owned(), element.partition());
            let Some(queue) = consumer.split_partition_queue(&topic, partition) else {
                tracing::error!(
                    group = self.group,
                    topic,
                    partition,
                    "cannot split the partition's queue"
                );
                continue;
            };
            let Ok(partition_u32) = u32::try_from(partition) else {
                continue;
            };
            let token = CancellationToken::new();
            self.tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((topic.clone(), partition), token.clone());
            readers.push(Box::new(KafkaPartitionReader {
                tp: TopicPartition {
                    topic,
                    partition: partition_u32,
                },
                queue,
                consumer: consumer.clone(),
                revoked: token,
                group: self.group.clone(),
                inner: self.inner.clone(),
                txn: None,
            }));
        }
        tracing::info!(
            group = self.group,
            partitions = readers.len(),
            "partitions assigned"
        );
        let _ = self.events.send(bus::Rebalance::Assigned(readers));
    }

    /// Waits (bounded) for the engine to finish the revoked partitions, then cuts off their
    /// readers and commits what they stored, before librdkafka releases them.
    fn revoke(&self, base: &BaseConsumer<Self>, list: &TopicPartitionList) {
        let partitions: Vec<TopicPartition> = list
            .elements()
            .iter()
            .filter_map(|e| {
                Some(TopicPartition {
                    topic: e.topic().to_owned(),
                    partition: u32::try_from(e.partition()).ok()?,
                })
            })
            .collect();
        tracing::info!(
            group = self.group,
            partitions = partitions.len(),
            "partitions revoked"
        );
        if !self.closing.load(Ordering::SeqCst) && !partitions.is_empty() {
            let (done, mut done_rx) = oneshot::channel();
            if self
                .events
                .send(bus::Rebalance::Revoked {
                    partitions: partitions.clone(),
                    done,
                })
                .is_ok()
            {
                // This is the driver thread, not a runtime worker: blocking here is safe, and a
                // nested `block_on` would not be.
                let deadline = Instant::now() + REVOKE_WAIT;
                loop {
                    match done_rx.try_recv() {
                        Ok(()) | Err(oneshot::error::TryRecvError::Closed) => break,
                        Err(oneshot::error::TryRecvError::Empty) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(oneshot::error::TryRecvError::Empty) => {
                            tracing::warn!(
                                group = self.group,
                                "revoke: in-flight work did not finish in time; it will be redelivered"
                            );
                            break;
                        }
                    }
                }
            }
        }
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        for tp in &partitions {
            if let Some(token) = tokens.remove(&(tp.topic.clone(), tp.partition as i32)) {
                token.cancel();
            }
        }
        drop(tokens);
        if !base.assignment_lost() {
            match base.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => {
                    self.metrics.record_bus_error("commit");
                    tracing::warn!(group = self.group, error = %e, "commit on revoke failed; the new owner may redeliver");
                }
            }
        }
    }
}

/// A subscription's handle: rebalances from the driver thread; dropping or closing it leaves
/// the group.
struct KafkaSubscription {
    events: mpsc::UnboundedReceiver<bus::Rebalance>,
    shutdown: Option<oneshot::Sender<()>>,
    closed: Option<oneshot::Receiver<()>>,
    _claim: crate::bus::GroupClaim,
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn next_rebalance(&mut self) -> Result<bus::Rebalance, BusError> {
        self.events.recv().await.ok_or(BusError::Closed)
    }

    async fn close(mut self: Box<Self>) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(closed) = self.closed.take() {
            let _ = tokio::time::timeout(LEAVE_WAIT + Duration::from_secs(2), closed).await;
        }
    }
}

impl Drop for KafkaSubscription {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

struct KafkaPartitionReader {
    tp: TopicPartition,
    queue: StreamPartitionQueue<GroupContext>,
    consumer: Arc<GroupConsumer>,
    revoked: CancellationToken,
    group: String,
    inner: Arc<Inner>,
    /// The partition's transactional producer, created by the first exactly-once record.
    txn: Option<super::txn::PartitionTxn>,
}

#[async_trait]
impl PartitionReader for KafkaPartitionReader {
    fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    async fn next(&mut self) -> Result<Record, BusError> {
        loop {
            tokio::select! {
                biased;
                _ = self.revoked.cancelled() => return Err(BusError::Closed),
                // A split queue's wake-up can be lost (rust-rdkafka #665): look again every second.
                r = tokio::time::timeout(Duration::from_secs(1), self.queue.recv()) => match r {
                    Err(_) => continue,
                    Ok(Ok(m)) => return Ok(to_record(&m)),
                    Ok(Err(KafkaError::PartitionEOF(_))) => continue,
                    Ok(Err(e)) => return Err(BusError::Unavailable(format!("{}: {e}", self.tp))),
                },
            }
        }
    }

    async fn commit(&mut self, next_offset: u64) -> Result<(), BusError> {
        if self.revoked.is_cancelled() {
            return Err(BusError::Closed);
        }
        let offset = i64::try_from(next_offset)
            .map_err(|_| BusError::Storage(format!("offset {next_offset} out of range")))?;
        let mut list = TopicPartitionList::with_capacity(1);
        list.add_partition_offset(
            &self.tp.topic,
            self.tp.partition as i32,
            Offset::Offset(offset),
        )
        .map_err(|e| BusError::Unavailable(e.to_string()))?;
        // Stored in memory; committed within a second, and synchronously on revoke and close.
        self.consumer
            .store_offsets(&list)
            .map_err(|e| BusError::Unavailable(format!("{}: {e}", self.tp)))
    }

    async fn begin_transaction(&mut self) -> Result<Arc<dyn bus::TxnPublisher>, BusError> {
        if self.revoked.is_cancelled() {
            return Err(BusError::Closed);
        }
        let txn = match &mut self.txn {
            Some(txn) => txn,
            empty => empty.insert(
                super::txn::PartitionTxn::start(self.inner.clone(), &self.group, &self.tp).await?,
            ),
        };
        txn.begin()
    }

    async fn commit_transaction(&mut self, next_offset: u64) -> Result<(), BusError> {
        let Some(txn) = self.txn.as_mut() else {
            return Err(BusError::Unavailable(format!(
                "{}: no transaction is open",
                self.tp
            )));
        };
        if self.revoked.is_cancelled() {
            let _ = txn.abort().await;
            return Err(BusError::Closed);
        }
        let Some(metadata) = self.consumer.group_metadata() else {
            let _ = txn.abort().await;
            return Err(BusError::Unavailable(format!(
                "{}: the consumer has no group metadata",
                self.tp
            )));
        };
        match txn.commit(metadata, next_offset).await {
            Ok(()) => Ok(()),
            Err((err, fatal)) => {
                self.inner.metrics.record_bus_error("transaction");
                if fatal {
                    // Fenced or broken: the next record starts over with a new producer,
                    // whose init_transactions settles what this one left behind.
                    self.txn = None;
                }
                Err(err)
            }
        }
    }

    async fn abort_transaction(&mut self) {
        if let Some(txn) = self.txn.as_mut()
            && !txn.abort().await
        {
            self.txn = None;
        }
    }
}

pub(super) fn to_record(m: &BorrowedMessage<'_>) -> Record {
    Record {
        topic: m.topic().to_owned(),
        partition: u32::try_from(m.partition()).unwrap_or(0),
        offset: u64::try_from(m.offset()).unwrap_or(0),
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        headers: m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| bus::Header::new(h.key, h.value.unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default(),
        timestamp_ms: m
            .timestamp()
            .to_millis()
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or(0),
    }
}
