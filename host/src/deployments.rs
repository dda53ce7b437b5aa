//! Deployment history: every deploy of every agent — version, component digest, manifest, where
//! it came from, when, and whether it went live — kept in sled, so a restart still knows what
//! ran before and `rollback` can bring an earlier version back after its files changed or went.
//!
//! The components of deployments that went live are stored by digest (once per digest); an
//! agent keeps its newest [`KEEP_PER_AGENT`] deployments, and a component is dropped with the
//! last deployment that names it.

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// Deployments kept per agent; older ones (and components only they named) are pruned.
pub const KEEP_PER_AGENT: usize = 20;

/// Who asked for a deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// The host config's `agents` globs, at start or when a file changed.
    Config,
    /// `agenthost deploy` / `POST /v1/agents`.
    Api,
    /// `agenthost rollback` / `POST /v1/agents/{name}/rollback`.
    Rollback,
    /// `agenthost promote` / `POST /v1/agents/{name}/promote`.
    Promote,
    /// The host itself: a canary that failed its check.
    Automatic,
    /// The host at start, bringing back the last approved deployment from this history (not
    /// recorded again: the history already says it).
    Restore,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Api => "api",
            Self::Rollback => "rollback",
            Self::Promote => "promote",
            Self::Automatic => "automatic",
            Self::Restore => "restore",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeployOutcome {
    /// It went live.
    Deployed,
    /// It was refused; the version before it kept serving.
    Refused,
    /// It went on trial as a canary beside the live version.
    Canary,
    /// Its canary trial ended without promotion (failed its check, or rolled back).
    RolledBack,
}

impl DeployOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deployed => "deployed",
            Self::Refused => "refused",
            Self::Canary => "canary",
            Self::RolledBack => "rolled-back",
        }
    }
}

/// One deployment of an agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// Increases with every deployment in this host.
    pub id: u64,
    pub agent: String,
    pub version: String,
    /// `sha256:…` of the component; empty when it was refused before it was read.
    pub digest: String,
    /// The manifest's path as the deployer named it.
    pub source: String,
    pub origin: Origin,
    pub at_ms: u64,
    pub outcome: DeployOutcome,
    /// Why it was refused, or what it changed (the capability diff, the version it replaced).
    pub detail: String,
    /// The manifest text, to deploy it again on rollback.
    pub manifest: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("deployment history storage: {0}")]
    Storage(#[from] sled::Error),
    #[error("deployment history entry is unreadable: {0}")]
    Corrupt(String),
}

pub struct Deployments {
    db: sled::Db,
    /// `agent \0 id` (big-endian) → JSON [`Deployment`].
    entries: sled::Tree,
    /// digest → component bytes, for deployments that went live.
    components: sled::Tree,
}

impl Deployments {
    pub fn open(db: &sled::Db) -> Result<Self, HistoryError> {
        Ok(Self {
            db: db.clone(),
            entries: db.open_tree("deployments")?,
            components: db.open_tree("deployments/components")?,
        })
    }

    /// Records a deployment (and, if it went live or on trial, its component); returns it with its id.
    /// Durable when this returns.
    pub async fn record(
        &self,
        mut deployment: Deployment,
        component: Option<&[u8]>,
    ) -> Result<Deployment, HistoryError> {
        deployment.id = self.db.generate_id()?;
        deployment.at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        if let Some(bytes) = component
            && !self.components.contains_key(&deployment.digest)?
        {
            self.components
                .insert(deployment.digest.as_bytes(), bytes)?;
        }
        let value =
            serde_json::to_vec(&deployment).map_err(|e| HistoryError::Corrupt(e.to_string()))?;
        self.entries
            .insert(entry_key(&deployment.agent, deployment.id), value)?;
        self.prune(&deployment.agent)?;
        self.db.flush_async().await?;
        Ok(deployment)
    }

