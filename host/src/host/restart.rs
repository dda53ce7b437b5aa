//! Starting the agents: what the deployment history says was approved last, then the manifest
//! files the `agents` globs match, reconciled with it by the rules of any deploy.

use super::deploy::{Approval, DeployRequest};
use super::events::DeployEvent;
use super::{DeployError, DeployReport, Host};
use crate::deployments::{self, Deployment, Origin};
use crate::manifest::Manifest;
use crate::runtime::read_component;
use std::path::Path;
use std::sync::atomic::Ordering;

impl Host {
    /// Starts the agents: what the deployment history says was approved last, then the
    /// manifests the `agents` globs match, reconciled with it by the rules of any deploy.
    ///
    /// The history, not the files, is what a restarted host runs: a file edited while the host
    /// was down to widen its grants is refused (listed by `agenthost agents`, audited) and the
    /// approved version keeps running until `agenthost deploy --approve` accepts the change.
    /// An agent deployed through the API is restored too; one whose last approved deployment
    /// came from a manifest file that is gone is not (removing its file is how an agent
    /// managed by files is retired). A manifest naming an agent another manifest also names
    /// is refused, both naming the files. A refusal does not stop the others.
    pub async fn deploy_configured(&self) {
        let paths = crate::config::manifest_paths(&self.config.agents);
        // Each glob on its own: one mistyped glob among several is as worth saying as all.
        for glob in &self.config.agents {
            if crate::config::manifest_paths(std::slice::from_ref(glob)).is_empty() {
                tracing::warn!(
                    glob,
                    "the `agents` glob matches no manifest (relative globs start at the config file's directory)"
                );
            }
        }
        // Each agent's manifest files, with what the first one says (read once here).
        let mut files: std::collections::BTreeMap<String, Vec<std::path::PathBuf>> =
            Default::default();
        let mut parsed: std::collections::BTreeMap<String, Manifest> = Default::default();
        for path in paths {
            match Manifest::load(&path) {
                Ok(m) => {
                    files.entry(m.name.to_string()).or_default().push(path);
                    parsed.entry(m.name.to_string()).or_insert(m);
                }
                // Refused (and listed) with its error by the same path as any deploy.
                Err(_) => self.deploy_file(&path, Approval::Given).await,
            }
        }
        // Restored first: a restored version clears the refusals of its source, and a
        // duplicate's refusal must stay listed.
        self.restore_from_history(&files).await;
        for (name, paths) in files.iter().filter(|(_, p)| p.len() > 1) {
            self.refuse_duplicates(name, paths);
        }
        for (name, paths) in &files {
            let [path] = paths.as_slice() else { continue };
            if parsed.get(name).is_some_and(|m| self.runs(m)) {
                continue;
            }
            // A first deployment needs no approval; a change to what the history restored is
            // deployed as `deploy` would without --approve.
            let approval = Approval::given(self.registry.get(name).is_none());
            self.deploy_file(path, approval).await;
        }
        self.ready.store(true, Ordering::Release);
    }

    /// Deploys a manifest file at start; the deployment says itself, deployed or refused.
    async fn deploy_file(&self, path: &Path, approval: Approval) {
        let _ = self.deploy_path(path, approval, Origin::Config).await;
    }

    /// Refuses every manifest of an agent that several manifests name.
    fn refuse_duplicates(&self, name: &str, paths: &[std::path::PathBuf]) {
        let all: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        for source in &all {
            let err = DeployError::Conflict(format!(
                "{source}: agent {name:?} is named by {} manifests ({}); each agent has one: rename or remove the others",
                all.len(),
                all.join(", ")
            ));
            self.announce(DeployEvent::Refused {
                agent: name,
                version: "",
                source,
                origin: Origin::Config,
                error: &err.to_string(),
            });
        }
    }

    /// Brings back each agent's last approved deployment, from the stored manifest and
    /// component. Skipped: an agent whose last approved deployment came from a manifest file
    /// that no glob matches any more.
    async fn restore_from_history(
        &self,
        files: &std::collections::BTreeMap<String, Vec<std::path::PathBuf>>,
    ) {
        let agents = match self.deployments.agents() {
            Ok(agents) => agents,
            Err(err) => {
                tracing::error!(error = %err, "cannot read the deployment history; starting from the manifest files alone");
                return;
            }
        };
        for name in agents {
            let history = match self.deployments.history(&name) {
                Ok(history) => history,
                Err(err) => {
                    tracing::error!(agent = name, error = %err, "cannot read the agent's deployment history");
                    continue;
                }
            };
            let Some(approved) = history
                .iter()
                .find(|d| d.outcome == deployments::DeployOutcome::Deployed)
            else {
                continue;
            };
            if approved.origin == Origin::Config && !files.contains_key(&name) {
                tracing::info!(
                    agent = name,
                    manifest = approved.source,
                    "not restored: its manifest file is gone"
                );
                continue;
            }
            // Said by the deployment itself (origin `restore`), deployed or refused.
            let _ = self.restore(approved).await;
        }
    }

    async fn restore(&self, approved: &Deployment) -> Result<DeployReport, DeployError> {
        let (manifest, component) = self.stored(approved)?;
        self.deploy(DeployRequest {
            manifest,
            component,
            source: approved.source.clone(),
            approval: Approval::Given,
            origin: Origin::Restore,
        })
        .await
    }

    /// The manifest and component a deployment in the history went live with.
    pub(super) fn stored(
        &self,
        deployment: &Deployment,
    ) -> Result<(Manifest, Vec<u8>), DeployError> {
        let bytes = self
            .deployments
            .component(&deployment.digest)
            .map_err(|e| DeployError::Rollback(e.to_string()))?
            .ok_or_else(|| {
                DeployError::Rollback(format!(
                    "the component of {} {} ({}) is no longer stored",
                    deployment.agent, deployment.version, deployment.digest
                ))
            })?;
        let manifest = Manifest::parse(Path::new(&deployment.source), &deployment.manifest)?;
        Ok((manifest, bytes))
    }

    /// Whether its agent already runs exactly what `manifest` says (same manifest text, same
    /// component): then there is nothing to deploy.
    fn runs(&self, manifest: &Manifest) -> bool {
        let Some(cell) = self.registry.get(manifest.name.as_str()) else {
            return false;
        };
        let current = cell.current();
        manifest.text == current.manifest.text
            && read_component(&manifest.component)
                .is_ok_and(|bytes| crate::runtime::digest_of(&bytes) == current.digest)
    }
}
