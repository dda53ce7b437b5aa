//! The audit log: every use of a capability that reaches outside an agent — allowed, denied or
//! failed — and every deploy decision, with time, agent, version, correlation id, capability,
//! target and outcome. Stored with bounded retention (chunks of entries in segment files,
//! indexed in sled); queried over HTTP and by `agenthost audit`; counted in `/metrics`.

mod chunks;
mod segments;

use crate::metrics::Metrics;
use chunks::ChunkKey;
use segments::{Appender, Location, SegmentReader, Segments};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Allowed,
    Denied,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Failed => "failed",
        }
    }
}

/// The `agent` of entries made for the admin API's callers (not an agent name: those cannot
/// contain parentheses).
pub const API_CALLER: &str = "(api)";

/// One audited event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub agent: String,
    pub version: String,
    pub correlation_id: String,
    /// `publish`, `state.get`, `state.set`, `state.delete`, `state.list`, `config`, `deploy`.
    pub capability: String,
    /// What was touched: a topic, a state key, a config key, a manifest.
    pub target: String,
    pub outcome: Outcome,
    /// Why, for denials and failures.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// How many more entries exactly like this one (but for their time) followed it: a loop
    /// of identical calls is one entry with a count, not a flood that pushes older evidence
    /// out of the log.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repeated: u32,
    /// The entry's place in the log, set by queries (not stored): `after` continues from it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// The host whose log it is in, set by `agenthost trace` when it reads several (not
    /// stored).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
}

impl AuditEntry {
    /// An entry to record now (its time is set when recorded, its id by queries).
    pub fn new(
        agent: impl Into<String>,
        version: impl Into<String>,
        correlation_id: impl Into<String>,
        capability: impl Into<String>,
        target: impl Into<String>,
        outcome: Outcome,
    ) -> Self {
        Self {
            time_ms: 0,
            agent: agent.into(),
            version: version.into(),
            correlation_id: correlation_id.into(),
            capability: capability.into(),
            target: target.into(),
            outcome,
            detail: String::new(),
            repeated: 0,
            id: String::new(),
            host: String::new(),
        }
    }

    /// Whether `other` says the same as this entry, but for its time.
    fn same_as(&self, other: &AuditEntry) -> bool {
        self.agent == other.agent
            && self.version == other.version
            && self.correlation_id == other.correlation_id
            && self.capability == other.capability
            && self.target == other.target
            && self.outcome == other.outcome
            && self.detail == other.detail
    }

    /// Every field cut to its bound (see [`Bounds`]), marked where it was cut.
    fn bounded(mut self) -> Self {
        let cut = |field: &mut String, max: usize| {
            if field.len() > max {
                *field = crate::text::truncate(field, max).into_owned();
            }
        };
        cut(&mut self.agent, Bounds::NAME);
        cut(&mut self.version, Bounds::NAME);
        cut(&mut self.capability, Bounds::NAME);
        cut(&mut self.correlation_id, Bounds::CORRELATION_ID);
        cut(&mut self.target, Bounds::TARGET);
        cut(&mut self.detail, Bounds::DETAIL);
        self
    }

