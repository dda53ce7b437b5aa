//! Helpers shared by the benchmarks (each bench includes this module).

#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

/// The allocator the `agenthost` binary runs with (src/main.rs), so benchmarks measure it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Microseconds since the Unix epoch (comparable across processes on this machine).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A loopback port free at the time of asking.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The `q` quantile of `sorted` (None when empty).
fn quantile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    sorted
        .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
}

/// The `q` quantile of sorted microseconds, in milliseconds.
pub fn percentile_ms(sorted: &[u64], q: f64) -> f64 {
    quantile(sorted, q).unwrap_or(0) as f64 / 1000.0
}

/// p50 and p99 of unsorted samples (0 for none).
pub fn p50_p99(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| quantile(&samples, q).unwrap_or(0.0);
    (at(0.50), at(0.99))
}

/// CPU time (user and system) used so far by process `pid`, from `/proc/{pid}/stat`.
pub fn process_cpu(pid: u32) -> anyhow::Result<std::time::Duration> {
    use anyhow::Context;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    // The fields after the command name, which is in parentheses and may hold spaces; utime
    // and stime are the 14th and 15th fields of the line.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("/proc/PID/stat has no command name")?
        .1
        .split_whitespace()
        .collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .context("/proc/PID/stat is too short")?
            .parse()
            .context("/proc/PID/stat's CPU times are not numbers")
    };
    Ok(std::time::Duration::from_millis(
        (ticks(11)? + ticks(12)?) * 10,
    ))
}
