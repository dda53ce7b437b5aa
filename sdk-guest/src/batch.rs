//! Several bus records per invocation (the `batch` feature).
//!
//! Opt in with one line in the agent's `Cargo.toml`:
//!
//! ```toml
//! agenthost-sdk = { path = "../../sdk-guest", features = ["batch"] }
//! ```
//!
//! The component then also exports `on-events`, and a manifest that sets `delivery.batch`
//! above 1 gets up to that many records of a partition per invocation, at most one per key, so
//! per-key order holds. The default [`Agent::on_events`](crate::Agent::on_events) loops over
//! [`Agent::on_event`](crate::Agent::on_event); each event still succeeds, is retried or is
//! dead-lettered on its own. Fewer invocations mean fewer instances (with
//! `limits.reuse_instances = false`, the fresh instance is per batch: events of one batch share
//! it, batches do not) and less per-invocation work in the host.
//!
//! The host attributes what the agent does inside a batch to the event it was last told about
//! ([`handling`]): the correlation id on sent records, the audit trail, log lines, and which
//! event waits for a sent record's acknowledgement. [`each`] does that for you.

use crate::{Event, Failure};

/// Tells the host that what follows is on behalf of event `index` (0-based) of the batch being
/// handled. Outside `on_events`, or with the `batch` feature off, this does nothing.
pub fn handling(index: usize) {
    #[cfg(feature = "batch")]
    {
        // A batch is a list the host built: it never holds more than u32::MAX events.
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        if IN_BATCH.with(std::cell::Cell::get) {
            crate::bindings::agenthost::agent::batch::handling(index);
        }
    }
    #[cfg(not(feature = "batch"))]
    let _ = index;
}

#[cfg(feature = "batch")]
thread_local! {
    /// Whether an `on_events` call is running, so [`handling`] outside one is a no-op rather
    /// than a trap.
    static IN_BATCH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `handle` on each event in turn, telling the host which one it is working on; returns
/// the results in order.
pub fn each(
    events: Vec<Event>,
    mut handle: impl FnMut(Event) -> Result<(), Failure>,
) -> Vec<Result<(), Failure>> {
    events
        .into_iter()
        .enumerate()
        .map(|(index, event)| {
            handling(index);
            handle(event)
        })
        .collect()
}

/// Runs `f` (the agent's `on_events`) with [`handling`] turned on.
#[cfg(feature = "batch")]
pub(crate) fn in_batch<R>(f: impl FnOnce() -> R) -> R {
    IN_BATCH.with(|b| b.set(true));
    let result = f();
    IN_BATCH.with(|b| b.set(false));
    result
}
