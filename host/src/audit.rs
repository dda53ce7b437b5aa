//! The audit log: every use of a capability that reaches outside an agent — allowed, denied or
//! failed — and every deploy decision, with time, agent, version, correlation id, capability,
//! target and outcome. Stored in sled with bounded retention; queried over HTTP and by
//! `agenthost audit`; counted in `/metrics`.

use crate::metrics::Metrics;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// The entry's place in the log, set by queries (not stored): `after` continues from it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
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
            id: String::new(),
        }
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
const PENDING: usize = 65_536;
/// Entries the writer stores in one sled batch.
const BATCH: usize = 8192;

pub struct AuditLog {
    tree: sled::Tree,
    /// Distinguishes entries written in the same millisecond.
    seq: AtomicU64,
    retention: Duration,
    max_entries: usize,
    metrics: Arc<Metrics>,
    /// To the writer thread: recording is on every capability call's path, so the sled writes
    /// happen off it, in batches.
    writer: std::sync::mpsc::SyncSender<Write>,
}

enum Write {
    Entry([u8; 16], AuditEntry),
    /// Answered once everything sent before it is stored.
    Flush(std::sync::mpsc::Sender<()>),
}

/// Stores entries in batches until every sender is gone. Between batches it lets entries gather
/// for a moment: waking for every entry made this thread's sled work contend with the
/// invocations it audits (measured with `cargo xtask bench`: fresh-instance dispatch ~2x slower).
fn run_writer(tree: sled::Tree, rx: std::sync::mpsc::Receiver<Write>) {
    const GATHER: Duration = Duration::from_millis(20);
    while let Ok(first) = rx.recv() {
        let mut batch = sled::Batch::default();
        let mut flushes = Vec::new();
        let mut add = |write: Write, batch: &mut sled::Batch| match write {
            Write::Entry(key, entry) => match serde_json::to_vec(&entry) {
                Ok(value) => batch.insert(&key, value),
                Err(e) => tracing::error!(error = %e, "cannot encode an audit entry"),
            },
            Write::Flush(done) => flushes.push(done),
        };
        let flush_first = matches!(first, Write::Flush(_));
        add(first, &mut batch);
        if !flush_first {
            std::thread::sleep(GATHER);
        }
        for write in rx.try_iter().take(BATCH) {
            add(write, &mut batch);
        }
        if let Err(e) = tree.apply_batch(batch) {
            tracing::error!(error = %e, "cannot write audit entries");
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl AuditLog {
    pub fn open(
        db: &sled::Db,
        retention: Duration,
        max_entries: usize,
        metrics: Arc<Metrics>,
    ) -> sled::Result<Self> {
        let tree = db.open_tree("audit")?;
        // Continue the sequence after the newest stored entry, so keys stay unique and ordered
        // across restarts.
        let seq = tree.last()?.map_or(0, |(k, _)| key_seq(&k).wrapping_add(1));
        let (writer, rx) = std::sync::mpsc::sync_channel(PENDING);
        let writer_tree = tree.clone();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || run_writer(writer_tree, rx))
            .map_err(sled::Error::Io)?;
        Ok(Self {
            tree,
            seq: AtomicU64::new(seq),
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
    pub fn record(&self, mut entry: AuditEntry) {
        if entry.time_ms == 0 {
            entry.time_ms = now_ms();
        }
        self.metrics
            .record_audit(&entry.capability, entry.outcome.as_str());
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&entry.time_ms.to_be_bytes());
        key[8..].copy_from_slice(&self.seq.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        if self.writer.send(Write::Entry(key, entry)).is_err() {
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
            query.agent.as_ref().is_none_or(|a| *a == entry.agent)
                && (!query.denied || entry.outcome == Outcome::Denied)
                && query
                    .correlation_id
                    .as_ref()
                    .is_none_or(|c| *c == entry.correlation_id)
        };
        let decode =
            |item: sled::Result<(sled::IVec, sled::IVec)>| {
                let (key, value) = item.map_err(|e| format!("audit storage: {e}"))?;
                Ok::<_, String>(serde_json::from_slice::<AuditEntry>(&value).ok().map(
                    |mut entry| {
                        entry.id = key_id(&key);
                        entry
                    },
                ))
            };
        let mut out = Vec::new();
        let from = since_ms.to_be_bytes().to_vec();
        if let Some(after) = &query.after {
            let after = parse_id(after)?;
            let start = if after.as_slice() >= from.as_slice() {
                std::ops::Bound::Excluded(after.to_vec())
            } else {
                std::ops::Bound::Included(from)
            };
            for item in self.tree.range((start, std::ops::Bound::Unbounded)) {
                if let Some(entry) = decode(item)?.filter(&wanted) {
                    out.push(entry);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            return Ok(out);
        }
        // Newest first, so the limit keeps the most recent entries.
        for item in self.tree.range(from..).rev() {
            if let Some(entry) = decode(item)?.filter(&wanted) {
                out.push(entry);
                if out.len() >= limit {
                    break;
                }
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Deletes entries older than the retention, then the oldest beyond `max_entries`.
    pub fn prune(&self) -> sled::Result<usize> {
        self.flush();
        let cutoff = now_ms().saturating_sub(self.retention.as_millis() as u64);
        let mut removed = 0;
        for item in self.tree.range(..cutoff.to_be_bytes().to_vec()) {
            self.tree.remove(item?.0)?;
            removed += 1;
        }
        let excess = self.tree.len().saturating_sub(self.max_entries);
        for item in self.tree.iter().take(excess) {
            self.tree.remove(item?.0)?;
            removed += 1;
        }
        Ok(removed)
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

/// An entry's id: its 16-byte key in hex (time, then sequence), so ids sort like entries.
fn key_id(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_id(id: &str) -> Result<[u8; 16], String> {
    let bad = || format!("`after` {id:?} is not an audit entry id (32 hex digits)");
    if id.len() != 32 || !id.is_ascii() {
        return Err(bad());
    }
    let mut key = [0u8; 16];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&id[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(key)
}

fn key_seq(key: &[u8]) -> u64 {
    key.get(8..16)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            id: String::new(),
        }
    }

    fn log(max: usize) -> (tempfile::TempDir, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let log = AuditLog::open(
            &db,
            Duration::from_secs(3600),
            max,
            Arc::new(Metrics::new()),
        )
        .unwrap();
        (dir, log)
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
