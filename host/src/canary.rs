//! Canary rollouts: a new version handles a share of the events (chosen by key, so a key stays
//! on one version) beside the running one, until it is promoted — or rolled back by itself when
//! its failure rate over the window exceeds the running version's by more than the margin.

use crate::agent::AgentVersion;
use crate::deployments::{DeployOutcome, Deployment, Origin};
use crate::manifest::Rollout;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A version on trial.
pub struct Canary {
    pub version: Arc<AgentVersion>,
    pub rollout: Rollout,
    /// Where its manifest came from (for the history when it ends).
    pub source: String,
    tally: Mutex<Tally>,
}

/// Which side of a canary an invocation ran on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Stable,
    Canary,
}

/// Invocations and failures of both sides, in one-second buckets over the window.
#[derive(Default)]
struct Tally {
    /// (second since start, [stable ok, stable failed, canary ok, canary failed])
    buckets: VecDeque<(u64, [u64; 4])>,
    started: Option<Instant>,
}

/// The counts over the window, for `agenthost agents` and the verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub stable_invocations: u64,
    pub stable_failures: u64,
    pub canary_invocations: u64,
    pub canary_failures: u64,
}

impl Counts {
    fn rate(failures: u64, invocations: u64) -> f64 {
        if invocations == 0 {
            0.0
        } else {
            failures as f64 / invocations as f64
        }
    }
}

impl Tally {
    fn record(&mut self, now: Instant, window: Duration, side: Side, ok: bool) {
        let started = *self.started.get_or_insert(now);
        let second = now.duration_since(started).as_secs();
        if self.buckets.back().is_none_or(|(s, _)| *s != second) {
            self.buckets.push_back((second, [0; 4]));
        }
        let index = match (side, ok) {
            (Side::Stable, true) => 0,
            (Side::Stable, false) => 1,
            (Side::Canary, true) => 2,
            (Side::Canary, false) => 3,
        };
        if let Some((_, counts)) = self.buckets.back_mut() {
            counts[index] += 1;
        }
        let oldest = second.saturating_sub(window.as_secs().max(1) - 1);
        while self.buckets.front().is_some_and(|(s, _)| *s < oldest) {
            self.buckets.pop_front();
        }
    }

    fn counts(&self) -> Counts {
        let mut sum = [0u64; 4];
        for (_, c) in &self.buckets {
            for (total, n) in sum.iter_mut().zip(c) {
                *total += n;
            }
        }
        Counts {
            stable_invocations: sum[0] + sum[1],
            stable_failures: sum[1],
            canary_invocations: sum[2] + sum[3],
            canary_failures: sum[3],
        }
    }
}

impl Canary {
    pub fn new(version: Arc<AgentVersion>, rollout: Rollout, source: String) -> Self {
        Self {
            version,
            rollout,
            source,
            tally: Mutex::new(Tally::default()),
        }
    }

    /// Whether an event with `key` goes to the canary. Keyed events stick to one side; an event
    /// without a key is placed by `fallback` (its offset), spreading them evenly.
    pub fn takes(&self, key: Option<&[u8]>, fallback: u64) -> bool {
        takes(self.rollout.canary, key, fallback)
    }

    /// Counts an invocation's outcome. Returns why the canary must be rolled back, once it
    /// has had `min_invocations` in the window and fails more than the margin allows.
    pub fn record(&self, side: Side, ok: bool) -> Option<String> {
        let mut tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        tally.record(Instant::now(), self.rollout.window, side, ok);
        judge(&tally.counts(), &self.rollout)
    }

    /// The history entry for the end of this canary's trial.
    pub fn deployment(&self, origin: Origin, outcome: DeployOutcome, detail: String) -> Deployment {
        let version = &self.version;
        Deployment {
            id: 0,
            agent: version.name.to_string(),
            version: version.version.to_string(),
            digest: version.digest.clone(),
            source: self.source.clone(),
            origin,
            at_ms: 0,
            outcome,
            detail,
            manifest: version.manifest.text.clone(),
        }
    }

