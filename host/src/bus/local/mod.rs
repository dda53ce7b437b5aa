//! The embedded durable bus: Kafka's model (partitions, offsets, consumer groups) on sled.
//!
//! Guarantees: a publish returns only once the record is on disk; offsets are dense, ordered
//! and never reused per partition; a commit returns only once it is on disk; readers only ever
//! see records that are on disk. Together these give at-least-once delivery across `kill -9`.
//!
//! One `LocalBus` per `sled::Db`: offsets are assigned in memory, so two buses on one database
//! would hand out the same offsets. Retention runs only if the host calls
//! [`LocalBus::spawn_retention`].

mod reader;
mod store;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use self::reader::{Cursor, GroupReader, LocalSubscription, MergedReader};
use self::store::{GroupCommit, Partition, Topic, lock};
pub use self::store::{kafka_partition, murmur2};
use crate::bus::{
    Bus, BusError, Enqueued, GroupClaims, Outgoing, PartitionReader, PendingReceipt, Receipt,
    StartAt, Subscription, TopicPartition, TopicReader, validate_topic,
};

/// How often the retention task looks for expired records.
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalBusOptions {
    /// Partitions of a topic created from now on; existing topics keep their count.
    pub partitions: u32,
    /// Records older than this are deleted (by [`LocalBus::spawn_retention`]).
    pub retention: Duration,
}

impl Default for LocalBusOptions {
    fn default() -> Self {
        Self {
            partitions: 4,
            retention: Duration::from_secs(7 * 24 * 60 * 60),
        }
    }
}

/// The local bus. Cloning is cheap and clones share everything.
#[derive(Clone)]
pub struct LocalBus {
    inner: Arc<Inner>,
}

type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

struct Inner {
    db: sled::Db,
    topics_tree: sled::Tree,
    groups: sled::Tree,
    next_offsets: sled::Tree,
    options: LocalBusOptions,
    topics: Mutex<HashMap<String, Arc<Topic>>>,
    /// (group, topic) pairs with a live subscription in this process.
    /// Shared by each subscription and its readers; released when the last of them is dropped.
    claims: GroupClaims,
    flusher: GroupCommit,
    /// Serialises retention passes, whose marker writes must only move forward.
    retention: Mutex<()>,
    /// Milliseconds since the Unix epoch; replaceable so tests can age records.
    clock: Clock,
    retention_interval: Duration,
}

fn system_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl LocalBus {
    pub fn open(db: sled::Db, options: LocalBusOptions) -> Result<LocalBus, BusError> {
        Self::open_with(db, options, Arc::new(system_clock), RETENTION_INTERVAL)
    }

    fn open_with(
        db: sled::Db,
        options: LocalBusOptions,
        clock: Clock,
        retention_interval: Duration,
    ) -> Result<LocalBus, BusError> {
        if options.partitions == 0 {
            return Err(BusError::Unavailable(
                "local bus: partitions must be at least 1".into(),
            ));
        }
        let open = |name: &str| {
            db.open_tree(name)
                .map_err(|e| BusError::Storage(format!("opening tree {name}: {e}")))
        };
        let inner = Inner {
            topics_tree: open(store::TOPICS_TREE)?,
            groups: open(store::GROUPS_TREE)?,
            next_offsets: open(store::NEXT_OFFSETS_TREE)?,
            db,
            options,
            topics: Mutex::default(),
            claims: GroupClaims::default(),
            flusher: GroupCommit::default(),
            retention: Mutex::default(),
            clock,
            retention_interval,
        };
        Ok(LocalBus {
            inner: Arc::new(inner),
        })
    }

    /// Starts the background task that deletes records older than `retention`, once at start
    /// and then every minute. Needs a Tokio runtime. The task ends by itself once every clone
    /// of this bus is dropped; aborting the handle stops it earlier.
    pub fn spawn_retention(&self) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        let interval = self.inner.retention_interval;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                // sled calls and the fsync block; keep them off the async workers.
                match tokio::task::spawn_blocking(move || inner.enforce_retention()).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(purged)) => {
                        tracing::debug!(purged, "local bus retention deleted expired records")
                    }
                    Ok(Err(error)) => tracing::warn!(%error, "local bus retention pass failed"),
                    Err(error) => tracing::warn!(%error, "local bus retention pass panicked"),
                }
            }
        })
    }

    /// Runs one retention pass now and returns how many records it deleted. Blocking: call it
    /// from `spawn_blocking` in async code.
    pub fn enforce_retention(&self) -> Result<u64, BusError> {
        self.inner.enforce_retention()
    }
}

