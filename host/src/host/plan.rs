//! What a deploy does, decided without touching anything: start an agent that does not run,
//! put the new version on trial as a canary, swap it in (keeping the running subscriptions or
//! restarting them), or refuse it with the reason. [`super::deploy`] applies the plan; every
//! decision is tested here.

use crate::manifest::diff::DiffLine;
use crate::manifest::{Delivery, DeliveryMode, Manifest};

/// A consumer group and one topic it subscribes to.
pub type Subscription = (String, String);

/// The version an agent runs now, as the plan needs to see it.
pub struct Live<'a> {
    pub manifest: &'a Manifest,
    pub subscriptions: &'a [Subscription],
    /// The version on trial as a canary beside it, if any.
    pub canary: Option<&'a str>,
}

/// The version asked for.
pub struct Requested<'a> {
    pub manifest: &'a Manifest,
    pub subscriptions: &'a [Subscription],
    /// Whether the operator accepted a widening of the grants.
    pub approved: bool,
    /// Where it came from, for the reasons.
    pub source: &'a str,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// The agent does not run: start it.
    Start,
    /// Beside the live version, for this percent of events.
    Canary {
        percent: u8,
    },
    /// Instead of the live version; its subscriptions keep running and pick it up on their
    /// next record, offsets untouched.
    Swap,
    /// Instead of the live version, and its subscriptions restart: different topics or groups,
    /// or delivery settings a membership reads once when it starts.
    SwapAndResubscribe,
    Refuse(Refusal),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It is granted more than the live version and the operator has not approved it.
    NeedsApproval { lines: Vec<DiffLine> },
    /// It cannot go live as asked; the reason says why and what to do.
    Conflict(String),
}

/// The plan for `requested`, given what runs now and the capability diff between the two.
pub fn plan(live: Option<&Live>, requested: &Requested, diff: &[DiffLine]) -> Plan {
    let Some(live) = live else {
        return Plan::Start;
    };
    let source = requested.source;
    let name = &requested.manifest.name;
    if let Some(refusal) = unapproved_widening(requested.approved, diff) {
        return Plan::Refuse(refusal);
    }
    if let Some(canary) = live.canary {
        return Plan::Refuse(Refusal::Conflict(format!(
            "{source}: {name} {canary} is on trial as a canary: `agenthost promote {name}` or `agenthost rollback {name}` first"
        )));
    }
    let resubscribe = membership_settings(&live.manifest.delivery)
        != membership_settings(&requested.manifest.delivery)
        || live.subscriptions != requested.subscriptions;
    let percent = requested.manifest.rollout.canary;
    if percent == 0 {
        return if resubscribe {
            Plan::SwapAndResubscribe
        } else {
            Plan::Swap
        };
    }
    // The canary shares the live version's consumer groups and partition workers.
    if requested.manifest.delivery.mode == DeliveryMode::ExactlyOnce {
        return Plan::Refuse(Refusal::Conflict(format!(
            "{source}: a canary needs at-least-once delivery (exactly-once handles a partition in one transaction at a time, on the live version); deploy it with rollout.canary = 0"
        )));
    }
    if resubscribe {
        return Plan::Refuse(Refusal::Conflict(format!(
            "{source}: a canary must subscribe and be delivered like the running version (same topics, groups, mode, ordering, concurrency and batch); deploy it with rollout.canary = 0 to switch outright"
        )));
    }
    Plan::Canary { percent }
}

/// The refusal of a version granted more than the live one, unless the operator approved it.
/// Also checked before the new version is instantiated: nothing of an unapproved widening runs.
pub fn unapproved_widening(approved: bool, diff: &[DiffLine]) -> Option<Refusal> {
    (!approved && diff.iter().any(|l| l.widens)).then(|| Refusal::NeedsApproval {
        lines: diff.to_vec(),
    })
}

