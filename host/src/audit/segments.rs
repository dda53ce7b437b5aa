//! Where the audit log's chunks live: appended to segment files under `data_dir/audit`
//! (`00000000000000000001.seg`, …), while sled keeps, under each chunk's key, only where its
//! bytes are (a [`Location`]).
//!
//! sled keeps values inside its tree nodes and rewrites a node whole when it changes, so with
//! chunks of up to 1,024 entries (~150 KiB) every insert rewrote megabytes, and sled's segment
//! cleaning copied them again as the log grew: once a log held a million entries the writer
//! spent 80% of its time in sled copying nodes, about 1.6 µs per entry (perf, 600,000 entries a
//! round). A segment is written once, only appended to, and deleted when pruning has removed
//! every chunk stored in it.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A segment is closed and the next one started once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// The first byte of a stored location. Values stored by earlier versions are JSON: a chunk
/// (`[`) or a single entry (`{`).
const MARKER: u8 = 0x01;

/// Where a chunk's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub segment: u64,
    pub offset: u64,
    pub len: u32,
}

impl Location {
    pub fn encode(self) -> [u8; 21] {
        let mut value = [0u8; 21];
        value[0] = MARKER;
        value[1..9].copy_from_slice(&self.segment.to_be_bytes());
        value[9..17].copy_from_slice(&self.offset.to_be_bytes());
        value[17..21].copy_from_slice(&self.len.to_be_bytes());
        value
    }

    /// The location a stored value holds; `None` for a value that is not one (a chunk stored
    /// inline by an earlier version, or by pruning).
    pub fn decode(value: &[u8]) -> Option<Self> {
        if value.len() != 21 || value[0] != MARKER {
            return None;
        }
        Some(Self {
            segment: u64::from_be_bytes(value[1..9].try_into().ok()?),
            offset: u64::from_be_bytes(value[9..17].try_into().ok()?),
            len: u32::from_be_bytes(value[17..21].try_into().ok()?),
        })
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

fn segment_id(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".seg")?.parse().ok()
}

/// The segment files of one log: read by queries, deleted by pruning.
pub struct Segments {
    dir: PathBuf,
    /// The segment the appender writes to: never deleted.
    current: Arc<AtomicU64>,
}

/// Appends chunks to the newest segment; owned by the audit writer thread.
pub struct Appender {
    dir: PathBuf,
    id: u64,
    /// Created at the first append, so a start that records nothing leaves no empty file.
    file: Option<File>,
    len: u64,
    max_bytes: u64,
    current: Arc<AtomicU64>,
}

impl Segments {
    /// Opens (creating) `dir`; the appender starts a new segment after the newest there.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<(Self, Appender)> {
        std::fs::create_dir_all(dir)?;
        let mut newest = 0;
        for item in std::fs::read_dir(dir)? {
            if let Some(id) = segment_id(&item?.path()) {
                newest = newest.max(id);
            }
        }
        let id = newest + 1;
        let current = Arc::new(AtomicU64::new(id));
        let segments = Self {
            dir: dir.to_owned(),
            current: current.clone(),
        };
        let appender = Appender {
            dir: dir.to_owned(),
            id,
            file: None,
            len: 0,
            max_bytes,
            current,
        };
        Ok((segments, appender))
    }

    /// The segment being written to now: it and every later one may hold chunks the index
    /// does not name yet.
    pub fn writing(&self) -> u64 {
        self.current.load(Ordering::Acquire)
    }

    /// Deletes the segments before `first_used` (the oldest segment a stored location names,
    /// or [`Segments::writing`] as read before the index was), never the one being written.
    /// Returns how many were deleted.
    pub fn remove_before(&self, first_used: u64) -> std::io::Result<usize> {
        let keep_from = first_used.min(self.writing());
        let mut removed = 0;
        for item in std::fs::read_dir(&self.dir)? {
            let path = item?.path();
            if segment_id(&path).is_some_and(|id| id < keep_from) {
                std::fs::remove_file(&path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// A reader for a run of chunks (a query), keeping the last segment it read open.
    pub fn reader(&self) -> SegmentReader<'_> {
        SegmentReader {
            segments: self,
            open: None,
        }
    }
}

pub struct SegmentReader<'a> {
    segments: &'a Segments,
    open: Option<(u64, File)>,
}

impl SegmentReader<'_> {
    /// The bytes of the chunk at `at`.
    pub fn read(&mut self, at: Location) -> std::io::Result<Vec<u8>> {
        let file = match &mut self.open {
            Some((id, file)) if *id == at.segment => file,
            open => {
                let file = File::open(segment_path(&self.segments.dir, at.segment))?;
                &mut open.insert((at.segment, file)).1
            }
        };
        let mut bytes = vec![0u8; at.len as usize];
        file.read_exact_at(&mut bytes, at.offset)?;
        Ok(bytes)
    }
}

impl Appender {
    /// Appends one chunk and returns where it is; starts the next segment first when this
    /// one is full.
    pub fn append(&mut self, bytes: &[u8]) -> std::io::Result<Location> {
        let len = u32::try_from(bytes.len()).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "an audit chunk over 4 GiB",
            )
        })?;
        if self.len > 0 && self.len + bytes.len() as u64 > self.max_bytes {
            self.id += 1;
            self.file = None;
            self.len = 0;
            self.current.store(self.id, Ordering::Release);
        }
        let file = match &mut self.file {
            Some(file) => file,
            none => none.insert(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(segment_path(&self.dir, self.id))?,
            ),
        };
        let offset = self.len;
        if let Err(e) = file.write_all(bytes) {
            // A partial write leaves bytes no location names; the next chunk goes to a new
            // segment so offsets stay right.
            self.file = None;
            self.len = self.max_bytes;
            return Err(e);
        }
        self.len += bytes.len() as u64;
        Ok(Location {
            segment: self.id,
            offset,
            len,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_round_trip_and_json_values_are_not_locations() {
        let at = Location {
            segment: 7,
            offset: 1 << 33,
            len: 150_000,
        };
        assert_eq!(Location::decode(&at.encode()), Some(at));
        assert_eq!(Location::decode(b"[{\"time_ms\":1}]"), None);
        assert_eq!(Location::decode(b"{}"), None);
    }

    #[test]
    fn chunks_are_appended_rolled_over_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let (segments, mut appender) = Segments::open(dir.path(), 10).unwrap();
        let a = appender.append(b"0123456").unwrap();
        let b = appender.append(b"abcdef").unwrap();
        let c = appender.append(b"xy").unwrap();
        assert_eq!((a.segment, a.offset), (1, 0));
        assert_eq!((b.segment, b.offset), (2, 0), "a full segment is closed");
        assert_eq!((c.segment, c.offset), (2, 6));
        let mut reader = segments.reader();
        assert_eq!(reader.read(a).unwrap(), b"0123456");
        assert_eq!(reader.read(c).unwrap(), b"xy");
        assert_eq!(reader.read(b).unwrap(), b"abcdef");

        assert_eq!(segments.remove_before(2).unwrap(), 1);
        assert!(segments.reader().read(a).is_err());
        assert_eq!(
            segments.remove_before(u64::MAX).unwrap(),
            0,
            "the segment being written stays"
        );
        drop(appender);
        let (_, mut reopened) = Segments::open(dir.path(), 10).unwrap();
        assert_eq!(reopened.append(b"z").unwrap().segment, 3);
    }
}