impl Inner {
    /// The topic, loading or creating it on first use.
    fn topic(&self, name: &str) -> Result<Arc<Topic>, BusError> {
        validate_topic(name)?;
        let mut topics = lock(&self.topics);
        if let Some(topic) = topics.get(name) {
            return Ok(Arc::clone(topic));
        }
        let count = self.partition_count(name)?;
        let partitions = (0..count)
            .map(|partition| {
                let tp = TopicPartition {
                    topic: name.to_owned(),
                    partition,
                };
                Partition::open(&self.db, &self.next_offsets, tp).map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let topic = Arc::new(Topic::new(partitions));
        topics.insert(name.to_owned(), Arc::clone(&topic));
        Ok(topic)
    }

    /// The stored partition count, recording the default for a new topic. No flush: a topic
    /// only matters once it holds a record or a commit, and their flush covers this write.
    fn partition_count(&self, name: &str) -> Result<u32, BusError> {
        let fresh = self.options.partitions.to_be_bytes();
        let current = match self
            .topics_tree
            .compare_and_swap(name, None::<&[u8]>, Some(&fresh[..]))
        {
            Ok(Ok(())) => return Ok(self.options.partitions),
            Ok(Err(conflict)) => conflict.current,
            Err(e) => {
                return Err(BusError::Storage(format!(
                    "recording topic {name:?} in {}: {e}",
                    store::TOPICS_TREE
                )));
            }
        };
        let Some(value) = current else {
            return Err(BusError::Storage(format!(
                "topic {name:?} vanished from {} while being created",
                store::TOPICS_TREE
            )));
        };
        let count = <[u8; 4]>::try_from(&value[..])
            .map(u32::from_be_bytes)
            .map_err(|_| {
                BusError::Storage(format!(
                    "partition count of topic {name:?}: expected 4 bytes, found {}",
                    value.len()
                ))
            })?;
        if count == 0 {
            return Err(BusError::Storage(format!(
                "topic {name:?} is stored with 0 partitions"
            )));
        }
        Ok(count)
    }

    fn enforce_retention(&self) -> Result<u64, BusError> {
        let _pass = lock(&self.retention);
        let retention_ms = u64::try_from(self.options.retention.as_millis()).unwrap_or(u64::MAX);
        let cutoff_ms = (self.clock)().saturating_sub(retention_ms);
        // Every topic on disk, not only those touched since start: a topic nobody reads any
        // more still expires.
        let mut names = Vec::new();
        for entry in self.topics_tree.iter().keys() {
            let key = entry
                .map_err(|e| BusError::Storage(format!("listing {}: {e}", store::TOPICS_TREE)))?;
            match String::from_utf8(key.to_vec()) {
                Ok(name) => names.push(name),
                Err(_) => {
                    tracing::warn!(key = ?key, "local bus: skipping a non-UTF-8 topic name in retention")
                }
            }
        }
        // One broken partition must not stop retention everywhere else; report the first error.
        let mut purged = 0;
        let mut first_error = None;
        for name in names {
            let partitions = match self.topic(&name) {
                Ok(topic) => topic.partitions.clone(),
                Err(error) => {
                    first_error.get_or_insert(error);
                    continue;
                }
            };
            for partition in partitions {
                match partition.purge_before(cutoff_ms, &self.db, &self.next_offsets) {
                    Ok(count) => purged += count,
                    Err(error) => {
                        first_error.get_or_insert(error);
                    }
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(purged),
        }
    }
}

impl LocalBus {
    /// Appends `record` to its partition now; the future resolves once it is on disk.
    fn append(&self, record: Outgoing) -> Result<PendingReceipt, BusError> {
        let topic = self.inner.topic(&record.topic)?;
        let Some(partition) = topic.partition_for(record.key.as_deref()).cloned() else {
            return Err(BusError::Storage(format!(
                "topic {:?} has no partitions",
                record.topic
            )));
        };
        let value = store::encode_record(
            &partition.tp,
            (self.inner.clock)(),
            record.key.as_deref(),
            &record.payload,
            &record.headers,
        )?;
        let offset = partition.append(value)?;
        // The flush runs in its own task so that, should the returned future be dropped
        // mid-flush, the record still becomes visible to readers once it is on disk.
        let inner = Arc::clone(&self.inner);
        let flushed = Arc::clone(&partition);
        let flush = tokio::spawn(async move {
            inner.flusher.flush(&inner.db).await?;
            flushed.mark_durable(offset + 1);
            Ok::<(), BusError>(())
        });
        Ok(Box::pin(async move {
            flush.await.map_err(|e| {
                BusError::Storage(format!("flushing {} offset {offset}: {e}", partition.tp))
            })??;
            Ok(Receipt {
                topic: record.topic,
                partition: partition.tp.partition,
                offset,
            })
        }))
    }
}

#[async_trait]
impl Bus for LocalBus {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn publish(&self, record: Outgoing) -> Result<Receipt, BusError> {
        self.append(record)?.await
    }

    /// Appended now (in order), durable once the flush the returned future waits for is done.
    fn enqueue(&self, record: Outgoing) -> Enqueued {
        match self.append(record) {
            Ok(pending) => Enqueued::Queued(pending),
            Err(e) => Enqueued::Queued(Box::pin(async move { Err(e) })),
        }
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[String],
    ) -> Result<Box<dyn Subscription>, BusError> {
        let mut unique: Vec<String> = Vec::with_capacity(topics.len());
        for topic in topics {
            validate_topic(topic)?;
            if !unique.contains(topic) {
                unique.push(topic.clone());
            }
        }
        let claim = Arc::new(self.inner.claims.acquire(group, &unique)?);
        let mut readers: Vec<Box<dyn PartitionReader>> = Vec::new();
        for name in &unique {
            let topic = self.inner.topic(name)?;
            for partition in &topic.partitions {
                let reader = GroupReader::new(
                    Arc::clone(&self.inner),
                    group,
                    Arc::clone(partition),
                    Arc::clone(&claim),
                )?;
                readers.push(Box::new(reader));
            }
        }
        Ok(Box::new(LocalSubscription {
            initial: Some(readers),
            _claim: claim,
        }))
    }

    async fn read(&self, topic: &str, start: StartAt) -> Result<Box<dyn TopicReader>, BusError> {
        let topic = self.inner.topic(topic)?;
        let cursors = topic
            .partitions
            .iter()
            .map(|partition| match start {
                StartAt::Beginning => Cursor::new(Arc::clone(partition), 0),
                StartAt::End => Cursor::at_end(Arc::clone(partition)),
            })
            .collect();
        Ok(Box::new(MergedReader::new(cursors)))
    }
}
