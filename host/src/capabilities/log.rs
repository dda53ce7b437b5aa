//! `log`: an agent writes into the host's log, tagged with the agent, version and correlation id.

use super::budget::LogBudget;
use super::caller::Caller;
use crate::text::truncate;
use crate::wit::log as wit;
use std::sync::Arc;
use wasmtime::component::{HasData, Linker};

/// Longer messages are cut: a guest must not be able to make the host hold unbounded text.
const MAX_MESSAGE: usize = 16 * 1024;

pub struct LogInstance {
    caller: Caller,
    budget: Arc<LogBudget>,
}

impl LogInstance {
    pub fn new(caller: Caller, budget: Arc<LogBudget>) -> Self {
        Self { caller, budget }
    }
}

pub const CAPABILITY: super::capability::Capability = super::capability::Capability {
    key: None,
    interfaces: &["agenthost:agent/log"],
    required: None,
    validate: super::capability::nothing_to_validate,
    grants: super::capability::no_grant_lines,
};

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

pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut LogInstance,
) -> anyhow::Result<()> {
    wit::add_to_linker::<T, HasLog>(linker, get)?;
    Ok(())
}
