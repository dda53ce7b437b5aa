//! Deploying: one request through its checks, a plan ([`super::plan`]) and its application;
//! rollback, approval and promotion, which are deploys of a stored or trial version; and the
//! record of each in the audit log and the deployment history.

use super::events::DeployEvent;
use super::plan::{self, Live, Plan, Refusal, Requested, Subscription};
use super::{DeployError, DeployReport, Host};
use crate::agent::AgentVersion;
use crate::config::ConfigError;
use crate::deployments::{self, Deployment, Origin};
use crate::manifest::Manifest;
use crate::manifest::diff::diff;
use crate::registry::AgentCell;
use std::path::Path;
use std::sync::Arc;

/// One deployment to make: what, from where, and whether a widening is approved.
pub struct DeployRequest {
    pub manifest: Manifest,
    pub component: Vec<u8>,
    /// Where it came from, as the history and the refusals name it: a manifest's path.
    pub source: String,
    pub approval: Approval,
    pub origin: Origin,
}

/// Whether the operator accepted what the capability diff shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Approval {
    /// A version granted more than the live one is refused, listing the widening.
    Required,
    /// Deployed whatever it widens (`--approve`, a first deployment, a restore).
    Given,
}

impl Approval {
    pub fn given(approved: bool) -> Self {
        if approved {
            Self::Given
        } else {
            Self::Required
        }
    }
}

/// The consumer groups and topics a version subscribes to: its own, and one worker group per
/// skill it serves over the bus, shared by every host serving it.
fn subscriptions_of(manifest: &Manifest) -> Vec<Subscription> {
    let mut subscriptions: Vec<Subscription> = manifest
        .subscribe
        .iter()
        .map(|s| (manifest.group_of(s).to_owned(), s.topic.clone()))
        .collect();
    subscriptions.extend(manifest.a2a.bus_skills.iter().map(|skill| {
        (
            crate::a2a::bus::worker_group(skill),
            crate::a2a::bus::request_topic(skill),
        )
    }));
    subscriptions
}

impl Host {
    /// Deploys the manifest at `path` and the component it names.
    pub async fn deploy_path(
        &self,
        path: &Path,
        approval: Approval,
        origin: Origin,
    ) -> Result<DeployReport, DeployError> {
        let source = path.display().to_string();
        let loaded = Manifest::load(path).and_then(|m| {
            let bytes = m.read_component(path)?;
            Ok((m, bytes))
        });
        match loaded {
            Ok((manifest, component)) => {
                self.deploy(DeployRequest {
                    manifest,
                    component,
                    source,
                    approval,
                    origin,
                })
                .await
            }
            Err(err) => {
                self.announce(DeployEvent::Refused {
                    agent: "",
                    version: "",
                    source: &source,
                    origin,
                    error: &err.to_string(),
                });
                Err(err.into())
            }
        }
    }

    /// Validates and deploys a new version. The agent's running version, if any, serves until
    /// the new one is ready, and keeps serving if it is refused. Audited and recorded in the
    /// deployment history either way.
    pub async fn deploy(&self, request: DeployRequest) -> Result<DeployReport, DeployError> {
        self.deploy_holding(request, None).await
    }

    /// [`Host::deploy`], under the deploy lock `held` if the caller took it already (a
    /// rollback chooses its target under it, so two rollbacks cannot both pick from the same
    /// live version).
    async fn deploy_holding(
        &self,
        request: DeployRequest,
        held: Option<tokio::sync::MutexGuard<'_, ()>>,
    ) -> Result<DeployReport, DeployError> {
        let DeployRequest {
            manifest,
            component: bytes,
            source,
            approval,
            origin,
        } = request;
        let source = source.as_str();
        let agent_name = manifest.name.to_string();
        let version = manifest.version.to_string();
        let manifest_text = manifest.text.clone();
        let digest = crate::runtime::digest_of(&bytes);
        let result = self
            .deploy_inner(manifest, &bytes, &digest, source, approval, held)
            .await;
        let detail = match &result {
            Ok(report) => {
                self.claim_skills(&agent_name);
                self.announce(DeployEvent::Deployed {
                    report,
                    source,
                    origin,
                });
                report.diff.join("; ")
            }
            Err(err) => {
                let error = err.to_string();
                self.announce(DeployEvent::Refused {
                    agent: &agent_name,
                    version: &version,
                    source,
                    origin,
                    error: &error,
                });
                error
            }
        };
        let deployment = Deployment {
            id: 0,
            agent: agent_name,
            version,
            digest,
            source: source.to_owned(),
            origin,
            at_ms: 0,
            outcome: match &result {
                Ok(report) if report.canary > 0 => deployments::DeployOutcome::Canary,
                Ok(_) => deployments::DeployOutcome::Deployed,
                Err(_) => deployments::DeployOutcome::Refused,
            },
            detail: match &result {
                Ok(DeployReport {
                    replaced: Some(live),
                    canary,
                    ..
                }) if *canary > 0 => format!("canary for {canary}% of events beside {live}"),
                Ok(DeployReport {
                    replaced: Some(old),
                    ..
                }) if detail.is_empty() => format!("replaced {old}"),
                Ok(DeployReport {
                    replaced: Some(old),
                    ..
                }) => format!("replaced {old}; {detail}"),
                _ => detail,
            },
            manifest: manifest_text,
        };
        self.record_deployment(deployment, result.is_ok().then_some(&bytes[..]))
            .await;
        result
    }

