//! What the local bus keeps in sled, and the code that touches it directly.
//!
//! Layout (every tree name starts with `bus/` because the `sled::Db` is shared with the rest
//! of the host):
//! - `bus/topics`: topic name → partition count (u32 BE), fixed when the topic is first used.
//! - `bus/t/{topic}/{partition}`: offset (u64 BE) → [`RECORD_FORMAT_V1`] ++ postcard record.
//! - `bus/groups`: [`group_key`] → next offset the group reads (u64 BE).
//! - `bus/next-offsets`: [`marker_key`] → lowest offset the partition may still hand out, written
//!   by retention so that emptying a partition does not make its offsets reusable.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::bus::{BusError, Header, Record, TopicPartition};

pub(super) const TOPICS_TREE: &str = "bus/topics";
pub(super) const GROUPS_TREE: &str = "bus/groups";
pub(super) const NEXT_OFFSETS_TREE: &str = "bus/next-offsets";

/// Leading byte of every stored record, so the encoding can change without guessing.
const RECORD_FORMAT_V1: u8 = 1;

/// How many records retention deletes per batch (one marker write and flush each).
const PURGE_CHUNK: usize = 1024;

pub(super) fn partition_tree_name(topic: &str, partition: u32) -> String {
    format!("bus/t/{topic}/{partition}")
}

/// Group names are free-form, so the group is length-prefixed; topic names cannot contain NUL.
pub(super) fn group_key(group: &str, tp: &TopicPartition) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + group.len() + tp.topic.len() + 5);
    key.extend_from_slice(&(group.len() as u32).to_be_bytes());
    key.extend_from_slice(group.as_bytes());
    key.extend_from_slice(tp.topic.as_bytes());
    key.push(0);
    key.extend_from_slice(&tp.partition.to_be_bytes());
    key
}

fn marker_key(tp: &TopicPartition) -> Vec<u8> {
    let mut key = Vec::with_capacity(tp.topic.len() + 5);
    key.extend_from_slice(tp.topic.as_bytes());
    key.push(0);
    key.extend_from_slice(&tp.partition.to_be_bytes());
    key
}

pub(super) fn decode_u64(bytes: &[u8], what: impl FnOnce() -> String) -> Result<u64, BusError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| {
            BusError::Storage(format!(
                "{}: expected 8 bytes, found {}",
                what(),
                bytes.len()
            ))
        })
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent before anything can panic, so a
    // poisoned lock carries no half-written state.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Kafka's `Utils.murmur2`: the hash its default partitioner applies to record keys. Keeping it
/// bit-exact means a key lands in the same partition number here as on a Kafka cluster.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    // Java computes `seed ^ length` on an int; the cast keeps the same low 32 bits.
    let mut h = SEED ^ data.len() as u32;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for a keyed record:
/// `toPositive(murmur2(key)) % partitions`. `partitions` must not be 0.
pub fn kafka_partition(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) as u32 & 0x7fff_ffff) % partitions
}

#[derive(Serialize)]
struct StoredRecordRef<'a> {
    timestamp_ms: u64,
    #[serde(with = "serde_bytes")]
    key: Option<&'a [u8]>,
    #[serde(with = "serde_bytes")]
    payload: &'a [u8],
    headers: &'a [Header],
}

/// Must mirror [`StoredRecordRef`] field for field; `timestamp_ms` stays first so retention can
/// read it without decoding the rest.
#[derive(Deserialize)]
struct StoredRecord {
    timestamp_ms: u64,
    #[serde(with = "serde_bytes")]
    key: Option<Vec<u8>>,
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
    headers: Vec<Header>,
}

pub(super) fn encode_record(
    tp: &TopicPartition,
    timestamp_ms: u64,
    key: Option<&[u8]>,
    payload: &[u8],
    headers: &[Header],
) -> Result<Vec<u8>, BusError> {
    let record = StoredRecordRef {
        timestamp_ms,
        key,
        payload,
        headers,
    };
    postcard::to_extend(&record, vec![RECORD_FORMAT_V1])
        .map_err(|e| BusError::Storage(format!("encoding a record for {tp}: {e}")))
}

