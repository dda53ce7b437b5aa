//! Why an invocation of an agent did not succeed: the one error every layer that runs, retries,
//! counts or reports an invocation names (delivery, A2A, metrics), so it lives at the bottom.

use std::time::Duration;

/// Why an invocation did not succeed. Everything but `Rejected` is worth another attempt.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvocationError {
    #[error("agent asked to retry: {0}")]
    Retry(String),
    #[error("agent rejected the event: {0}")]
    Rejected(String),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("timed out after {} (limits.timeout)", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("memory limit of {0} bytes reached (limits.memory)")]
    MemoryLimit(u64),
    #[error("fuel budget of {0} exhausted (limits.fuel)")]
    FuelExhausted(u64),
    #[error("wasm stack of {0} bytes exhausted (runtime.max_wasm_stack)")]
    StackExhausted(u64),
    #[error("table limit of {0} elements reached (limits.table_elements)")]
    TableLimit(u32),
    #[error(
        "the instance holds {0} host resources (streams, bodies, header sets), the most its limits.memory allows"
    )]
    ResourceLimit(usize),
    #[error("could not instantiate: {0}")]
    Instantiate(String),
}

impl InvocationError {
    /// Permanent failures are dead-lettered without further attempts.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Rejected(_))
    }

    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Retry(_) => "retry",
            Self::Rejected(_) => "reject",
            Self::Trap(_) => "trap",
            Self::Timeout(_) => "timeout",
            Self::MemoryLimit(_) => "memory",
            Self::FuelExhausted(_) => "fuel",
            Self::StackExhausted(_) => "stack",
            Self::TableLimit(_) => "table",
            Self::ResourceLimit(_) => "resources",
            Self::Instantiate(_) => "instantiate",
        }
    }

    /// The sandbox stopped the guest: a trap or a limit, as opposed to the agent's own answer.
    /// These are audited (capability `sandbox`), so a security team sees an agent that keeps
    /// hitting its limits.
    pub fn is_sandbox_stop(&self) -> bool {
        matches!(
            self,
            Self::Trap(_)
                | Self::Timeout(_)
                | Self::MemoryLimit(_)
                | Self::FuelExhausted(_)
                | Self::StackExhausted(_)
                | Self::TableLimit(_)
                | Self::ResourceLimit(_)
        )
    }
}
