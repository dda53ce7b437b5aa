//! Reading the local bus: group members' partition readers and the group-less topic reader.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use super::Inner;
use super::store::{Partition, group_key};
use crate::bus::GroupClaim;
use crate::bus::{
    BusError, PartitionReader, Rebalance, Record, Subscription, TopicPartition, TopicReader,
};

/// A position in one partition, woken by the partition's durable high-water mark.
pub(super) struct Cursor {
    partition: Arc<Partition>,
    durable: watch::Receiver<u64>,
    position: u64,
}

impl Cursor {
    pub(super) fn new(partition: Arc<Partition>, position: u64) -> Self {
        let durable = partition.watch_durable();
        Self {
            partition,
            durable,
            position,
        }
    }

    /// Starts after everything already durable.
    pub(super) fn at_end(partition: Arc<Partition>) -> Self {
        let durable = partition.watch_durable();
        let position = *durable.borrow();
        Self {
            partition,
            durable,
            position,
        }
    }

    /// The next record without waiting, or `None` when caught up. A record that cannot be
    /// decoded is reported once, by offset, and skipped: it can never be delivered, and stopping
    /// there would wedge the partition with no way (in the trait) to seek past it. Storage
    /// errors do not move the position, so calling again retries.
    fn try_next(&mut self) -> Result<Option<Record>, BusError> {
        // Marking the value seen before reading means a publish racing with this read will
        // still wake the following `changed()`.
        let end = *self.durable.borrow_and_update();
        if self.position >= end {
            return Ok(None);
        }
        match self.partition.first_in(self.position, end)? {
            Some((offset, record)) => {
                self.position = offset + 1;
                record.map(Some)
            }
            None => {
                // Retention removed everything up to the high-water mark.
                self.position = end;
                Ok(None)
            }
        }
    }

    async fn changed(&mut self) -> Result<(), BusError> {
        // The sender lives as long as the partition, which this cursor keeps alive.
        self.durable.changed().await.map_err(|_| BusError::Closed)
    }

    async fn next(&mut self) -> Result<Record, BusError> {
        loop {
            if let Some(record) = self.try_next()? {
                return Ok(record);
            }
            self.changed().await?;
        }
    }
}

/// The only member of its group in this process: the whole assignment comes at once and never
/// changes.
pub(super) struct LocalSubscription {
    pub(super) initial: Option<Vec<Box<dyn PartitionReader>>>,
    pub(super) _claim: Arc<GroupClaim>,
}

#[async_trait]
impl Subscription for LocalSubscription {
    async fn next_rebalance(&mut self) -> Result<Rebalance, BusError> {
        match self.initial.take() {
            Some(readers) => Ok(Rebalance::Assigned(readers)),
            None => std::future::pending().await,
        }
    }
}

pub(super) struct GroupReader {
    inner: Arc<Inner>,
    tp: TopicPartition,
    cursor: Cursor,
    commit_key: Vec<u8>,
    group: String,
    _claim: Arc<GroupClaim>,
}

impl GroupReader {
    /// Starts at the group's committed offset, or at the oldest retained record.
    pub(super) fn new(
        inner: Arc<Inner>,
        group: &str,
        partition: Arc<Partition>,
        claim: Arc<GroupClaim>,
    ) -> Result<Self, BusError> {
        let tp = partition.tp.clone();
        let commit_key = group_key(group, &tp);
        let committed = match inner.groups.get(&commit_key) {
            Ok(Some(value)) => super::store::decode_u64(&value, || {
                format!("committed offset of group {group:?} on {tp}")
            })?,
            Ok(None) => 0,
            Err(e) => {
                return Err(BusError::Storage(format!(
                    "reading the committed offset of group {group:?} on {tp}: {e}"
                )));
            }
        };
        Ok(Self {
            inner,
            tp,
            cursor: Cursor::new(partition, committed),
            commit_key,
            group: group.to_owned(),
            _claim: claim,
        })
    }
}

#[async_trait]
impl PartitionReader for GroupReader {
    fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    async fn next(&mut self) -> Result<Record, BusError> {
        self.cursor.next().await
    }

    async fn commit(&mut self, next_offset: u64) -> Result<(), BusError> {
        self.inner
            .groups
            .insert(&self.commit_key, &next_offset.to_be_bytes()[..])
            .map_err(|e| {
                BusError::Storage(format!(
                    "committing offset {next_offset} for group {:?} on {}: {e}",
                    self.group, self.tp
                ))
            })?;
        self.inner.flusher.flush(&self.inner.db).await
    }
}

/// Reads every partition of a topic, serving them in turn so a busy partition cannot starve
/// the others.
pub(super) struct MergedReader {
    cursors: Vec<Cursor>,
    next_index: usize,
}

impl MergedReader {
    pub(super) fn new(cursors: Vec<Cursor>) -> Self {
        Self {
            cursors,
            next_index: 0,
        }
    }
}

#[async_trait]
impl TopicReader for MergedReader {
    async fn next(&mut self) -> Result<Record, BusError> {
        if self.cursors.is_empty() {
            return std::future::pending().await;
        }
        loop {
            let count = self.cursors.len();
            for step in 0..count {
                let index = (self.next_index + step) % count;
                if let Some(record) = self.cursors[index].try_next()? {
                    self.next_index = (index + 1) % count;
                    return Ok(record);
                }
            }
            let waits = self
                .cursors
                .iter_mut()
                .map(|cursor| Box::pin(cursor.changed()));
            futures::future::select_all(waits).await.0?;
        }
    }
}