fn record_body<'a>(
    tp: &TopicPartition,
    offset: u64,
    bytes: &'a [u8],
) -> Result<&'a [u8], BusError> {
    match bytes.split_first() {
        Some((&RECORD_FORMAT_V1, body)) => Ok(body),
        Some((version, _)) => Err(corrupt(tp, offset, format!("unknown format {version}"))),
        None => Err(corrupt(tp, offset, "empty value")),
    }
}

fn corrupt(tp: &TopicPartition, offset: u64, why: impl std::fmt::Display) -> BusError {
    BusError::Storage(format!("corrupt record in {tp} at offset {offset}: {why}"))
}

pub(super) fn decode_record(
    tp: &TopicPartition,
    offset: u64,
    bytes: &[u8],
) -> Result<Record, BusError> {
    let stored: StoredRecord = postcard::from_bytes(record_body(tp, offset, bytes)?)
        .map_err(|e| corrupt(tp, offset, e))?;
    Ok(Record {
        topic: tp.topic.clone(),
        partition: tp.partition,
        offset,
        key: stored.key,
        payload: stored.payload,
        headers: stored.headers,
        timestamp_ms: stored.timestamp_ms,
    })
}

fn decode_timestamp(tp: &TopicPartition, offset: u64, bytes: &[u8]) -> Result<u64, BusError> {
    postcard::take_from_bytes::<u64>(record_body(tp, offset, bytes)?)
        .map(|(timestamp, _)| timestamp)
        .map_err(|e| corrupt(tp, offset, e))
}

/// Group commit for `Db::flush_async`: callers that arrive while a flush is running wait for
/// the next one and share it, so N concurrent publishes cost about two fsyncs, not N.
#[derive(Default)]
pub(super) struct GroupCommit {
    started: AtomicU64,
    completed: AtomicU64,
    gate: tokio::sync::Mutex<()>,
}

impl GroupCommit {
    /// Returns once everything written before the call is on disk.
    pub(super) async fn flush(&self, db: &sled::Db) -> Result<(), BusError> {
        // Flush number `needed` is started (under the gate) only after this load, so it
        // covers every write this caller made before calling.
        let needed = self.started.load(Ordering::SeqCst) + 1;
        let _gate = self.gate.lock().await;
        if self.completed.load(Ordering::SeqCst) >= needed {
            return Ok(());
        }
        let this = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        db.flush_async()
            .await
            .map_err(|e| BusError::Storage(format!("flushing the bus to disk: {e}")))?;
        self.completed.fetch_max(this, Ordering::SeqCst);
        Ok(())
    }
}

/// One partition's log.
pub(super) struct Partition {
    pub(super) tp: TopicPartition,
    tree: sled::Tree,
    /// Next offset to hand out. Held across the insert so offsets are dense and enter the tree
    /// in order; never held across an await.
    next: Mutex<u64>,
    /// One past the highest offset known to be on disk. Readers never look beyond it, so no
    /// consumer acts on a record that a crash could still take back.
    durable: watch::Sender<u64>,
}

/// A record read from a partition: its offset, and the record or why it could not be decoded.
pub(super) type Fetched = (u64, Result<Record, BusError>);

impl Partition {
    pub(super) fn open(
        db: &sled::Db,
        next_offsets: &sled::Tree,
        tp: TopicPartition,
    ) -> Result<Self, BusError> {
        let name = partition_tree_name(&tp.topic, tp.partition);
        let tree = db
            .open_tree(&name)
            .map_err(|e| BusError::Storage(format!("opening tree {name}: {e}")))?;
        let after_last = match tree.last() {
            Ok(Some((key, _))) => decode_u64(&key, || format!("last offset key in {tp}"))? + 1,
            Ok(None) => 0,
            Err(e) => {
                return Err(BusError::Storage(format!(
                    "reading the last record of {tp}: {e}"
                )));
            }
        };
        let marker = match next_offsets.get(marker_key(&tp)) {
            Ok(Some(value)) => decode_u64(&value, || format!("next-offset marker of {tp}"))?,
            Ok(None) => 0,
            Err(e) => {
                return Err(BusError::Storage(format!(
                    "reading the next-offset marker of {tp}: {e}"
                )));
            }
        };
        let next = after_last.max(marker);
        // Everything found on disk at open is durable by definition.
        let (durable, _) = watch::channel(next);
        Ok(Self {
            tp,
            tree,
            next: Mutex::new(next),
            durable,
        })
    }

