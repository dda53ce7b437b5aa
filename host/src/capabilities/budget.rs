//! The log budget of an agent version, shared by everything that writes to the host's log on
//! its behalf: its `log` calls, its stdout and stderr, and the warnings its denied calls leave.

use crate::metrics::Metrics;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `limits.log_rate`: log lines per second across an agent version's instances, in fixed
/// one-second windows. Lines beyond it are dropped; the drops are counted and reported once per
/// window, so a flooding agent cannot flood the host's log.
pub struct LogBudget {
    agent: Arc<str>,
    rate: u32,
    window: Mutex<Window>,
    metrics: Arc<Metrics>,
}

struct Window {
    start: Instant,
    used: u32,
    dropped: u64,
}

impl LogBudget {
    pub fn new(agent: Arc<str>, rate: u32, metrics: Arc<Metrics>) -> Self {
        Self {
            agent,
            rate,
            window: Mutex::new(Window {
                start: Instant::now(),
                used: 0,
                dropped: 0,
            }),
            metrics,
        }
    }

    /// Whether one more line may be written now.
    pub fn admit(&self) -> bool {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if w.start.elapsed() >= Duration::from_secs(1) {
            if w.dropped > 0 {
                tracing::warn!(
                    agent = &*self.agent,
                    dropped = w.dropped,
                    rate = self.rate,
                    "log lines dropped: the agent exceeded limits.log_rate"
                );
            }
            *w = Window {
                start: Instant::now(),
                used: 0,
                dropped: 0,
            };
        }
        if w.used < self.rate {
            w.used += 1;
            true
        } else {
            w.dropped += 1;
            self.metrics.record_log_dropped(&self.agent);
            false
        }
    }
}
