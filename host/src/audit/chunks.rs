//! How the audit log is laid out in sled: the writer stores each batch of entries as one
//! chunk, a JSON array under a 16-byte key — the time the chunk was written (ms since the
//! epoch) and the sequence number of its first entry, both big-endian so keys sort in write
//! order. An entry's id is its chunk's time with the entry's own sequence number, so ids sort
//! like entries and stay the same when pruning drops a chunk's first entries (the rest is
//! stored again under the key of its new first entry).
//!
//! One sled insert per chunk instead of one per entry: at tens of thousands of audited events
//! per second, per-entry inserts made the writer the host's largest CPU user (S2 benchmark).
//! Values written by earlier versions, one entry (a JSON object) per key, read as chunks of one.

use super::AuditEntry;

/// Where a chunk is, and where each of its entries is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChunkKey {
    /// When the chunk was written: never earlier than any of its entries.
    pub time_ms: u64,
    /// The sequence number of the chunk's first entry; the next entries follow it.
    pub seq: u64,
}

impl ChunkKey {
    pub fn encode(self) -> [u8; 16] {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&self.time_ms.to_be_bytes());
        key[8..].copy_from_slice(&self.seq.to_be_bytes());
        key
    }

    pub fn decode(key: &[u8]) -> Option<Self> {
        let time_ms = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
        let seq = u64::from_be_bytes(key.get(8..16)?.try_into().ok()?);
        Some(Self { time_ms, seq })
    }

    /// The key of the `index`th entry: its id, and the key of a chunk that starts with it.
    pub fn nth(self, index: usize) -> Self {
        Self {
            time_ms: self.time_ms,
            seq: self.seq.wrapping_add(index as u64),
        }
    }

    /// The lowest key of a chunk written at or after `time_ms`.
    pub fn from_time(time_ms: u64) -> Self {
        Self { time_ms, seq: 0 }
    }
}

pub fn encode(entries: &[AuditEntry]) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(entries)
}

/// A chunk's entries, or one entry stored by an earlier version.
pub fn decode(value: &[u8]) -> serde_json::Result<Vec<AuditEntry>> {
    if value.first() == Some(&b'{') {
        return serde_json::from_slice::<AuditEntry>(value).map(|entry| vec![entry]);
    }
    serde_json::from_slice(value)
}

/// An entry's id as the API shows it: its 16-byte key in hex.
pub fn id_string(key: ChunkKey) -> String {
    key.encode().iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads an id that [`id_string`] made.
pub fn parse_id(id: &str) -> Result<ChunkKey, String> {
    let bad = || format!("`after` {id:?} is not an audit entry id (32 hex digits)");
    if id.len() != 32 || !id.is_ascii() {
        return Err(bad());
    }
    let mut key = [0u8; 16];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&id[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    ChunkKey::decode(&key).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Outcome;

    #[test]
    fn keys_sort_by_time_then_sequence_and_ids_round_trip() {
        let a = ChunkKey {
            time_ms: 5,
            seq: 900,
        };
        let b = ChunkKey { time_ms: 6, seq: 1 };
        assert!(a.encode() < b.encode());
        assert!(a.nth(3).encode() < b.encode());
        assert_eq!(
            parse_id(&id_string(a.nth(3))),
            Ok(ChunkKey {
                time_ms: 5,
                seq: 903
            })
        );
        assert!(
            parse_id("zz")
                .unwrap_err()
                .contains("not an audit entry id")
        );
    }

    #[test]
    fn values_of_earlier_versions_read_as_chunks_of_one() {
        let entry = AuditEntry::new("a", "1", "c", "publish", "t", Outcome::Allowed);
        let old = serde_json::to_vec(&entry).unwrap();
        assert_eq!(decode(&old).unwrap(), vec![entry.clone()]);
        let chunk = encode(&[entry.clone(), entry.clone()]).unwrap();
        assert_eq!(decode(&chunk).unwrap().len(), 2);
        assert!(decode(b"nonsense").is_err());
    }
}