    /// Adds a deployment to the history. A restart loading the same files again is not a new
    /// deployment: a config deploy identical to the agent's newest entry is not recorded twice.
    pub(super) async fn record_deployment(&self, deployment: Deployment, component: Option<&[u8]>) {
        if deployment.origin == Origin::Restore {
            return;
        }
        if deployment.origin == Origin::Config
            && let Ok(history) = self.deployments.history(&deployment.agent)
            && history.first().is_some_and(|newest| {
                newest.version == deployment.version
                    && newest.digest == deployment.digest
                    && newest.outcome == deployment.outcome
            })
        {
            return;
        }
        if let Err(err) = self.deployments.record(deployment, component).await {
            // The deployment itself happened (or was refused) regardless; only its record is
            // missing, and the audit log still has it.
            tracing::error!(error = %err, "cannot record the deployment in the history");
        }
    }

    /// Deploys again an earlier version of `agent` from the history: the one asked for, or the
    /// newest one that went live with a different version or component than the live one.
    /// Swapped like any deployment, and like any deployment it needs `approve` when it is
    /// granted more than the live version: going back past a version that narrowed the
    /// grants (a security fix) widens them again.
    pub async fn rollback(
        &self,
        agent: &str,
        to: Option<&str>,
        approval: Approval,
    ) -> Result<DeployReport, DeployError> {
        let guard = self.deploy_lock.lock().await;
        let cell = self
            .registry
            .get(agent)
            .ok_or_else(|| DeployError::UnknownAgent(agent.to_owned()))?;
        if let Some(canary) = cell.take_canary() {
            let live = cell.current();
            self.record_canary_end(
                &canary,
                Origin::Rollback,
                "rolled back by the operator".into(),
            )
            .await;
            return Ok(DeployReport {
                agent: agent.to_owned(),
                version: live.version.to_string(),
                digest: live.digest.clone(),
                replaced: Some(canary.version.version.to_string()),
                diff: Vec::new(),
                canary: 0,
            });
        }
        let live = cell.current();
        let history = self
            .deployments
            .history(agent)
            .map_err(|e| DeployError::Rollback(e.to_string()))?;
        let target = deployments::rollback_target(&history, &live.version, &live.digest, to)
            .map_err(DeployError::Rollback)?;
        if *target.version == *live.version && target.digest == live.digest {
            return Err(DeployError::Rollback(format!(
                "{agent} {} is already live",
                target.version
            )));
        }
        let (manifest, bytes) = self.stored(target)?;
        tracing::info!(
            agent,
            from = %live.version,
            to = target.version,
            "rolling back"
        );
        let request = DeployRequest {
            manifest,
            component: bytes,
            source: target.source.clone(),
            approval,
            origin: Origin::Rollback,
        };
        self.deploy_holding(request, Some(guard)).await
    }

    /// Approves the widening that was refused for `agent`'s manifest file (at start, or when
    /// the watcher saw the file change): deploys the file again with approval. Only a refusal
    /// of a file the host can read again can be approved this way; an upload is deployed
    /// again with `agenthost deploy FILE --approve`.
    pub async fn approve(&self, agent: &str) -> Result<DeployReport, DeployError> {
        let pending: Vec<crate::registry::Refusal> = self
            .registry
            .refusals()
            .into_iter()
            .filter(|r| r.agent.as_deref() == Some(agent))
            .collect();
        let source = match pending.as_slice() {
            [] => {
                return Err(DeployError::Conflict(format!(
                    "no refused deployment of {agent:?} is waiting for approval"
                )));
            }
            [one] => one.source.clone(),
            several => {
                let sources: Vec<&str> = several.iter().map(|r| r.source.as_str()).collect();
                return Err(DeployError::Conflict(format!(
                    "{} refused deployments of {agent:?} are waiting ({}): deploy the one you mean with `agenthost deploy FILE --approve`",
                    sources.len(),
                    sources.join(", ")
                )));
            }
        };
        let path = Path::new(&source);
        if !path.is_file() {
            return Err(DeployError::Conflict(format!(
                "{source} is not a file this host can read: deploy it again with `agenthost deploy FILE --approve`"
            )));
        }
        tracing::info!(agent, manifest = source, "approving the refused deployment");
        self.deploy_path(path, Approval::Given, Origin::Api).await
    }

