//! `log`: an agent writes into the host's log, tagged with the agent, version and correlation id.

use super::Caller;
use crate::metrics::Metrics;
use crate::wit::log as wit;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{HasData, Linker};

/// Longer messages are cut: a guest must not be able to make the host hold unbounded text.
const MAX_MESSAGE: usize = 16 * 1024;

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

pub struct LogInstance {
    caller: Caller,
    budget: Arc<LogBudget>,
}

impl LogInstance {
    pub fn new(caller: Caller, budget: Arc<LogBudget>) -> Self {
        Self { caller, budget }
    }
}

pub use crate::text::truncate;

impl wit::Host for LogInstance {
    async fn log(&mut self, level: wit::Level, message: String) {
        if !self.budget.admit() {
            return;
        }
        // Cut, and one line: an agent must not forge host log lines or terminal escapes.
        let message = truncate(&message, MAX_MESSAGE);
        let message = crate::text::escape_control(&message);
        let c = &self.caller;
        let cid = c.correlation_id();
        let (agent, version, cid) = (&*c.agent, &*c.version, &*cid);
        match level {
            wit::Level::Trace => {
                tracing::trace!(target: "agent", agent, version, correlation_id = cid, "{message}")
            }
            wit::Level::Debug => {
                tracing::debug!(target: "agent", agent, version, correlation_id = cid, "{message}")
            }
            wit::Level::Info => {
                tracing::info!(target: "agent", agent, version, correlation_id = cid, "{message}")
            }
            wit::Level::Warn => {
                tracing::warn!(target: "agent", agent, version, correlation_id = cid, "{message}")
            }
            wit::Level::Error => {
                tracing::error!(target: "agent", agent, version, correlation_id = cid, "{message}")
            }
        }
    }
}

struct HasLog;
impl HasData for HasLog {
    type Data<'a> = &'a mut LogInstance;
}

pub fn add_to_linker<T: super::InstanceStore>(linker: &mut Linker<T>) -> anyhow::Result<()> {
    wit::add_to_linker::<T, HasLog>(linker, |s| &mut s.caps().log)?;
    Ok(())
}