    /// An agent's deployments, newest first.
    pub fn history(&self, agent: &str) -> Result<Vec<Deployment>, HistoryError> {
        let mut list = Vec::new();
        for item in self.entries.scan_prefix(agent_prefix(agent)).rev() {
            let (_, value) = item?;
            list.push(
                serde_json::from_slice(&value).map_err(|e| HistoryError::Corrupt(e.to_string()))?,
            );
        }
        Ok(list)
    }

    /// Every agent with a deployment in the history, sorted.
    pub fn agents(&self) -> Result<Vec<String>, HistoryError> {
        let mut names: Vec<String> = Vec::new();
        for key in self.entries.iter().keys() {
            let key = key?;
            let name = key.split(|&b| b == 0).next().unwrap_or_default();
            let name = String::from_utf8_lossy(name).into_owned();
            if names.last() != Some(&name) {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// The stored component of a deployment that went live.
    pub fn component(&self, digest: &str) -> Result<Option<Vec<u8>>, HistoryError> {
        Ok(self.components.get(digest)?.map(|v| v.to_vec()))
    }

    fn prune(&self, agent: &str) -> Result<(), HistoryError> {
        let keys: Vec<sled::IVec> = self
            .entries
            .scan_prefix(agent_prefix(agent))
            .keys()
            .collect::<Result<_, _>>()?;
        if keys.len() <= KEEP_PER_AGENT {
            return Ok(());
        }
        let mut dropped_digests = Vec::new();
        for key in &keys[..keys.len() - KEEP_PER_AGENT] {
            if let Some(value) = self.entries.remove(key)?
                && let Ok(d) = serde_json::from_slice::<Deployment>(&value)
            {
                dropped_digests.push(d.digest);
            }
        }
        // A component stays while any kept deployment, of any agent, names it.
        for digest in dropped_digests {
            let still_named = self.entries.iter().values().any(|v| {
                v.ok()
                    .and_then(|v| serde_json::from_slice::<Deployment>(&v).ok())
                    .is_some_and(|d| d.digest == digest)
            });
            if !still_named {
                self.components.remove(digest.as_bytes())?;
            }
        }
        Ok(())
    }
}

/// Which deployment `rollback` brings back: with `to`, the newest one of that version that went
/// live; without, the newest one that went live with a different version or component than the
/// live one (so two rollbacks in a row go back and forth, like `kubectl rollout undo`).
pub fn rollback_target<'a>(
    history: &'a [Deployment],
    live_version: &str,
    live_digest: &str,
    to: Option<&str>,
) -> Result<&'a Deployment, String> {
    let deployed = || {
        history
            .iter()
            .filter(|d| d.outcome == DeployOutcome::Deployed)
    };
    let found = match to {
        Some(version) => deployed().find(|d| d.version == version),
        None => deployed().find(|d| d.version != live_version || d.digest != live_digest),
    };
    found.ok_or_else(|| {
        let mut versions: Vec<&str> = deployed().map(|d| d.version.as_str()).collect();
        versions.dedup();
        let known = if versions.is_empty() {
            "none".to_owned()
        } else {
            versions.join(", ")
        };
        match to {
            Some(version) => format!(
                "version {version} was never live here (versions in the history: {known})"
            ),
            None => format!(
                "no earlier version to roll back to: {live_version} is the only one in the history (versions in the history: {known})"
            ),
        }
    })
}

fn agent_prefix(agent: &str) -> Vec<u8> {
    let mut key = agent.as_bytes().to_vec();
    key.push(0);
    key
}

fn entry_key(agent: &str, id: u64) -> Vec<u8> {
    let mut key = agent_prefix(agent);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(agent: &str, version: &str, digest: &str, outcome: DeployOutcome) -> Deployment {
        Deployment {
            id: 0,
            agent: agent.into(),
            version: version.into(),
            digest: digest.into(),
            source: format!("agents/{agent}.toml"),
            origin: Origin::Api,
            at_ms: 0,
            outcome,
            detail: String::new(),
            manifest: format!("name = \"{agent}\"\nversion = \"{version}\""),
        }
    }

    fn store() -> (tempfile::TempDir, Deployments) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        (dir, Deployments::open(&db).unwrap())
    }

