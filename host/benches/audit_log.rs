//! The audit log's cost per entry as it grows: 3.6 million entries (six rounds of 600,000, a
//! delivery and a `send` entry per event, as a Kafka pipeline through `echo` records them)
//! recorded through `AuditLog` and stored by its writer thread, against a baseline measured in
//! the same run: the same entries written as JSON lines to one file by a writer thread (the
//! cheapest durable log a host could keep, with nothing to query it by). Reports the process's
//! CPU time per entry in each round (recording and storing) and the bytes on disk.
//!
//! `cargo xtask bench audit_log`.

#[path = "common/mod.rs"]
mod common;

use agenthost::audit::{AuditEntry, AuditLog, Outcome};
use agenthost::metrics::Metrics;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROUNDS: usize = 6;
/// Events a round; two entries each.
const EVENTS: usize = 300_000;

/// The entries of event `i`: its delivery and its copy's `send`.
fn entries(i: usize, ids: &[String], targets: &[String]) -> [AuditEntry; 2] {
    let id = &ids[i % ids.len()];
    [
        AuditEntry::new(
            "echo",
            "1.0.0",
            id.as_str(),
            "event",
            targets[i % targets.len()].as_str(),
            Outcome::Allowed,
        ),
        AuditEntry::new(
            "echo",
            "1.0.0",
            id.as_str(),
            "send",
            "bench.out.v1",
            Outcome::Allowed,
        ),
    ]
}

fn cpu() -> Result<Duration> {
    common::process_cpu(std::process::id())
}

fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for item in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let item = item?;
        let meta = item.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&item.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// CPU time per entry of each round, recording `record` for every entry and then `flush`.
fn rounds(mut record: impl FnMut(AuditEntry), flush: impl Fn()) -> Result<Vec<f64>> {
    let ids: Vec<String> = (0..1000).map(|i| format!("bench-{i}")).collect();
    let targets: Vec<String> = (0..1000)
        .map(|i| format!("bench.in.v1[{}]@{}", i % 4, i))
        .collect();
    let mut per_entry = Vec::new();
    for round in 0..ROUNDS {
        let before = cpu()?;
        for i in round * EVENTS..(round + 1) * EVENTS {
            for entry in entries(i, &ids, &targets) {
                record(entry);
            }
        }
        flush();
        let used = cpu()?.saturating_sub(before);
        per_entry.push(used.as_nanos() as f64 / (2 * EVENTS) as f64);
    }
    Ok(per_entry)
}

fn audit_log(dir: &Path) -> Result<Vec<f64>> {
    let db = sled::Config::new().path(dir.join("db")).open()?;
    let log = AuditLog::open(
        &db,
        &dir.join("audit"),
        Duration::from_secs(3600),
        ROUNDS * EVENTS * 2,
        Arc::new(Metrics::new()),
    )?;
    let per_entry = rounds(|entry| log.record(entry), || log.flush())?;
    let started = Instant::now();
    let found = log
        .query(&agenthost::audit::AuditQuery {
            correlation_id: Some("bench-7".into()),
            limit: Some(100_000),
            ..Default::default()
        })
        .map_err(anyhow::Error::msg)?;
    println!(
        "    a query by correlation id over the whole log: {} entries in {:.2} s",
        found.len(),
        started.elapsed().as_secs_f64()
    );
    drop(log);
    db.flush()?;
    Ok(per_entry)
}

/// The baseline: a writer thread appending each entry as a JSON line to one file.
fn json_lines(dir: &Path) -> Result<Vec<f64>> {
    enum Line {
        Entry(AuditEntry),
        Flush(std::sync::mpsc::Sender<()>),
    }
    let file = std::fs::File::create(dir.join("audit.jsonl"))?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Line>(65_536);
    let writer = std::thread::spawn(move || -> Result<()> {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        for line in rx {
            match line {
                Line::Entry(mut entry) => {
                    entry.time_ms = common::now_us() / 1000;
                    serde_json::to_writer(&mut out, &entry)?;
                    out.write_all(b"\n")?;
                }
                Line::Flush(done) => {
                    out.flush()?;
                    let _ = done.send(());
                }
            }
        }
        out.flush()?;
        Ok(())
    });
    let per_entry = rounds(
        |entry| {
            let _ = tx.send(Line::Entry(entry));
        },
        || {
            let (done, wait) = std::sync::mpsc::channel();
            if tx.send(Line::Flush(done)).is_ok() {
                let _ = wait.recv();
            }
        },
    )?;
    drop(tx);
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the JSON-lines writer panicked"))??;
    Ok(per_entry)
}

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let scratch =
        std::env::temp_dir().join(format!("agenthost-audit-bench-{}", std::process::id()));
    let (log_dir, lines_dir) = (scratch.join("log"), scratch.join("lines"));
    std::fs::create_dir_all(&log_dir)?;
    std::fs::create_dir_all(&lines_dir)?;
    println!(
        "Audit log: {} entries in {ROUNDS} rounds (a delivery and a send entry per event), CPU per entry",
        ROUNDS * EVENTS * 2
    );
    let result = (|| -> Result<()> {
        let lines = json_lines(&lines_dir)?;
        let log = audit_log(&log_dir)?;
        for (round, (log, lines)) in log.iter().zip(&lines).enumerate() {
            println!(
                "    round {}: audit log {:>5.0} ns, JSON lines (baseline) {:>5.0} ns, ratio {:.2}x",
                round + 1,
                log,
                lines,
                log / lines
            );
        }
        let (log_bytes, lines_bytes) = (dir_bytes(&log_dir)?, dir_bytes(&lines_dir)?);
        println!(
            "    on disk: audit log {:.0} MB, JSON lines {:.0} MB ({:.2}x)",
            log_bytes as f64 / 1e6,
            lines_bytes as f64 / 1e6,
            log_bytes as f64 / lines_bytes as f64
        );
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}
