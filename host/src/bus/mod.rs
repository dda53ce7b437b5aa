//! The event bus: what agents subscribe to and publish on.
//!
//! One trait, two implementations: the embedded durable log in sled (`local`, the default) and
//! Kafka. The delivery engine (`crate::delivery`) is written against this trait only, so the
//! at-least-once, per-partition-order, retry and dead-letter semantics are the same on both.
//!
//! The model is Kafka's: topics split into partitions, records addressed by offset, consumer
//! groups owning partitions and committing the next offset to read.

pub mod headers;
pub mod kafka;
pub mod local;

pub use crate::config::validate_topic;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// A record header. Values are bytes, as in Kafka.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub key: String,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

impl Header {
    pub fn new(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// A record stored on the bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<Header>,
    /// Milliseconds since the Unix epoch, stamped when the bus accepted the record.
    pub timestamp_ms: u64,
}

impl Record {
    /// The value of the last header named `key`, if any.
    pub fn header(&self, key: &str) -> Option<&[u8]> {
        find_header(&self.headers, key)
    }
}

/// The value of the last header named `key` in `headers` (later headers win, as in Kafka clients).
pub fn find_header<'a>(headers: &'a [Header], key: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .rev()
        .find(|h| h.key == key)
        .map(|h| h.value.as_slice())
}

/// Sets header `key` to `value`, replacing every earlier header of that name.
pub fn set_header(headers: &mut Vec<Header>, key: &str, value: impl Into<Vec<u8>>) {
    headers.retain(|h| h.key != key);
    headers.push(Header::new(key, value));
}

/// A record to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<Header>,
}

/// Where a published record was stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
}

/// A record's place as the audit log and traces name it, `topic[partition]@offset`: the same
/// text for its publish and for each delivery of it, so a trace can tie them together.
pub fn position(topic: &str, partition: u32, offset: u64) -> String {
    format!("{topic}[{partition}]@{offset}")
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}

/// Where a reader outside any consumer group starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest record still retained.
    Beginning,
    /// Only records published after the reader was created.
    End,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error(transparent)]
    InvalidTopic(#[from] crate::config::InvalidTopic),
    #[error("consumer group {group:?} already has a member for topic {topic:?} in this host")]
    GroupBusy { group: String, topic: String },
    #[error("bus storage: {0}")]
    Storage(String),
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    #[error("the bus is shut down")]
    Closed,
    #[error("{0}")]
    Unsupported(String),
}

/// A record the bus has taken, in order; resolves once it is durable (or failed).
pub type PendingReceipt = futures::future::BoxFuture<'static, Result<Receipt, BusError>>;

/// What [`Bus::enqueue`] did with a record.
pub enum Enqueued {
    /// Taken, after every record enqueued or published before it; durable once this resolves.
    Queued(PendingReceipt),
    /// Not taken: the bus could not without waiting (a topic still to create, a full queue).
    /// Publish it instead.
    Busy(Outgoing),
}

/// The bus every capability and the delivery engine talk to.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// `"local"` or `"kafka"`, for logs and metrics.
    fn kind(&self) -> &'static str;

    /// Publishes one record; returns once the bus has durably accepted it.
    async fn publish(&self, record: Outgoing) -> Result<Receipt, BusError>;

    /// Hands one record to the bus without waiting for it to be durable, when that is possible
    /// at once: the order of records enqueued and published is kept. The default never can.
    fn enqueue(&self, record: Outgoing) -> Enqueued {
        Enqueued::Busy(record)
    }

    /// Joins consumer group `group` for `topics`. Partitions are handed out through the
    /// returned subscription's rebalances.
    async fn subscribe(
        &self,
        group: &str,
        topics: &[String],
    ) -> Result<Box<dyn Subscription>, BusError>;

    /// Reads `topic` outside any consumer group, from every partition (for `agenthost consume`).
    async fn read(&self, topic: &str, start: StartAt) -> Result<Box<dyn TopicReader>, BusError>;

    /// Whether `delivery.mode = "exactly-once"` can be honoured for a subscription to `topic`:
    /// `Err` says why not. Asked at deploy, so an agent is refused rather than silently
    /// downgraded to at-least-once.
    async fn check_transactions(&self, topic: &str) -> Result<(), BusError> {
        let _ = topic;
        Err(BusError::Unsupported(format!(
            "delivery.mode = \"exactly-once\" needs Kafka transactions; the {} bus has none \
             (use bus.kind = \"kafka\" with a broker that supports them, or mode = \"at-least-once\")",
            self.kind()
        )))
    }
}

/// Where an exactly-once invocation's publishes go: into the open transaction of the partition
/// whose record is being handled, visible to read-committed consumers only once the record's
/// offset commits with them.
#[async_trait]
pub trait TxnPublisher: Send + Sync {
    async fn publish(&self, record: Outgoing) -> Result<Receipt, BusError>;
}