    /// Stores `value` under the next offset. Not yet durable: flush, then [`Self::mark_durable`].
    pub(super) fn append(&self, value: Vec<u8>) -> Result<u64, BusError> {
        let mut next = lock(&self.next);
        let offset = *next;
        self.tree
            .insert(offset.to_be_bytes(), value)
            .map_err(|e| BusError::Storage(format!("writing {} offset {offset}: {e}", self.tp)))?;
        *next = offset + 1;
        Ok(offset)
    }

    /// Publishes that every offset below `end` is on disk. Flushes finish out of order, but a
    /// flush that covers offset n also covers every lower one (they were inserted earlier), so
    /// taking the maximum is sound.
    pub(super) fn mark_durable(&self, end: u64) {
        self.durable.send_if_modified(|current| {
            let advanced = end > *current;
            if advanced {
                *current = end;
            }
            advanced
        });
    }

    pub(super) fn watch_durable(&self) -> watch::Receiver<u64> {
        self.durable.subscribe()
    }

    /// The first record with offset in `from..end`. Offsets are dense, so a record past `from`
    /// means retention removed the ones in between and the reader skips forward.
    pub(super) fn first_in(&self, from: u64, end: u64) -> Result<Option<Fetched>, BusError> {
        let Some(item) = self
            .tree
            .range(from.to_be_bytes()..end.to_be_bytes())
            .next()
        else {
            return Ok(None);
        };
        let (key, value) = item.map_err(|e| {
            BusError::Storage(format!("reading {} from offset {from}: {e}", self.tp))
        })?;
        let offset = decode_u64(&key, || {
            format!("offset key in {} at or after {from}", self.tp)
        })?;
        Ok(Some((offset, decode_record(&self.tp, offset, &value))))
    }

    /// Deletes the records stamped before `cutoff_ms`, oldest first, stopping at the first newer
    /// one: if the clock ever stepped back a few old records wait a little longer, but no record
    /// newer than the cutoff is ever deleted. Blocking (sled IO and fsync).
    pub(super) fn purge_before(
        &self,
        cutoff_ms: u64,
        db: &sled::Db,
        next_offsets: &sled::Tree,
    ) -> Result<u64, BusError> {
        let end = *self.durable.borrow();
        let mut purged = 0;
        loop {
            let mut doomed = Vec::new();
            for item in self.tree.range(..end.to_be_bytes()) {
                let (key, value) = item.map_err(|e| {
                    BusError::Storage(format!("scanning {} for retention: {e}", self.tp))
                })?;
                let offset = decode_u64(&key, || format!("offset key in {}", self.tp))?;
                if decode_timestamp(&self.tp, offset, &value)? >= cutoff_ms {
                    break;
                }
                doomed.push(offset);
                if doomed.len() == PURGE_CHUNK {
                    break;
                }
            }
            let Some(&last) = doomed.last() else {
                return Ok(purged);
            };
            // The marker must be on disk before the records go, or a crash after emptying the
            // partition would let the next start hand out these offsets again.
            next_offsets
                .insert(marker_key(&self.tp), &(last + 1).to_be_bytes()[..])
                .map_err(|e| {
                    BusError::Storage(format!(
                        "writing the next-offset marker of {}: {e}",
                        self.tp
                    ))
                })?;
            db.flush().map_err(|e| {
                BusError::Storage(format!("flushing before retention of {}: {e}", self.tp))
            })?;
            let mut batch = sled::Batch::default();
            for offset in &doomed {
                batch.remove(&offset.to_be_bytes()[..]);
            }
            self.tree.apply_batch(batch).map_err(|e| {
                BusError::Storage(format!("deleting expired records of {}: {e}", self.tp))
            })?;
            purged += doomed.len() as u64;
            if doomed.len() < PURGE_CHUNK {
                return Ok(purged);
            }
        }
    }
}

pub(super) struct Topic {
    /// Never empty: a topic has at least one partition (checked when it is loaded).
    pub(super) partitions: Vec<Arc<Partition>>,
    round_robin: AtomicU32,
}

