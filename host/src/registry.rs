//! The agent registry: name → live version, the subscriptions feeding it, and the deployments
//! that were refused (so operators can see why an agent is not running).

use crate::agent::AgentVersion;
use crate::canary::{Canary, Side};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Counters per agent across its versions, for `agenthost agents`.
#[derive(Default)]
pub struct AgentStats {
    pub dead_letters: AtomicU64,
    /// Event invocations (attempts, retries included) and how many of them failed.
    pub invocations: AtomicU64,
    pub failures: AtomicU64,
}

/// A canary that failed its check and was taken out, for the host to record.
pub struct CanaryFailed {
    pub canary: Arc<Canary>,
    pub reason: String,
}

/// The live version of one agent, and its canary if one is on trial. Invocations read it once
/// each; a deploy swaps it atomically, so in-flight invocations finish on the version they
/// started with.
pub struct AgentCell {
    name: String,
    live: RwLock<Arc<AgentVersion>>,
    canary: RwLock<Option<Arc<Canary>>>,
    /// Where a canary that fails its check is reported.
    canary_failed: Option<tokio::sync::mpsc::UnboundedSender<CanaryFailed>>,
    pub stats: AgentStats,
}

impl AgentCell {
    pub fn new(
        version: AgentVersion,
        canary_failed: Option<tokio::sync::mpsc::UnboundedSender<CanaryFailed>>,
    ) -> Self {
        Self {
            name: version.name.to_string(),
            live: RwLock::new(Arc::new(version)),
            canary: RwLock::new(None),
            canary_failed,
            stats: AgentStats::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The live (stable) version.
    pub fn current(&self) -> Arc<AgentVersion> {
        self.live.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The version an event goes to: the canary's share by key, else the live version.
    pub fn pick(&self, key: Option<&[u8]>, fallback: u64) -> Arc<AgentVersion> {
        match self.canary() {
            Some(canary) if canary.takes(key, fallback) => canary.version.clone(),
            _ => self.current(),
        }
    }

    /// Makes `version` live; returns the one it replaced.
    pub fn swap(&self, version: AgentVersion) -> Arc<AgentVersion> {
        self.swap_arc(Arc::new(version))
    }

    fn swap_arc(&self, version: Arc<AgentVersion>) -> Arc<AgentVersion> {
        std::mem::replace(
            &mut *self.live.write().unwrap_or_else(|p| p.into_inner()),
            version,
        )
    }

    pub fn canary(&self) -> Option<Arc<Canary>> {
        self.canary
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts `canary` on trial beside the live version.
    pub fn start_canary(&self, canary: Canary) {
        *self.canary.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(canary));
    }

    /// Ends the trial without promoting: new events go to the live version only.
    pub fn take_canary(&self) -> Option<Arc<Canary>> {
        self.canary
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Makes the canary the live version; returns it and the version it replaced.
    pub fn promote(&self) -> Option<(Arc<Canary>, Arc<AgentVersion>)> {
        let mut slot = self.canary.write().unwrap_or_else(|p| p.into_inner());
        let canary = slot.take()?;
        let old = self.swap_arc(canary.version.clone());
        Some((canary, old))
    }

    /// Whether `version` is this agent's canary.
    pub fn is_canary(&self, version: &Arc<AgentVersion>) -> bool {
        self.canary()
            .is_some_and(|c| Arc::ptr_eq(&c.version, version))
    }

    /// Counts an event invocation's outcome, and towards the canary check if a canary is on
    /// trial; a canary that fails the check is taken out at once and reported.
    pub fn record_outcome(&self, version: &Arc<AgentVersion>, ok: bool) {
        self.stats.invocations.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
        }
        let Some(canary) = self.canary() else {
            return;
        };
        let side = if Arc::ptr_eq(&canary.version, version) {
            Side::Canary
        } else if Arc::ptr_eq(&self.current(), version) {
            Side::Stable
        } else {
            return;
        };
        let Some(reason) = canary.record(side, ok) else {
            return;
        };
        let removed = {
            let mut slot = self.canary.write().unwrap_or_else(|p| p.into_inner());
            match &*slot {
                Some(c) if Arc::ptr_eq(c, &canary) => slot.take(),
                _ => None,
            }
        };
        if let (Some(canary), Some(report)) = (removed, &self.canary_failed) {
            let _ = report.send(CanaryFailed { canary, reason });
        }
    }
}

/// A running agent: its cell and the subscription tasks feeding it.
pub struct Running {
    pub cell: Arc<AgentCell>,
    pub stop: CancellationToken,
    pub tasks: Vec<JoinHandle<()>>,
    /// The subscriptions the tasks serve, as (group, topic), to know whether a new version
    /// needs them restarted.
    pub subscriptions: Vec<(String, String)>,
    pub source: String,
}

/// A deployment that was refused, and why.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Refusal {
    pub source: String,
    pub agent: Option<String>,
    pub error: String,
    #[serde(with = "humantime_serde")]
    pub at: SystemTime,
}

#[derive(Default)]
pub struct Registry {
    running: RwLock<BTreeMap<String, Running>>,
    refused: RwLock<BTreeMap<String, Refusal>>,
}

impl Registry {
    pub fn get(&self, name: &str) -> Option<Arc<AgentCell>> {
        self.read().get(name).map(|r| r.cell.clone())
    }

    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Running>> {
        self.running.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Running>> {
        self.running.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Why an agent may not be named like `manifest`'s, if it may not: each agent's name is
    /// its own group, so it cannot be the name of a group another agent subscribes in. (That
    /// no agent joins another's group is checked against the deployment history.)
    pub fn group_conflict(&self, manifest: &crate::manifest::Manifest) -> Option<String> {
        let name = manifest.name.as_str();
        self.read()
            .iter()
            .filter(|(other, _)| other.as_str() != name)
            .find(|(_, r)| r.subscriptions.iter().any(|(group, _)| group == name))
            .map(|(other, _)| {
                format!(
                    "agent {other:?} subscribes in a group named {name:?}; an agent's name is its own group, so it cannot be deployed under that name"
                )
            })
    }

    /// The warm instances the agents other than `agent` may keep: `limits.instances` of each
    /// version with `reuse_instances`, live or on trial as a canary.
    pub fn warm_instances_except(&self, agent: &str) -> u32 {
        let warm = |v: &crate::agent::AgentVersion| {
            let l = &v.manifest.limits;
            if l.reuse_instances { l.instances } else { 0 }
        };
        self.read()
            .iter()
            .filter(|(name, _)| name.as_str() != agent)
            .map(|(_, r)| warm(&r.cell.current()) + r.cell.canary().map_or(0, |c| warm(&c.version)))
            .sum()
    }

    pub fn refuse(&self, refusal: Refusal) {
        self.refused
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(refusal.source.clone(), refusal);
    }

    pub fn clear_refusal(&self, source: &str) {
        self.refused
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(source);
    }

    pub fn refusals(&self) -> Vec<Refusal> {
        self.refused
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
}
