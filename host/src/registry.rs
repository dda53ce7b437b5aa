//! The agent registry: name → live version, the subscriptions feeding it, and the deployments
//! that were refused (so operators can see why an agent is not running).

use crate::agent::AgentVersion;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Counters per agent across its versions, for `agenthost agents`.
#[derive(Default)]
pub struct AgentStats {
    pub dead_letters: AtomicU64,
}

/// The live version of one agent. Invocations read it once each; a deploy swaps it atomically,
/// so in-flight invocations finish on the version they started with.
pub struct AgentCell {
    name: String,
    live: RwLock<Arc<AgentVersion>>,
    pub stats: AgentStats,
}

impl AgentCell {
    pub fn new(version: AgentVersion) -> Self {
        Self {
            name: version.name.to_string(),
            live: RwLock::new(Arc::new(version)),
            stats: AgentStats::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn current(&self) -> Arc<AgentVersion> {
        self.live.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Makes `version` live; returns the one it replaced.
    pub fn swap(&self, version: AgentVersion) -> Arc<AgentVersion> {
        std::mem::replace(
            &mut *self.live.write().unwrap_or_else(|p| p.into_inner()),
            Arc::new(version),
        )
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
