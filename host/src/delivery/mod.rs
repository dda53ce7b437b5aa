//! The delivery engine: turns a consumer-group subscription into agent invocations with the
//! promised semantics, on any [`Bus`].
//!
//! - One worker per assigned partition hands its records out in offset order, one at a time per
//!   chain (`delivery.ordering`: the records of one key, or the whole partition), so records of
//!   different keys overlap their invocations and broker round trips, while a key's records are
//!   handled in order; a partition in backoff never blocks the others.
//! - `delivery.concurrency` bounds invocations in flight across the subscription's partitions.
//! - An offset is committed only once every record below it returned ok or was written to the
//!   dead-letter topic; a crash replays at most what was read and unfinished (at-least-once).
//! - Failures are retried with exponential backoff up to `max_attempts`; rejections and
//!   exhausted records are dead-lettered with headers naming agent, version, attempts and error.
//! - With `delivery.batch` above 1 and a component that exports `on-events`, the records free
//!   to start at once (at most one per chain) go to one invocation together; each is then
//!   finished, retried or dead-lettered on its own, retries one at a time.
//!
//! The engine knows agents and buses, not what a record means to an agent: a [`Handler`]
//! runs it (an agent's `on-event`, or an A2A task request served over the bus). Its parts:
//! `membership.rs` (a group membership and its partitions), `worker.rs` (one partition, read to
//! committed), `attempt.rs` (one record or batch: deliver, retry), `exactly_once.rs`,
//! `dead_letter.rs`, and `pipeline.rs` (which record may start, which offset may be committed).

use crate::bus::{Bus, BusError, Record, headers};
use crate::metrics::Metrics;
use crate::registry::AgentCell;
use membership::run_membership;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use worker::Rewound;

pub use dead_letter::dead_letter_record;
pub use handler::{AgentEvents, Attempt, Handler};

/// Pause before retrying a bus operation that failed (fetch, commit, dead-letter publish).
const BUS_RETRY: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct Deps {
    pub bus: Arc<dyn Bus>,
    pub metrics: Arc<Metrics>,
}

/// Runs one subscription of an agent until `stop` is cancelled, handing its records to
/// `handler`. If the membership ends (the bus closed it), it subscribes again.
pub fn spawn_subscription(
    deps: Deps,
    cell: Arc<AgentCell>,
    group: String,
    topics: Vec<String>,
    handler: Arc<dyn Handler>,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let agent = cell.name().to_owned();
        let rewound = Rewound::default();
        while !stop.is_cancelled() {
            let subscription = match deps.bus.subscribe(&group, &topics).await {
                Ok(s) => s,
                Err(err) => {
                    tracing::error!(agent, group, ?topics, error = %err, "cannot subscribe; retrying");
                    if sleep_or_stop(Duration::from_secs(2), &stop).await {
                        break;
                    }
                    continue;
                }
            };
            tracing::info!(agent, group, ?topics, bus = deps.bus.kind(), "subscribed");
            run_membership(
                &deps,
                &cell,
                &group,
                &handler,
                &rewound,
                subscription,
                &stop,
            )
            .await;
        }
        tracing::info!(agent, group, "subscription stopped");
    })
}

/// Sleeps for `d`; returns true if `stop` was cancelled first.
async fn sleep_or_stop(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// Runs a bus operation (an expression, `.await`ed inside) until it succeeds, as `Some`; a
/// failure is logged and tried again after [`BUS_RETRY`] (see [`may_retry`]), because giving
/// up would lose or duplicate a record. `None` once the partition is gone or the worker stops.
macro_rules! retry_bus {
    ($agent:expr, $what:expr, $stop:expr, $operation:expr) => {
        loop {
            match $operation {
                Ok(value) => break Some(value),
                Err(err) => {
                    if !$crate::delivery::may_retry($agent, $what, $stop, err).await {
                        break None;
                    }
                }
            }
        }
    };
}

mod attempt;
mod dead_letter;
mod exactly_once;
mod handler;
mod membership;
mod pipeline;
mod release;
mod worker;

/// After a bus operation failed: false when the partition is gone (`Closed`: revoked) or `stop`
/// was cancelled while pausing; else logs the failure naming `what` and pauses for
/// [`BUS_RETRY`].
async fn may_retry(agent: &str, what: &str, stop: &CancellationToken, err: BusError) -> bool {
    if matches!(err, BusError::Closed) {
        return false;
    }
    tracing::warn!(agent, error = %err, "{what} failed; retrying");
    !sleep_or_stop(BUS_RETRY, stop).await
}

/// The correlation id of a record: its header, or a new one minted here, where it entered.
pub fn correlation_id_of(record: &Record) -> String {
    record
        .header(headers::CORRELATION_ID)
        .and_then(|v| std::str::from_utf8(v).ok())
        .filter(|s| !s.is_empty())
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// `base * 2^(attempt-1)`, capped at `max`.
pub fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(max).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let (b, m) = (Duration::from_millis(200), Duration::from_secs(5));
        assert_eq!(backoff(b, m, 1), Duration::from_millis(200));
        assert_eq!(backoff(b, m, 2), Duration::from_millis(400));
        assert_eq!(backoff(b, m, 3), Duration::from_millis(800));
        assert_eq!(backoff(b, m, 10), m);
        assert_eq!(backoff(b, m, 100), m);
    }

    #[test]
    fn correlation_id_comes_from_the_header_or_is_minted() {
        let mut r = Record {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            key: None,
            payload: vec![],
            headers: vec![crate::bus::Header::new("correlation-id", "abc")],
            timestamp_ms: 0,
        };
        assert_eq!(correlation_id_of(&r), "abc");
        r.headers.clear();
        let minted = correlation_id_of(&r);
        assert_eq!(minted.len(), 36, "{minted}");
    }
}