    /// Ends `agent`'s canary trial by making the canary the live version.
    pub async fn promote(&self, agent: &str) -> Result<DeployReport, DeployError> {
        let _guard = self.deploy_lock.lock().await;
        let cell = self
            .registry
            .get(agent)
            .ok_or_else(|| DeployError::UnknownAgent(agent.to_owned()))?;
        let (canary, old) = cell.promote().ok_or_else(|| {
            DeployError::Conflict(format!("{agent} has no canary on trial to promote"))
        })?;
        if let Some(r) = self.registry.write().get_mut(agent) {
            r.source = canary.source.clone();
        }
        self.claim_skills(agent);
        let version = &canary.version;
        self.announce(DeployEvent::Promoted {
            agent,
            version: &version.version,
            replaced: &old.version,
            source: &canary.source,
        });
        let counts = canary.counts();
        let deployment = canary.deployment(
            Origin::Promote,
            deployments::DeployOutcome::Deployed,
            format!(
                "promoted from canary, replaced {} ({} canary invocations, {} failed, in the last window)",
                old.version, counts.canary_invocations, counts.canary_failures
            ),
        );
        self.record_deployment(deployment, None).await;
        Ok(DeployReport {
            agent: agent.to_owned(),
            version: version.version.to_string(),
            digest: version.digest.clone(),
            replaced: Some(old.version.to_string()),
            diff: Vec::new(),
            canary: 0,
        })
    }

    pub(super) async fn record_canary_end(
        &self,
        canary: &crate::canary::Canary,
        origin: Origin,
        reason: String,
    ) {
        super::record_canary_end(&self.deployments, &self.audit, canary, origin, reason).await;
    }

    /// Checks, compiles and plans the deployment, then applies the plan.
    async fn deploy_inner(
        &self,
        manifest: Manifest,
        bytes: &[u8],
        digest: &str,
        source: &str,
        approval: Approval,
        held: Option<tokio::sync::MutexGuard<'_, ()>>,
    ) -> Result<DeployReport, DeployError> {
        let load_err = |error| DeployError::Load {
            source_name: source.to_owned(),
            error,
        };
        self.runtime
            .check_before_compile(bytes, digest, &manifest)
            .map_err(load_err)?;
        self.host_paths
            .check(&manifest.capabilities.files)
            .and_then(|()| self.host_secrets.check(&manifest.capabilities.env))
            .and_then(|()| self.a2a.check_served_under("a2a", manifest.a2a.schemes()))
            .and_then(|()| self.a2a.check_served_under("mcp", manifest.mcp.schemes()))
            .map_err(|message| ConfigError::invalid(Path::new(source), message))?;
        // Compile and validate off the hot path, before touching the running version (and,
        // unless the caller holds it, before taking the deploy lock).
        let compiled = self
            .runtime
            .compile_blocking(bytes.to_vec())
            .await
            .map_err(load_err)?;
        let _guard = match held {
            Some(guard) => guard,
            None => self.deploy_lock.lock().await,
        };
        let name = manifest.name.to_string();
        let existing = self.registry.get(&name);
        let diff_lines = existing
            .as_ref()
            .map(|cell| diff(&cell.current().manifest, &manifest))
            .unwrap_or_default();
        if let Some(cell) = &existing
            && let Some(Refusal::NeedsApproval { lines }) =
                plan::unapproved_widening(approval == Approval::Given, &diff_lines)
        {
            // Refused before the component is instantiated: nothing of it runs unapproved.
            return Err(DeployError::NeedsApproval {
                agent: name,
                old_version: cell.current().version.to_string(),
                new_version: manifest.version.to_string(),
                lines,
            });
        }
        let version = AgentVersion::deploy(&self.runtime, &self.services, manifest, &compiled)
            .await
            .map_err(load_err)?;
        self.check_fits(&version, source).await?;
        let subscriptions = subscriptions_of(&version.manifest);
        let current = existing.as_ref().map(|cell| cell.current());
        let running_subscriptions = self
            .registry
            .read()
            .get(&name)
            .map(|r| r.subscriptions.clone())
            .unwrap_or_default();
        let canary_version = existing
            .as_ref()
            .and_then(|cell| cell.canary())
            .map(|c| c.version.version.to_string());
        let live = current.as_ref().map(|current| Live {
            manifest: &current.manifest,
            subscriptions: &running_subscriptions,
            canary: canary_version.as_deref(),
        });
        let requested = Requested {
            manifest: &version.manifest,
            subscriptions: &subscriptions,
            approved: approval == Approval::Given,
            source,
        };
        let plan = plan::plan(live.as_ref(), &requested, &diff_lines);
        let report = DeployReport {
            agent: name.clone(),
            version: version.version.to_string(),
            digest: version.digest.clone(),
            replaced: current.as_ref().map(|c| c.version.to_string()),
            diff: diff_lines.iter().map(ToString::to_string).collect(),
            canary: 0,
        };
        match (plan, existing) {
            (Plan::Refuse(Refusal::NeedsApproval { lines }), _) => {
                Err(DeployError::NeedsApproval {
                    agent: name,
                    old_version: report.replaced.unwrap_or_default(),
                    new_version: report.version,
                    lines,
                })
            }
            (Plan::Refuse(Refusal::Conflict(reason)), _) => Err(DeployError::Conflict(reason)),
            (Plan::Start, _) | (_, None) => {
                let cell = Arc::new(AgentCell::new(version, Some(self.canary_failed.clone())));
                let running = self.start_subscriptions(cell, subscriptions, source);
                self.registry.write().insert(name, running);
                Ok(DeployReport {
                    replaced: None,
                    ..report
                })
            }
            (Plan::Canary { percent }, Some(cell)) => {
                let rollout = version.manifest.rollout.clone();
                cell.start_canary(crate::canary::Canary::new(
                    Arc::new(version),
                    rollout,
                    source.to_owned(),
                ));
                Ok(DeployReport {
                    canary: percent,
                    ..report
                })
            }
            (Plan::Swap, Some(cell)) => {
                cell.swap(version);
                if let Some(r) = self.registry.write().get_mut(&name) {
                    r.source = source.to_owned();
                }
                Ok(report)
            }
            (Plan::SwapAndResubscribe, Some(cell)) => {
                cell.swap(version);
                // Commits and leaves the groups before the new memberships join.
                let previous = self.registry.write().remove(&name);
                if let Some(previous) = previous {
                    previous.stop.cancel();
                    for task in previous.tasks {
                        let _ = task.await;
                    }
                }
                let running = self.start_subscriptions(cell, subscriptions, source);
                self.registry.write().insert(name, running);
                Ok(report)
            }
        }
    }