    /// The same entry, with why (a denial's or failure's reason, or what a step involved).
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// Who acted: `agent@version`, or the agent alone when there is no version (the API).
    pub fn who(&self) -> String {
        if self.version.is_empty() {
            self.agent.clone()
        } else {
            format!("{}@{}", self.agent, self.version)
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The most an entry's fields hold, in bytes (a longer value is cut and marked). Agents choose
/// targets (state keys, topics, paths) and producers choose correlation ids: unbounded, they
/// would let anyone exhaust the writer's memory and the disk. Capability calls cut their
/// details tighter still ([`Bounds::AGENT_DETAIL`]).
pub struct Bounds;

impl Bounds {
    pub const NAME: usize = 64;
    pub const CORRELATION_ID: usize = 128;
    pub const TARGET: usize = 256;
    /// The host's own details (a refused deploy's diff and reason).
    pub const DETAIL: usize = 4096;
    /// What a capability call records: the host's reason, which may quote what the agent sent.
    pub const AGENT_DETAIL: usize = 512;
}

/// Which entries a query wants.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct AuditQuery {
    pub agent: Option<String>,
    /// Only denials.
    #[serde(default)]
    pub denied: bool,
    /// Only entries newer than this (humantime, e.g. "10m").
    pub since: Option<String>,
    pub correlation_id: Option<String>,
    /// At most this many (the newest); default 1000.
    pub limit: Option<usize>,
    /// Only entries after this one (an entry's `id`), the oldest of them first: how a follower
    /// continues where its last query ended.
    pub after: Option<String>,
}

/// Entries waiting for the writer; beyond this, recording waits (backpressure, never loss).
/// With every entry bounded ([`Bounds`], under 5 KiB) the queue holds at most ~80 MiB, in
/// practice a few MiB (entries are ~200 bytes).
const PENDING: usize = 16_384;
/// Entries the writer stores in one chunk (at most; ~200 bytes each).
const CHUNK: usize = 1024;
/// How long the writer lets entries gather before storing a chunk that is not full: waking for
/// every entry made its sled work contend with the invocations it audits (`cargo xtask bench`:
/// fresh-instance dispatch ~2x slower).
const GATHER: Duration = Duration::from_millis(20);

pub struct AuditLog {
    /// Chunk key → where the chunk is (see [`segments`]).
    tree: sled::Tree,
    /// Chunk key → the agent whose entries it holds (chunks written by earlier versions, which
    /// mix agents, have none).
    owners: sled::Tree,
    segments: Segments,
    retention: Duration,
    max_entries: usize,
    metrics: Arc<Metrics>,
    /// To the writer thread: recording is on every capability call's path, so the sled writes
    /// happen off it, in chunks.
    writer: std::sync::mpsc::SyncSender<Write>,
}

enum Write {
    Entry(AuditEntry),
    /// Answered once everything sent before it is stored.
    Flush(std::sync::mpsc::Sender<()>),
}

/// The writer thread: stores what arrives as chunks until every sender is gone. `next` is the
/// key the next chunk would have if written at its time: the sequence continues, and time never
/// goes back, so keys keep sorting in write order even if the clock does.
fn run_writer(
    tree: sled::Tree,
    owners: sled::Tree,
    mut appender: Appender,
    rx: std::sync::mpsc::Receiver<Write>,
    mut next: ChunkKey,
) {
    let mut full = false;
    while let Ok(first) = rx.recv() {
        let mut entries = Vec::new();
        let mut flushes = Vec::new();
        let mut add = |write: Write, entries: &mut Vec<AuditEntry>| match write {
            Write::Entry(entry) => match entries.last_mut() {
                Some(last) if last.same_as(&entry) => {
                    last.repeated = last.repeated.saturating_add(1 + entry.repeated);
                }
                _ => entries.push(entry),
            },
            Write::Flush(done) => flushes.push(done),
        };
        let flush_first = matches!(first, Write::Flush(_));
        add(first, &mut entries);
        // Under load the last chunk was full and more is waiting: no pause.
        if !flush_first && !full {
            std::thread::sleep(GATHER);
        }
        for write in rx.try_iter() {
            add(write, &mut entries);
            if entries.len() >= CHUNK {
                break;
            }
        }
        full = entries.len() >= CHUNK;
        // One chunk per agent: pruning by `max_entries` then takes from whichever agent holds
        // the most, without reading the chunks (see `AuditLog::prune_index`).
        for (agent, entries) in by_agent(entries) {
            let key = ChunkKey {
                time_ms: now_ms().max(next.time_ms),
                seq: next.seq,
            };
            match chunks::encode(&entries) {
                Ok(value) => match appender.append(&value) {
                    Ok(at) => {
                        let indexed = tree
                            .insert(key.encode(), &at.encode()[..])
                            .and_then(|_| owners.insert(key.encode(), agent.as_bytes()));
                        if let Err(e) = indexed {
                            tracing::error!(error = %e, entries = entries.len(), "cannot index audit entries");
                        }
                    }
                    Err(e) => tracing::error!(
                        error = %e,
                        dir = %appender.dir().display(),
                        entries = entries.len(),
                        "cannot write audit entries"
                    ),
                },
                Err(e) => tracing::error!(error = %e, "cannot encode audit entries"),
            }
            next = key.nth(entries.len());
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// `entries` split by agent, each agent's in their order, agents in order of first appearance.
fn by_agent(entries: Vec<AuditEntry>) -> Vec<(String, Vec<AuditEntry>)> {
    let mut groups: Vec<(String, Vec<AuditEntry>)> = Vec::new();
    for entry in entries {
        match groups.iter_mut().find(|(agent, _)| *agent == entry.agent) {
            Some((_, group)) => group.push(entry),
            None => groups.push((entry.agent.clone(), vec![entry])),
        }
    }
    groups
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One stored chunk: its key and entries.
type Chunk = (ChunkKey, Vec<AuditEntry>);

/// One stored chunk as pruning sees it, from the index alone.
struct Indexed {
    key: ChunkKey,
    /// The segment it is in; `None` when stored inline.
    segment: Option<u64>,
    /// The agent whose entries it holds ("" for chunks of earlier versions, which mix agents).
    agent: String,
    /// How many entries it holds.
    len: u64,
}

/// What pruning did to a chunk.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Kept,
    Removed,
    /// Its first entries removed, the rest stored inline under a new key.
    Trimmed,
}

fn read_chunk(
    reader: &mut SegmentReader<'_>,
    item: sled::Result<(sled::IVec, sled::IVec)>,
) -> Result<Option<Chunk>, String> {
    let (key, value) = item.map_err(|e| format!("audit storage: {e}"))?;
    let Some(key) = ChunkKey::decode(&key) else {
        tracing::warn!("an audit key of unexpected length is skipped");
        return Ok(None);
    };
    Ok(decode_or_skip(reader, &value).map(|entries| (key, entries)))
}

/// A stored chunk's entries; `None` (logged) if it cannot be read or decoded, which skips it.
/// `value` is where the chunk is, or the chunk itself (stored inline by earlier versions, and
/// by pruning).
fn decode_or_skip(reader: &mut SegmentReader<'_>, value: &[u8]) -> Option<Vec<AuditEntry>> {
    let read;
    let bytes = match Location::decode(value) {
        Some(at) => match reader.read(at) {
            Ok(bytes) => {
                read = bytes;
                &read[..]
            }
            Err(e) => {
                // Pruned while this query read it, or lost with the disk's last writes.
                tracing::warn!(error = %e, segment = at.segment, "an unreadable audit chunk is skipped");
                return None;
            }
        },
        None => value,
    };
    match chunks::decode(bytes) {
        Ok(entries) => Some(entries),
        Err(e) => {
            tracing::warn!(error = %e, "an undecodable audit chunk is skipped");
            None
        }
    }
}

impl AuditLog {
    /// Opens the log: its index in `db`, its segment files in `dir`.
    pub fn open(
        db: &sled::Db,
        dir: &Path,
        retention: Duration,
        max_entries: usize,
        metrics: Arc<Metrics>,
    ) -> sled::Result<Self> {
        Self::open_with_segments_of(
            db,
            dir,
            segments::SEGMENT_BYTES,
            retention,
            max_entries,
            metrics,
        )
    }

    fn open_with_segments_of(
        db: &sled::Db,
        dir: &Path,
        segment_bytes: u64,
        retention: Duration,
        max_entries: usize,
        metrics: Arc<Metrics>,
    ) -> sled::Result<Self> {
        let tree = db.open_tree("audit")?;
        let owners = db.open_tree("audit/owners")?;
        let (segments, appender) = Segments::open(dir, segment_bytes)?;
        // Continue after the newest stored chunk, so keys stay unique and ordered across
        // restarts.
        let next = match tree.last()? {
            Some(item) => match read_chunk(&mut segments.reader(), Ok(item)) {
                Ok(Some((key, entries))) => key.nth(entries.len()),
                _ => ChunkKey::from_time(now_ms()),
            },
            None => ChunkKey::from_time(0),
        };
        let (writer, rx) = std::sync::mpsc::sync_channel(PENDING);
        let (writer_tree, writer_owners) = (tree.clone(), owners.clone());
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || run_writer(writer_tree, writer_owners, appender, rx, next))
            .map_err(sled::Error::Io)?;
        Ok(Self {
            tree,
            owners,
            segments,
            retention,
            max_entries,
            metrics,
            writer,
        })
    }

    /// Waits until every entry recorded so far is stored.
    pub fn flush(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        if self.writer.send(Write::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Records an entry; the writer thread stores it moments later (queries wait for it).
    /// Auditing never fails the audited call: a storage error is logged.
    pub fn record(&self, entry: AuditEntry) {
        let mut entry = entry.bounded();
        if entry.time_ms == 0 {
            entry.time_ms = now_ms();
        }
        self.metrics
            .record_audit(&entry.capability, entry.outcome.as_str());
        if self.writer.send(Write::Entry(entry)).is_err() {
            tracing::error!("the audit writer has stopped; an entry was not stored");
        }
    }

    /// Entries matching `query`, oldest first: the newest `limit` of them, or with `after` the
    /// oldest `limit` after that entry. Blocks until entries recorded before the call are stored.
    pub fn query(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, String> {
        self.flush();
        let since_ms = match &query.since {
            Some(s) => {
                let d = humantime::parse_duration(s).map_err(|e| format!("`since` {s:?}: {e}"))?;
                now_ms().saturating_sub(d.as_millis() as u64)
            }
            None => 0,
        };
        let limit = query.limit.unwrap_or(1000);
        let wanted = |entry: &AuditEntry| {
            entry.time_ms >= since_ms
                && query.agent.as_ref().is_none_or(|a| *a == entry.agent)
                && (!query.denied || entry.outcome == Outcome::Denied)
                && query
                    .correlation_id
                    .as_ref()
                    .is_none_or(|c| *c == entry.correlation_id)
        };
        let with_id = |key: ChunkKey, index: usize, mut entry: AuditEntry| {
            entry.id = chunks::id_string(key.nth(index));
            entry
        };
        // A chunk written before `since` holds only older entries.
        let from = ChunkKey::from_time(since_ms).encode();
        let mut reader = self.segments.reader();
        let mut out = Vec::new();
        if let Some(after) = &query.after {
            let after = chunks::parse_id(after)?;
            // The chunk holding `after` starts at or before it.
            let holding = match self.tree.range(..=after.encode()).next_back() {
                Some(item) => item.map_err(|e| format!("audit storage: {e}"))?.0.to_vec(),
                None => after.encode().to_vec(),
            };
            let start = holding.max(from.to_vec());
            for item in self.tree.range(start..) {
                let Some((key, entries)) = read_chunk(&mut reader, item)? else {
                    continue;
                };
                for (index, entry) in entries.into_iter().enumerate() {
                    if key.nth(index) > after && wanted(&entry) {
                        out.push(with_id(key, index, entry));
                        if out.len() >= limit {
                            return Ok(out);
                        }
                    }
                }
            }
            return Ok(out);
        }
        // Newest first, so the limit keeps the most recent entries.
        'chunks: for item in self.tree.range(from..).rev() {
            let Some((key, entries)) = read_chunk(&mut reader, item)? else {
                continue;
            };
            for (index, entry) in entries.into_iter().enumerate().rev() {
                if wanted(&entry) {
                    out.push(with_id(key, index, entry));
                    if out.len() >= limit {
                        break 'chunks;
                    }
                }
            }
        }
        out.reverse();
        Ok(out)
    }

    /// The entries of the chunk stored under `key`, if it exists and decodes.
    fn chunk_entries(&self, key: ChunkKey) -> sled::Result<Option<Vec<AuditEntry>>> {
        Ok(self
            .tree
            .get(key.encode())?
            .and_then(|value| decode_or_skip(&mut self.segments.reader(), &value)))
    }

    /// Deletes entries older than the retention, then the oldest beyond `max_entries`, then
    /// the segment files no stored chunk is in any more.
    pub fn prune(&self) -> sled::Result<usize> {
        self.flush();
        let cutoff = now_ms().saturating_sub(self.retention.as_millis() as u64);
        // Taken before reading the index: a chunk the writer stores while it is read (which
        // the read may miss) goes to this segment or a later one, and those stay.
        let writing = self.segments.writing();
        // Each chunk's key, and the segment it is in (none if stored inline).
        let mut found: Vec<(ChunkKey, Option<u64>)> = Vec::new();
        for item in self.tree.iter() {
            let (key, value) = item?;
            if let Some(key) = ChunkKey::decode(&key) {
                found.push((key, Location::decode(&value).map(|at| at.segment)));
            }
        }
        let Some(&(last, _)) = found.last() else {
            return Ok(0);
        };
        let last_len = self.chunk_entries(last)?.map_or(1, |e| e.len() as u64);
        let mut index = Vec::with_capacity(found.len());
        for (i, &(key, segment)) in found.iter().enumerate() {
            // Sequence numbers run on from chunk to chunk (pruning takes whole chunks, or the
            // front of one), so a chunk holds as many entries as its successor's sequence is
            // ahead.
            let len = match found.get(i + 1) {
                Some((next, _)) => next.seq.saturating_sub(key.seq).max(1),
                None => last_len,
            };
            let agent = self
                .owners
                .get(key.encode())?
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_default();
            index.push(Indexed {
                key,
                segment,
                agent,
                len,
            });
        }
        let (removed, fates) = self.prune_index(&index, cutoff)?;
        // A segment goes once no chunk still stored in it is left.
        let first_used = index
            .iter()
            .zip(&fates)
            .filter(|(_, fate)| **fate == Fate::Kept)
            .filter_map(|(chunk, _)| chunk.segment)
            .fold(writing, u64::min);
        if let Err(e) = self.segments.remove_before(first_used) {
            tracing::warn!(error = %e, "cannot delete unused audit segments");
        }
        Ok(removed)
    }

    /// Removes the entries older than `cutoff`, then, while the log holds more than
    /// `max_entries`, the oldest entries of the agent that holds the most: an agent flooding
    /// the log evicts its own evidence first, never another agent's while it holds more.
    /// Returns how many entries went, and each chunk's fate.
    fn prune_index(&self, index: &[Indexed], cutoff: u64) -> sled::Result<(usize, Vec<Fate>)> {
        let mut fates = vec![Fate::Kept; index.len()];
        let mut removed = 0usize;
        // Older than the retention: chunks written before the cutoff hold only older entries;
        // the first chunk after it may start with some.
        let old = index.iter().take_while(|c| c.key.time_ms < cutoff).count();
        for (i, chunk) in index[..old].iter().enumerate() {
            self.remove_chunk(chunk.key)?;
            fates[i] = Fate::Removed;
            removed += chunk.len as usize;
        }
        // What is left of a trimmed chunk still counts, but is not taken from again.
        let mut trimmed_rest = 0u64;
        if let Some(chunk) = index.get(old)
            && let Some(entries) = self.chunk_entries(chunk.key)?
        {
            let older = entries.iter().take_while(|e| e.time_ms < cutoff).count();
            if older > 0 {
                self.trim_chunk(chunk, &entries, older)?;
                fates[old] = Fate::Trimmed;
                removed += older;
                trimmed_rest = (entries.len() - older) as u64;
            }
        }
        // Beyond max_entries: from the agent holding the most, its oldest first.
        let mut held: std::collections::BTreeMap<&str, (u64, std::collections::VecDeque<usize>)> =
            Default::default();
        let mut total = trimmed_rest;
        for (i, chunk) in index.iter().enumerate() {
            if fates[i] != Fate::Kept {
                continue;
            }
            let len = chunk.len;
            let agent = held.entry(chunk.agent.as_str()).or_default();
            agent.0 += len;
            agent.1.push_back(i);
            total += len;
        }
        while total > self.max_entries as u64 {
            let over = total - self.max_entries as u64;
            let Some((_, (count, chunks))) = held
                .iter_mut()
                .filter(|(_, (_, chunks))| !chunks.is_empty())
                // Among agents holding as many, the one with the oldest entries goes first.
                .max_by_key(|(_, (count, chunks))| {
                    (*count, std::cmp::Reverse(chunks.front().copied()))
                })
            else {
                break;
            };
            let Some(i) = chunks.pop_front() else { break };
            let chunk = &index[i];
            if chunk.len <= over {
                self.remove_chunk(chunk.key)?;
                fates[i] = Fate::Removed;
                removed += chunk.len as usize;
                *count -= chunk.len;
                total -= chunk.len;
                continue;
            }
            // Only part of it is over: drop its front.
            let Some(entries) = self.chunk_entries(chunk.key)? else {
                break;
            };
            let drop = (over as usize).min(entries.len());
            self.trim_chunk(chunk, &entries, drop)?;
            fates[i] = Fate::Trimmed;
            removed += drop;
            break;
        }
        Ok((removed, fates))
    }

    fn remove_chunk(&self, key: ChunkKey) -> sled::Result<()> {
        self.tree.remove(key.encode())?;
        self.owners.remove(key.encode())?;
        Ok(())
    }

    /// Drops the first `drop` of a chunk's `entries`. The rest is stored inline (as earlier
    /// versions stored chunks) under the key of its new first entry: the writer thread owns
    /// the segment being appended to, and the next pruning that reaches this chunk drops it
    /// from the index like any other.
    fn trim_chunk(&self, chunk: &Indexed, entries: &[AuditEntry], drop: usize) -> sled::Result<()> {
        let mut batch = sled::Batch::default();
        batch.remove(&chunk.key.encode());
        let rest = chunk.key.nth(drop);
        if drop < entries.len()
            && let Ok(value) = chunks::encode(&entries[drop..])
        {
            batch.insert(&rest.encode(), value);
            self.owners.insert(rest.encode(), chunk.agent.as_bytes())?;
        }
        // Atomic, so a query never sees both the chunk and its rest.
        self.tree.apply_batch(batch)?;
        self.owners.remove(chunk.key.encode())?;
        Ok(())
    }

    /// Prunes every minute until the log is dropped.
    pub fn spawn_pruning(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(log) = weak.upgrade() else { return };
                match tokio::task::spawn_blocking(move || log.prune()).await {
                    Ok(Ok(n)) if n > 0 => tracing::debug!(removed = n, "audit log pruned"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "audit pruning failed"),
                    _ => {}
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Segments of 64 KiB, so the tests' logs span several.
    const SMALL_SEGMENTS: u64 = 64 << 10;

    fn entry(agent: &str, outcome: Outcome, time_ms: u64) -> AuditEntry {
        AuditEntry {
            time_ms,
            agent: agent.into(),
            version: "1.0.0".into(),
            correlation_id: format!("c-{agent}"),
            capability: "publish".into(),
            target: "t".into(),
            outcome,
            detail: String::new(),
            repeated: 0,
            id: String::new(),
            host: String::new(),
        }
    }

    fn log(max: usize) -> (tempfile::TempDir, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let log = AuditLog::open_with_segments_of(
            &db,
            &dir.path().join("audit"),
            SMALL_SEGMENTS,
            Duration::from_secs(3600),
            max,
            Arc::new(Metrics::new()),
        )
        .unwrap();
        (dir, log)
    }

    #[test]
    fn a_loop_of_identical_calls_is_one_entry_with_a_count() {
        let (_d, log) = log(100);
        log.record(entry("a", Outcome::Allowed, 0));
        for _ in 0..5_000 {
            log.record(entry("flood", Outcome::Denied, 0));
        }
        log.record(entry("b", Outcome::Allowed, 0));
        let all = log.query(&AuditQuery::default()).unwrap();
        let flood: Vec<&AuditEntry> = all.iter().filter(|e| e.agent == "flood").collect();
        let recorded: u32 = flood.iter().map(|e| 1 + e.repeated).sum();
        assert_eq!(recorded, 5_000, "every call is counted");
        assert!(
            flood.len() <= 10,
            "{} entries for one repeated call",
            flood.len()
        );
        // The others' entries are still there, around it.
        assert_eq!(all.first().unwrap().agent, "a");
        assert_eq!(all.last().unwrap().agent, "b");
    }

    #[test]
    fn what_outsiders_choose_is_bounded_and_marked_as_cut() {
        let (_d, log) = log(100);
        let mut big = entry("a", Outcome::Denied, 0);
        big.target = "k".repeat(4 << 20);
        big.correlation_id = "c".repeat(10_000);
        big.detail = "d".repeat(1 << 20);
        log.record(big);
        let stored = &log.query(&AuditQuery::default()).unwrap()[0];
        assert!(
            stored.target.len() < Bounds::TARGET + 40,
            "{}",
            stored.target.len()
        );
        assert!(
            stored.target.ends_with("bytes cut]"),
            "{}",
            &stored.target[200..]
        );
        assert!(stored.correlation_id.len() < Bounds::CORRELATION_ID + 40);
        assert!(stored.detail.len() < Bounds::DETAIL + 40);
    }

    #[test]
    fn queries_filter_by_agent_outcome_and_correlation() {
        let (_d, log) = log(100);
        log.record(entry("a", Outcome::Allowed, 0));
        log.record(entry("a", Outcome::Denied, 0));
        log.record(entry("b", Outcome::Denied, 0));
        assert_eq!(log.query(&AuditQuery::default()).unwrap().len(), 3);
        let q = AuditQuery {
            agent: Some("a".into()),
            ..Default::default()
        };
        assert_eq!(log.query(&q).unwrap().len(), 2);
        let q = AuditQuery {
            denied: true,
            ..Default::default()
        };
        assert!(
            log.query(&q)
                .unwrap()
                .iter()
                .all(|e| e.outcome == Outcome::Denied)
        );
        let q = AuditQuery {
            correlation_id: Some("c-b".into()),
            ..Default::default()
        };
        assert_eq!(log.query(&q).unwrap()[0].agent, "b");
        let q = AuditQuery {
            limit: Some(1),
            ..Default::default()
        };
        assert_eq!(
            log.query(&q).unwrap()[0].agent,
            "b",
            "the limit keeps the newest"
        );
        assert!(
            log.query(&AuditQuery {
                since: Some("soon".into()),
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn after_continues_where_the_last_query_ended() {
        let (_d, log) = log(100);
        for agent in ["a", "b", "c"] {
            log.record(entry(agent, Outcome::Allowed, 0));
        }
        let all = log.query(&AuditQuery::default()).unwrap();
        assert!(
            all.windows(2).all(|w| w[0].id < w[1].id),
            "ids sort like entries"
        );
        let rest = log
            .query(&AuditQuery {
                after: Some(all[0].id.clone()),
                limit: Some(1),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].agent, "b", "after keeps the oldest first");
        log.record(entry("d", Outcome::Allowed, 0));
        let newer = log
            .query(&AuditQuery {
                after: Some(all[2].id.clone()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(newer.iter().map(|e| &*e.agent).collect::<Vec<_>>(), ["d"]);
        let bad = log.query(&AuditQuery {
            after: Some("xyz".into()),
            ..Default::default()
        });
        assert!(bad.unwrap_err().contains("not an audit entry id"));
    }

    #[test]
    fn following_across_chunks_sees_every_entry_once_in_order() {
        let (_d, log) = log(1_000_000);
        let total = 3 * CHUNK + 17;
        for i in 0..total {
            log.record(entry(&format!("a{i}"), Outcome::Allowed, 0));
            if i % 1000 == 0 {
                log.flush(); // several chunks, some not full
            }
        }
        let mut seen = Vec::new();
        // From before the first entry (without `after`, a query returns the newest).
        let mut after = Some("0".repeat(32));
        loop {
            let page = log
                .query(&AuditQuery {
                    after: after.clone(),
                    limit: Some(500),
                    ..Default::default()
                })
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            seen.extend(page.into_iter().map(|e| e.agent));
        }
        let expected: Vec<String> = (0..total).map(|i| format!("a{i}")).collect();
        assert_eq!(seen, expected);
        let newest = log
            .query(&AuditQuery {
                limit: Some(3),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            newest.iter().map(|e| &*e.agent).collect::<Vec<_>>(),
            expected[total - 3..]
                .iter()
                .map(|a| &**a)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_reopened_log_continues_its_ids_and_prunes_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let open = |max| {
            AuditLog::open_with_segments_of(
                &db,
                &dir.path().join("audit"),
                SMALL_SEGMENTS,
                Duration::from_secs(3600),
                max,
                Arc::new(Metrics::new()),
            )
            .unwrap()
        };
        let first = open(2500);
        for i in 0..2000 {
            first.record(entry(&format!("old{i}"), Outcome::Allowed, 0));
        }
        first.flush();
        let before = first.query(&AuditQuery::default()).unwrap();
        drop(first);
        let log = open(2500);
        for i in 0..1000 {
            log.record(entry(&format!("new{i}"), Outcome::Allowed, 0));
        }
        let all = log
            .query(&AuditQuery {
                limit: Some(10_000),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(all.len(), 3000);
        assert!(
            all.windows(2).all(|w| w[0].id < w[1].id),
            "ids keep sorting across a restart"
        );
        assert_eq!(
            all[1999].id,
            before.last().unwrap().id,
            "stored entries keep their ids"
        );
        assert_eq!(log.prune().unwrap(), 500);
        let left = log
            .query(&AuditQuery {
                limit: Some(10_000),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(left.len(), 2500);
        assert_eq!(left[0].agent, "old500");
        assert_eq!(
            left[0].id, all[500].id,
            "a trimmed chunk's entries keep their ids"
        );
    }

    fn segment_files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir.join("audit"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("seg".as_ref()))
            .count()
    }

    /// The stored entries, oldest first, as `agent-target`.
    fn agents(log: &AuditLog) -> Vec<String> {
        log.query(&AuditQuery {
            limit: Some(100_000),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|e| format!("{}-{}", e.agent, e.target))
        .collect()
    }

    /// Records `rounds` rounds of 400 entries (agent `r{round}`, targets 0-399), flushing after
    /// each: a flush makes each round its own chunk, ~300 B × 400 = 120 KB, more than a small
    /// segment, so each lands in a segment of its own.
    fn write_rounds(log: &AuditLog, rounds: usize) {
        for round in 0..rounds {
            for i in 0..400 {
                let mut e =
                    entry(&format!("r{round}"), Outcome::Allowed, 0).detail("x".repeat(100));
                e.target = i.to_string();
                log.record(e);
            }
            log.flush();
        }
    }

    #[test]
    fn chunks_go_to_segment_files_and_pruning_deletes_those_no_entry_is_in() {
        let (dir, log) = log(1000);
        write_rounds(&log, 6);
        assert_eq!(segment_files(dir.path()), 6);
        let values: Vec<sled::IVec> = log.tree.iter().values().map(Result::unwrap).collect();
        assert!(
            values.iter().all(|v| Location::decode(v).is_some()),
            "sled holds where chunks are, not the chunks"
        );
        assert_eq!(log.prune().unwrap(), 1400);
        let left = agents(&log);
        assert_eq!(left.len(), 1000);
        assert_eq!(left[0], "r3-200", "the oldest entries went first");
        assert_eq!(
            segment_files(dir.path()),
            2,
            "the segments of rounds 0-3 are deleted: rounds 0-2 are pruned, round 3's rest is stored inline"
        );
        assert_eq!(log.prune().unwrap(), 0);
        assert_eq!(agents(&log), left, "pruning again changes nothing");
    }

    #[test]
    fn beyond_max_entries_the_agent_holding_the_most_loses_its_oldest_first() {
        let (_d, log) = log(1000);
        // A bystander's evidence first, then a flood of another agent's distinct calls.
        for i in 0..100 {
            let mut e = entry("bystander", Outcome::Denied, 0);
            e.target = format!("b{i}");
            log.record(e);
        }
        log.flush();
        for i in 0..3000 {
            let mut e = entry("flood", Outcome::Allowed, 0);
            e.target = format!("f{i}");
            log.record(e);
        }
        log.flush();
        assert_eq!(log.prune().unwrap(), 2100);
        let left = agents(&log);
        assert_eq!(left.len(), 1000);
        assert_eq!(
            left.iter().filter(|e| e.starts_with("bystander-")).count(),
            100,
            "the bystander's entries are all kept"
        );
        assert_eq!(left[100], "flood-f2100", "the flood lost its oldest");
    }

    #[test]
    fn a_chunk_whose_segment_is_gone_is_skipped_and_the_rest_still_read() {
        let (dir, log) = log(100_000);
        write_rounds(&log, 3);
        let mut segments: Vec<_> = std::fs::read_dir(dir.path().join("audit"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        segments.sort();
        std::fs::remove_file(&segments[1]).unwrap();
        let left = agents(&log);
        assert_eq!(left.len(), 800);
        assert_eq!(left[399], "r0-399");
        assert_eq!(left[400], "r2-0");
    }

    #[test]
    fn a_log_stored_by_an_earlier_version_is_read_and_continued() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        // Earlier versions stored chunks (JSON arrays) and, before that, single entries
        // (JSON objects) in sled itself.
        let tree = db.open_tree("audit").unwrap();
        let now = now_ms();
        let single = serde_json::to_vec(&entry("single", Outcome::Denied, now)).unwrap();
        tree.insert(
            ChunkKey {
                time_ms: now,
                seq: 0,
            }
            .encode(),
            single,
        )
        .unwrap();
        let chunk = chunks::encode(&[
            entry("chunk0", Outcome::Allowed, now),
            entry("chunk1", Outcome::Allowed, now),
        ])
        .unwrap();
        tree.insert(
            ChunkKey {
                time_ms: now,
                seq: 1,
            }
            .encode(),
            chunk,
        )
        .unwrap();
        let log = AuditLog::open(
            &db,
            &dir.path().join("audit"),
            Duration::from_secs(3600),
            2,
            Arc::new(Metrics::new()),
        )
        .unwrap();
        log.record(entry("new", Outcome::Allowed, 0));
        let all = log.query(&AuditQuery::default()).unwrap();
        let names: Vec<&str> = all.iter().map(|e| e.agent.as_str()).collect();
        assert_eq!(names, ["single", "chunk0", "chunk1", "new"]);
        assert!(all.windows(2).all(|w| w[0].id < w[1].id), "ids continue");
        assert_eq!(log.prune().unwrap(), 2);
        assert_eq!(agents(&log), ["chunk1-t", "new-t"]);
    }

    #[test]
    fn pruning_bounds_age_and_count() {
        let (_d, log) = log(2);
        log.record(entry("old", Outcome::Allowed, 1_000)); // 1970: older than the retention
        for i in 0..4 {
            log.record(entry(&format!("new{i}"), Outcome::Allowed, 0));
        }
        assert_eq!(log.prune().unwrap(), 3);
        let left: Vec<String> = log
            .query(&AuditQuery::default())
            .unwrap()
            .into_iter()
            .map(|e| e.agent)
            .collect();
        assert_eq!(left, vec!["new2".to_string(), "new3".to_string()]);
    }
}