    #[tokio::test]
    async fn history_is_per_agent_newest_first_and_keeps_components_of_live_ones() {
        let (_dir, store) = store();
        let d = |a, v, dg, o| deployment(a, v, dg, o);
        store
            .record(
                d("a", "1.0.0", "sha256:1", DeployOutcome::Deployed),
                Some(b"one"),
            )
            .await
            .unwrap();
        store
            .record(
                d("ab", "9.0.0", "sha256:9", DeployOutcome::Deployed),
                Some(b"nine"),
            )
            .await
            .unwrap();
        store
            .record(d("a", "2.0.0", "sha256:2", DeployOutcome::Refused), None)
            .await
            .unwrap();
        let history = store.history("a").unwrap();
        let versions: Vec<&str> = history.iter().map(|d| d.version.as_str()).collect();
        assert_eq!(versions, ["2.0.0", "1.0.0"], "agent `ab` is not agent `a`");
        assert!(history[0].id > history[1].id && history[1].at_ms > 0);
        assert_eq!(
            store.component("sha256:1").unwrap().as_deref(),
            Some(&b"one"[..])
        );
        assert_eq!(store.component("sha256:2").unwrap(), None);
    }

    #[tokio::test]
    async fn old_deployments_and_their_components_are_pruned() {
        let (_dir, store) = store();
        for i in 0..KEEP_PER_AGENT + 3 {
            let digest = format!("sha256:{i}");
            store
                .record(
                    deployment("a", &format!("1.0.{i}"), &digest, DeployOutcome::Deployed),
                    Some(digest.as_bytes()),
                )
                .await
                .unwrap();
        }
        let history = store.history("a").unwrap();
        assert_eq!(history.len(), KEEP_PER_AGENT);
        assert_eq!(history.last().unwrap().version, "1.0.3");
        assert_eq!(store.component("sha256:2").unwrap(), None);
        assert!(store.component("sha256:3").unwrap().is_some());
    }

    #[test]
    fn rollback_goes_to_the_newest_other_live_version_or_the_one_asked_for() {
        // Newest first: 3 live, 2 refused, 2 live before it, 1 before that.
        let history = vec![
            deployment("a", "3.0.0", "sha256:3", DeployOutcome::Deployed),
            deployment("a", "4.0.0", "sha256:4", DeployOutcome::Refused),
            deployment("a", "2.0.0", "sha256:2", DeployOutcome::Deployed),
            deployment("a", "1.0.0", "sha256:1", DeployOutcome::Deployed),
        ];
        let target = rollback_target(&history, "3.0.0", "sha256:3", None).unwrap();
        assert_eq!(
            target.version, "2.0.0",
            "a refused version is never a target"
        );
        let target = rollback_target(&history, "3.0.0", "sha256:3", Some("1.0.0")).unwrap();
        assert_eq!(target.version, "1.0.0");
        let err = rollback_target(&history, "3.0.0", "sha256:3", Some("4.0.0")).unwrap_err();
        assert!(
            err.contains("4.0.0 was never live") && err.contains("3.0.0, 2.0.0, 1.0.0"),
            "{err}"
        );
        let only = &history[..1];
        let err = rollback_target(only, "3.0.0", "sha256:3", None).unwrap_err();
        assert!(err.contains("no earlier version"), "{err}");
        // The same version rebuilt (another digest) is a different deployment.
        let rebuilt = vec![
            deployment("a", "3.0.0", "sha256:3b", DeployOutcome::Deployed),
            deployment("a", "3.0.0", "sha256:3", DeployOutcome::Deployed),
        ];
        let target = rollback_target(&rebuilt, "3.0.0", "sha256:3b", None).unwrap();
        assert_eq!(target.digest, "sha256:3");
    }
}