    /// Whether the new version fits beside the other agents: its consumer groups, its skills,
    /// the instance pool, and a broker with transactions when it asks for exactly-once.
    async fn check_fits(&self, version: &AgentVersion, source: &str) -> Result<(), DeployError> {
        let name = version.name.as_ref();
        if let Some(conflict) = self.registry.group_conflict(&version.manifest) {
            return Err(DeployError::Conflict(format!("{source}: {conflict}")));
        }
        // Every agent with a deployment history keeps its name as its group, running or not
        // (a restart deploys in name order).
        for entry in &version.manifest.subscribe {
            let group = version.manifest.group_of(entry);
            if group != name
                && self
                    .deployments
                    .history(group)
                    .is_ok_and(|history| !history.is_empty())
            {
                return Err(DeployError::Conflict(format!(
                    "{source}: subscribe group {group:?} is agent {group:?}'s own group; an agent may not join another agent's group"
                )));
            }
        }
        if let Some(conflict) = self.pool_conflict(&version.manifest) {
            return Err(DeployError::Conflict(format!("{source}: {conflict}")));
        }
        let live: Vec<Arc<AgentVersion>> = self
            .registry
            .read()
            .values()
            .map(|r| r.cell.current())
            .collect();
        crate::agent::tools::check(version, live.iter().map(|v| &**v))
            .map_err(|conflict| DeployError::Conflict(format!("{source}: {conflict}")))?;
        for skill in &version.manifest.a2a.bus_skills {
            if let Some(owner) = self.a2a.service.skill_owner(skill)
                && owner != name
            {
                return Err(DeployError::Conflict(format!(
                    "{source}: a2a.bus_skills names {skill:?}, which agent {owner:?} owns: an agent serves only skills it owns"
                )));
            }
            if !version.card.skills.iter().any(|s| &s.id == skill) {
                let advertised: Vec<&str> =
                    version.card.skills.iter().map(|s| s.id.as_str()).collect();
                return Err(DeployError::Conflict(format!(
                    "{source}: a2a.bus_skills names {skill:?}, which the agent's card does not advertise (its skills: {advertised:?})"
                )));
            }
        }
        if version.manifest.delivery.mode == crate::manifest::DeliveryMode::ExactlyOnce
            && let Some(first) = version.manifest.subscribe.first()
        {
            // Refused rather than silently downgraded: the manifest promises exactly-once.
            self.bus
                .check_transactions(&first.topic)
                .await
                .map_err(|e| DeployError::Conflict(format!("{source}: {e}")))?;
        }
        Ok(())
    }
}