/// A change of what this group member owns.
pub enum Rebalance {
    /// These partitions are now ours; each reader starts at the group's committed offset.
    Assigned(Vec<Box<dyn PartitionReader>>),
    /// These partitions are being taken away. Stop dispatching them, let in-flight work finish
    /// and commit, then send on `done` so the bus can release them.
    Revoked {
        partitions: Vec<TopicPartition>,
        done: oneshot::Sender<()>,
    },
}

/// Membership of one consumer group.
#[async_trait]
pub trait Subscription: Send {
    /// Waits for the next rebalance. The first call returns the initial assignment.
    /// `Err(Closed)` means the membership ended; subscribe again to rejoin.
    async fn next_rebalance(&mut self) -> Result<Rebalance, BusError>;

    /// Leaves the group, committing what the readers stored. Dropping a subscription leaves too,
    /// but without waiting for that to finish.
    async fn close(self: Box<Self>) {}
}

/// Reads one assigned partition in offset order and commits progress on it.
#[async_trait]
pub trait PartitionReader: Send {
    fn topic_partition(&self) -> &TopicPartition;

    /// The next record after the last one returned; waits until one is available.
    /// `Err(Closed)` means the partition was revoked: stop reading it. Cancel-safe.
    async fn next(&mut self) -> Result<Record, BusError>;

    /// Records that every offset below `next_offset` is finished for this group. The local bus
    /// makes it durable before returning; Kafka commits stored offsets within
    /// `auto.commit.interval.ms` and always before the partition is released or the group left.
    /// Either way a restart resumes at or before `next_offset`, never after it.
    /// `Err(Closed)` means the partition was revoked: the new owner will redeliver.
    async fn commit(&mut self, next_offset: u64) -> Result<(), BusError>;

    /// Opens a transaction on this partition (exactly-once delivery): records published
    /// through the returned publisher become visible together with the offset commit of
    /// [`PartitionReader::commit_transaction`], or never. One transaction at a time.
    async fn begin_transaction(&mut self) -> Result<std::sync::Arc<dyn TxnPublisher>, BusError> {
        Err(BusError::Unsupported(
            "this bus has no transactions".to_owned(),
        ))
    }

    /// Commits the open transaction together with `next_offset` for this group. On `Err` the
    /// transaction was aborted (or fenced by a newer owner of the partition): nothing it
    /// published becomes visible and the offset did not move.
    async fn commit_transaction(&mut self, next_offset: u64) -> Result<(), BusError> {
        let _ = next_offset;
        Err(BusError::Unsupported(
            "this bus has no transactions".to_owned(),
        ))
    }

    /// Aborts the open transaction, if any: what it published is discarded.
    async fn abort_transaction(&mut self) {}
}

/// Reads a topic's partitions outside any group.
#[async_trait]
pub trait TopicReader: Send {
    /// The next record from any partition (offset order within each); waits until one arrives.
    async fn next(&mut self) -> Result<Record, BusError>;
}

/// The (group, topic) memberships live in this process. A second subscription of the same group
/// to the same topic is refused with [`BusError::GroupBusy`]: on the local bus it would deliver
/// every record twice, on Kafka it would split the partitions between two agents of one host —
/// never what a manifest means.
#[derive(Clone, Default)]
pub struct GroupClaims(
    std::sync::Arc<std::sync::Mutex<std::collections::HashSet<(String, String)>>>,
);

impl GroupClaims {
    /// Claims `group` for every topic in `topics`, or none of them.
    pub fn acquire(&self, group: &str, topics: &[String]) -> Result<GroupClaim, BusError> {
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let wanted: Vec<(String, String)> = topics
            .iter()
            .map(|t| (group.to_owned(), t.clone()))
            .collect();
        if let Some((group, topic)) = wanted.iter().find(|pair| held.contains(*pair)) {
            return Err(BusError::GroupBusy {
                group: group.clone(),
                topic: topic.clone(),
            });
        }
        held.extend(wanted.iter().cloned());
        Ok(GroupClaim {
            claims: self.clone(),
            held: wanted,
        })
    }
}

/// A subscription's claim; released when dropped.
pub struct GroupClaim {
    claims: GroupClaims,
    held: Vec<(String, String)>,
}

impl Drop for GroupClaim {
    fn drop(&mut self) {
        let mut held = self.claims.0.lock().unwrap_or_else(|p| p.into_inner());
        for pair in &self.held {
            held.remove(pair);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_headers_win() {
        let mut headers = vec![
            Header::new("a", "1"),
            Header::new("b", "2"),
            Header::new("a", "3"),
        ];
        assert_eq!(find_header(&headers, "a"), Some(&b"3"[..]));
        set_header(&mut headers, "a", "4");
        assert_eq!(headers.iter().filter(|h| h.key == "a").count(), 1);
        assert_eq!(find_header(&headers, "a"), Some(&b"4"[..]));
    }
}