impl Topic {
    pub(super) fn new(partitions: Vec<Arc<Partition>>) -> Self {
        Self {
            partitions,
            round_robin: AtomicU32::new(0),
        }
    }

    pub(super) fn partition_for(&self, key: Option<&[u8]>) -> Option<&Arc<Partition>> {
        let count = u32::try_from(self.partitions.len())
            .ok()
            .filter(|&n| n > 0)?;
        let index = match key {
            Some(key) => kafka_partition(key, count),
            None => self.round_robin.fetch_add(1, Ordering::Relaxed) % count,
        };
        self.partitions.get(index as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // From Kafka's UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(
                murmur2(input),
                expected,
                "murmur2({:?})",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn murmur2_covers_every_tail_length() {
        // Values Akka checks against Kafka's implementation: tails of 1, 2, 3 and 0/1 bytes.
        let cases: [(&[u8], i32); 5] = [
            (b"1", -1_993_445_489),
            (b"12", 126_087_238),
            (b"123", -267_702_483),
            (b"1234", -1_614_185_708),
            (b"12345", -1_188_365_604),
        ];
        for (input, expected) in cases {
            assert_eq!(
                murmur2(input),
                expected,
                "murmur2({:?})",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn kafka_partition_masks_the_sign_bit() {
        // murmur2("21") is negative: toPositive clears the sign bit instead of taking abs().
        let expected = ((-973_932_308_i32) as u32 & 0x7fff_ffff) % 7;
        assert_eq!(kafka_partition(b"21", 7), expected);
        assert_eq!(kafka_partition(b"21", 1), 0);
    }

    #[test]
    fn record_encoding_round_trips() {
        let tp = TopicPartition {
            topic: "t".into(),
            partition: 2,
        };
        let headers = vec![Header::new("a", vec![0, 255]), Header::new("b", "")];
        let bytes = encode_record(&tp, 42, Some(b"k"), b"payload", &headers).unwrap();
        assert_eq!(decode_timestamp(&tp, 9, &bytes).unwrap(), 42);
        let record = decode_record(&tp, 9, &bytes).unwrap();
        assert_eq!(
            record,
            Record {
                topic: "t".into(),
                partition: 2,
                offset: 9,
                key: Some(b"k".to_vec()),
                payload: b"payload".to_vec(),
                headers,
                timestamp_ms: 42,
            }
        );
        let keyless = encode_record(&tp, 1, None, b"", &[]).unwrap();
        assert_eq!(decode_record(&tp, 0, &keyless).unwrap().key, None);
    }

    #[test]
    fn garbage_is_an_error_naming_the_record() {
        let tp = TopicPartition {
            topic: "orders".into(),
            partition: 3,
        };
        for garbage in [
            &b""[..],
            &[9, 1, 2][..],
            &[RECORD_FORMAT_V1, 0xff, 0xff, 0xff][..],
        ] {
            let err = decode_record(&tp, 17, garbage).unwrap_err().to_string();
            assert!(
                err.contains("orders[3]") && err.contains("offset 17"),
                "{err}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_flushes_are_shared() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let flusher = Arc::new(GroupCommit::default());
        let callers = 64;
        // Released together, so the callers really overlap.
        let start = Arc::new(tokio::sync::Barrier::new(callers as usize));
        let tasks: Vec<_> = (0..callers)
            .map(|i: u64| {
                let (db, flusher, start) = (db.clone(), Arc::clone(&flusher), Arc::clone(&start));
                tokio::spawn(async move {
                    start.wait().await;
                    db.insert(i.to_be_bytes(), &b"x"[..]).unwrap();
                    flusher.flush(&db).await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let flushes = flusher.started.load(Ordering::SeqCst);
        assert!(
            flushes >= 1 && flushes < callers,
            "{flushes} flushes for {callers} callers"
        );
    }

    #[test]
    fn group_keys_do_not_collide() {
        let tp = |topic: &str| TopicPartition {
            topic: topic.into(),
            partition: 0,
        };
        assert_ne!(group_key("a", &tp("bc")), group_key("ab", &tp("c")));
        assert_ne!(
            group_key("g", &tp("t")),
            group_key(
                "g",
                &TopicPartition {
                    topic: "t".into(),
                    partition: 1
                }
            )
        );
    }
}