    pub fn counts(&self) -> Counts {
        self.tally
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .counts()
    }
}

fn takes(percent: u8, key: Option<&[u8]>, fallback: u64) -> bool {
    // A fixed-key hash (not the per-process random one), so a key stays on its side in every
    // host built by the same toolchain and across restarts.
    let mut hasher = std::hash::DefaultHasher::default();
    match key {
        Some(k) => k.hash(&mut hasher),
        None => fallback.hash(&mut hasher),
    }
    (hasher.finish() % 100) < u64::from(percent)
}

/// The verdict on counts over the window: `Some(reason)` to roll the canary back.
fn judge(c: &Counts, rollout: &Rollout) -> Option<String> {
    if c.canary_invocations < u64::from(rollout.min_invocations) {
        return None;
    }
    let canary = Counts::rate(c.canary_failures, c.canary_invocations);
    let stable = Counts::rate(c.stable_failures, c.stable_invocations);
    (canary > stable + rollout.margin).then(|| {
        format!(
            "canary failure rate {:.1}% ({} of {}) exceeds the running version's {:.1}% ({} of {}) by more than the margin of {:.1} points over {}",
            canary * 100.0,
            c.canary_failures,
            c.canary_invocations,
            stable * 100.0,
            c.stable_failures,
            c.stable_invocations,
            rollout.margin * 100.0,
            humantime::format_duration(rollout.window)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(min: u32) -> Rollout {
        Rollout {
            canary: 50,
            window: Duration::from_secs(10),
            margin: 0.1,
            min_invocations: min,
        }
    }

    #[test]
    fn a_canary_is_judged_only_after_enough_invocations_and_beyond_the_margin() {
        let r = rollout(10);
        let counts = |sf, si, cf, ci| Counts {
            stable_failures: sf,
            stable_invocations: si,
            canary_failures: cf,
            canary_invocations: ci,
        };
        assert_eq!(judge(&counts(0, 100, 9, 9), &r), None, "too few to judge");
        assert_eq!(
            judge(&counts(10, 100, 2, 10), &r),
            None,
            "20% vs 10%: within"
        );
        let reason = judge(&counts(10, 100, 3, 10), &r).unwrap();
        assert!(
            reason.contains("30.0% (3 of 10)") && reason.contains("10.0% (10 of 100)"),
            "{reason}"
        );
        assert!(
            judge(&counts(0, 0, 10, 10), &r).is_some(),
            "no stable traffic counts as 0%"
        );
    }

    #[test]
    fn the_window_forgets_old_outcomes() {
        let mut t = Tally::default();
        let start = Instant::now();
        let window = Duration::from_secs(3);
        t.record(start, window, Side::Canary, false);
        t.record(start + Duration::from_secs(1), window, Side::Stable, true);
        assert_eq!(t.counts().canary_failures, 1);
        t.record(start + Duration::from_secs(3), window, Side::Canary, true);
        let c = t.counts();
        assert_eq!((c.canary_failures, c.canary_invocations), (0, 1));
        assert_eq!(c.stable_invocations, 1);
    }

    #[test]
    fn keys_stick_to_one_side_and_the_share_is_about_right() {
        let share = (0..10_000)
            .filter(|i| takes(30, Some(format!("key-{i}").as_bytes()), 0))
            .count();
        assert!((2_500..3_500).contains(&share), "{share}");
        assert_eq!(takes(30, Some(b"same"), 1), takes(30, Some(b"same"), 2));
        let keyless = (0..10_000u64).filter(|i| takes(30, None, *i)).count();
        assert!((2_500..3_500).contains(&keyless), "{keyless}");
        assert!((0..100u64).all(|i| !takes(0, None, i)));
        assert!((0..100u64).all(|i| takes(100, None, i)));
    }
}