/// What a consumer-group membership reads once, when it starts: a change restarts it. The
/// delivery mode (offsets stored for auto-commit and offsets committed in transactions must not
/// interleave), ordering, concurrency and batch (they size a partition's read-ahead).
fn membership_settings(d: &Delivery) -> impl PartialEq + use<> {
    (d.mode, d.ordering, d.concurrency, d.batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn manifest(version: &str, extra: &str) -> Manifest {
        Manifest::parse(
            Path::new("a.toml"),
            &format!(
                "name = \"a\"\nversion = \"{version}\"\ncomponent = \"a.wasm\"\n[[subscribe]]\ntopic = \"in.v1\"\n{extra}"
            ),
        )
        .unwrap()
    }

    fn subscriptions(topics: &[&str]) -> Vec<Subscription> {
        topics.iter().map(|t| ("a".into(), t.to_string())).collect()
    }

    fn widening() -> Vec<DiffLine> {
        vec![DiffLine {
            widens: true,
            text: "publish out.v1".into(),
        }]
    }

    struct Case {
        live: Manifest,
        live_topics: Vec<Subscription>,
        canary: Option<&'static str>,
        requested: Manifest,
        topics: Vec<Subscription>,
        approved: bool,
        diff: Vec<DiffLine>,
    }

    impl Case {
        fn new(requested_extra: &str) -> Self {
            Self {
                live: manifest("1.0.0", ""),
                live_topics: subscriptions(&["in.v1"]),
                canary: None,
                requested: manifest("1.1.0", requested_extra),
                topics: subscriptions(&["in.v1"]),
                approved: false,
                diff: Vec::new(),
            }
        }

        fn plan(&self) -> Plan {
            let live = Live {
                manifest: &self.live,
                subscriptions: &self.live_topics,
                canary: self.canary,
            };
            plan(Some(&live), &self.requested(), &self.diff)
        }

        fn requested(&self) -> Requested<'_> {
            Requested {
                manifest: &self.requested,
                subscriptions: &self.topics,
                approved: self.approved,
                source: "agents/a.toml",
            }
        }
    }

    fn conflict(plan: Plan) -> String {
        match plan {
            Plan::Refuse(Refusal::Conflict(reason)) => reason,
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    #[test]
    fn an_agent_that_does_not_run_is_started() {
        let case = Case::new("");
        assert_eq!(plan(None, &case.requested(), &widening()), Plan::Start);
    }

    #[test]
    fn the_same_subscriptions_swap_in_place_and_new_ones_restart() {
        assert_eq!(Case::new("").plan(), Plan::Swap);
        let mut moved = Case::new("");
        moved.topics = subscriptions(&["in.v2"]);
        assert_eq!(moved.plan(), Plan::SwapAndResubscribe);
        let batched = Case::new("[delivery]\nbatch = 8\n");
        assert_eq!(batched.plan(), Plan::SwapAndResubscribe);
    }

    #[test]
    fn a_widening_needs_approval_and_a_narrowing_does_not() {
        let mut wider = Case::new("");
        wider.diff = widening();
        assert_eq!(
            wider.plan(),
            Plan::Refuse(Refusal::NeedsApproval { lines: widening() })
        );
        wider.approved = true;
        assert_eq!(wider.plan(), Plan::Swap);
        let mut narrower = Case::new("");
        narrower.diff = vec![DiffLine {
            widens: false,
            text: "publish out.v1".into(),
        }];
        assert_eq!(narrower.plan(), Plan::Swap);
    }

    #[test]
    fn a_canary_goes_on_trial_only_beside_a_like_subscribed_version() {
        assert_eq!(
            Case::new("[rollout]\ncanary = 10\n").plan(),
            Plan::Canary { percent: 10 }
        );
        let mut moved = Case::new("[rollout]\ncanary = 10\n");
        moved.topics = subscriptions(&["in.v2"]);
        assert!(conflict(moved.plan()).contains("rollout.canary = 0"));
        let exactly_once =
            Case::new("[rollout]\ncanary = 10\n[delivery]\nmode = \"exactly-once\"\n");
        assert!(conflict(exactly_once.plan()).contains("at-least-once"));
    }

    #[test]
    fn nothing_is_deployed_while_a_canary_is_on_trial() {
        let mut trial = Case::new("");
        trial.canary = Some("1.0.1");
        let reason = conflict(trial.plan());
        assert!(reason.contains("1.0.1 is on trial"), "{reason}");
        assert!(reason.contains("agenthost promote a"), "{reason}");
    }
}
