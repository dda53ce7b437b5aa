//! The host: opens storage and the bus, builds the runtime, deploys agents and runs their
//! subscriptions. The HTTP server and CLI are thin layers over this.

use crate::agent::AgentVersion;
use crate::audit::{AuditEntry, AuditLog, Outcome};
use crate::bus::Bus;
use crate::bus::local::{LocalBus, LocalBusOptions};
use crate::capabilities::HostServices;
use crate::capabilities::diff::{DiffLine, diff};
use crate::config::{BusKind, ConfigError, HostConfig, Manifest};
use crate::delivery;
use crate::deployments::{self, Deployment, Deployments, Origin};
use crate::mcp::McpServers;
use crate::metrics::Metrics;
use crate::registry::{AgentCell, Refusal, Registry, Running};
use crate::runtime::{LoadError, Runtime, read_component};
use anyhow::Context as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// Why a deployment was refused. The running version, if any, keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{source_name}: {error}")]
    Load {
        source_name: String,
        error: LoadError,
    },
    #[error("{agent} {new_version} asks for more than the running {old_version} is granted; repeat with --approve to accept:\n{}", lines.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n"))]
    NeedsApproval {
        agent: String,
        old_version: String,
        new_version: String,
        lines: Vec<DiffLine>,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Rollback(String),
    #[error("no agent named {0:?} is deployed")]
    UnknownAgent(String),
}

/// What a successful deploy did.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DeployReport {
    pub agent: String,
    pub version: String,
    pub digest: String,
    /// The version it replaced, if any (for a canary: the version it is on trial beside).
    pub replaced: Option<String>,
    pub diff: Vec<String>,
    /// Percent of events it handles as a canary; 0 when it went live outright.
    #[serde(default)]
    pub canary: u8,
}

pub struct Host {
    pub config: HostConfig,
    pub db: sled::Db,
    pub bus: Arc<dyn Bus>,
    pub runtime: Arc<Runtime>,
    pub metrics: Arc<Metrics>,
    pub registry: Arc<Registry>,
    /// A2A serving and routing.
    pub a2a: Arc<crate::a2a::A2a>,
    pub audit: Arc<AuditLog>,
    /// Every deployment of every agent, for `history` and `rollback`.
    pub deployments: Arc<Deployments>,
    services: HostServices,
    /// What an agent's files grant may not reach.
    host_paths: crate::capabilities::files::HostPaths,
    /// What an agent's env grant may not name.
    host_secrets: crate::capabilities::env::HostSecrets,
    /// Connections to the configured MCP servers.
    pub mcp: Arc<McpServers>,
    /// Cancelled at shutdown: every subscription stops taking new records.
    pub stop: CancellationToken,
    ready: AtomicBool,
    /// One deploy at a time: deploys of the same agent must not interleave their swaps.
    deploy_lock: tokio::sync::Mutex<()>,
    /// Where agents report a canary that failed its check (recorded by a task of the host).
    canary_failed: tokio::sync::mpsc::UnboundedSender<crate::registry::CanaryFailed>,
}

impl Host {
    /// Opens storage, the bus and the runtime. Agents are deployed by [`Host::deploy_configured`].
    pub async fn open(config: HostConfig) -> anyhow::Result<Arc<Self>> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
        let db_path = config.data_dir.join("db");
        let db = sled::Config::new().path(&db_path).open().with_context(|| {
            format!(
                "cannot open {} (is another agenthost using this data_dir?)",
                db_path.display()
            )
        })?;
        let metrics = Arc::new(Metrics::new());
        let bus: Arc<dyn Bus> = match config.bus.kind {
            BusKind::Local => {
                let options = LocalBusOptions {
                    partitions: config.bus.local.partitions,
                    retention: config.bus.local.retention,
                };
                let bus =
                    LocalBus::open(db.clone(), options).context("cannot open the local bus")?;
                // Ends by itself when the last handle on the bus is dropped.
                bus.spawn_retention();
                Arc::new(bus)
            }
            BusKind::Kafka => Arc::new(
                crate::bus::kafka::KafkaBus::connect(&config.bus.kafka, metrics.clone())
                    .await
                    .context("cannot set up the Kafka bus")?,
            ),
        };
        let runtime_config = config.runtime.clone();
        let data_dir = config.data_dir.clone();
        let runtime = tokio::task::spawn_blocking(move || Runtime::new(&runtime_config, &data_dir))
            .await?
            .context("cannot start the WebAssembly runtime")?;
        let audit = Arc::new(
            AuditLog::open(
                &db,
                &config.data_dir.join("audit"),
                config.audit.retention,
                config.audit.max_entries,
                metrics.clone(),
            )
            .context("cannot open the audit log")?,
        );
        audit.spawn_pruning();
        let deployments =
            Arc::new(Deployments::open(&db).context("cannot open the deployment history")?);
        let stop = CancellationToken::new();
        let mcp = Arc::new(McpServers::start(
            &config.mcp.servers,
            metrics.clone(),
            stop.clone(),
        ));
        let registry = Arc::new(Registry::default());
        let tasks = Arc::new(
            crate::a2a::service::A2aService::open(&db, registry.clone(), metrics.clone())
                .context("cannot open the A2A task store")?,
        );
        tasks.spawn_pruning(config.a2a.task_retention, config.a2a.max_tasks_per_agent);
        let a2a = Arc::new(crate::a2a::A2a::new(
            &config.a2a,
            config.listen,
            tasks,
            bus.clone(),
            stop.clone(),
        )?);
        let services = HostServices {
            bus: bus.clone(),
            db: db.clone(),
            metrics: metrics.clone(),
            audit: audit.clone(),
            mcp: mcp.clone(),
            a2a: a2a.clone(),
            listen: Some(config.listen),
            states: Default::default(),
        };
        let (canary_failed, failed_canaries) = tokio::sync::mpsc::unbounded_channel();
        spawn_canary_recorder(failed_canaries, deployments.clone(), audit.clone());
        let host_paths = crate::capabilities::files::HostPaths::of(&config);
        let host_secrets = crate::capabilities::env::HostSecrets::of(&config);
        Ok(Arc::new(Self {
            host_paths,
            host_secrets,
            config,
            db,
            bus,
            runtime: Arc::new(runtime),
            metrics,
            registry,
            a2a,
            audit,
            deployments,
            services,
            mcp,
            stop,
            ready: AtomicBool::new(false),
            deploy_lock: tokio::sync::Mutex::new(()),
            canary_failed,
        }))
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

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
        if paths.is_empty() {
            tracing::warn!(globs = ?self.config.agents, "the `agents` globs match no manifest");
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
                Err(_) => self.deploy_logged(&path, true).await,
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
            let approve = self.registry.get(name).is_none();
            self.deploy_logged(path, approve).await;
        }
        self.ready.store(true, Ordering::Release);
    }

    async fn deploy_logged(&self, path: &Path, approve: bool) {
        match self.deploy_path(path, approve, Origin::Config).await {
            Ok(report) => tracing::info!(
                manifest = %path.display(),
                agent = report.agent,
                version = report.version,
                digest = report.digest,
                replaced = report.replaced,
                "agent deployed"
            ),
            Err(err) => tracing::error!(manifest = %path.display(), "agent refused: {err}"),
        }
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
            tracing::error!(manifest = source, "agent refused: {err}");
            self.audit.record(
                AuditEntry::new(name, "", "", "deploy", source.as_str(), Outcome::Denied)
                    .detail(err.to_string()),
            );
            self.refuse(source, Some(name.to_owned()), &err);
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
            match self.restore(approved).await {
                Ok(report) => tracing::info!(
                    agent = report.agent,
                    version = report.version,
                    digest = report.digest,
                    from = approved.source,
                    origin = approved.origin.as_str(),
                    "restored from the deployment history"
                ),
                Err(err) => tracing::error!(
                    agent = name,
                    version = approved.version,
                    "cannot restore from the deployment history: {err}"
                ),
            }
        }
    }

    async fn restore(&self, approved: &Deployment) -> Result<DeployReport, DeployError> {
        let (manifest, bytes) = self.stored(approved)?;
        self.deploy(manifest, bytes, &approved.source, true, Origin::Restore)
            .await
    }

    /// The manifest and component a deployment in the history went live with.
    fn stored(&self, deployment: &Deployment) -> Result<(Manifest, Vec<u8>), DeployError> {
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

    /// Deploys the manifest at `path` and the component it names.
    pub async fn deploy_path(
        &self,
        path: &Path,
        approve: bool,
        origin: Origin,
    ) -> Result<DeployReport, DeployError> {
        let source = path.display().to_string();
        let loaded = Manifest::load(path)
            .map_err(DeployError::from)
            .and_then(|m| {
                let bytes = read_component(&m.component).map_err(|error| DeployError::Load {
                    source_name: source.clone(),
                    error,
                })?;
                Ok((m, bytes))
            });
        match loaded {
            Ok((manifest, bytes)) => self.deploy(manifest, bytes, &source, approve, origin).await,
            Err(err) => {
                self.refuse(&source, None, &err);
                Err(err)
            }
        }
    }

    /// Validates and deploys a new version. The agent's running version, if any, serves until
    /// the new one is ready, and keeps serving if it is refused. Audited and recorded in the
    /// deployment history either way.
    pub async fn deploy(
        &self,
        manifest: Manifest,
        bytes: Vec<u8>,
        source: &str,
        approve: bool,
        origin: Origin,
    ) -> Result<DeployReport, DeployError> {
        self.deploy_holding(manifest, bytes, source, approve, origin, None)
            .await
    }

    /// [`Host::deploy`], under the deploy lock `held` if the caller took it already (a
    /// rollback chooses its target under it, so two rollbacks cannot both pick from the same
    /// live version).
    async fn deploy_holding(
        &self,
        manifest: Manifest,
        bytes: Vec<u8>,
        source: &str,
        approve: bool,
        origin: Origin,
        held: Option<tokio::sync::MutexGuard<'_, ()>>,
    ) -> Result<DeployReport, DeployError> {
        let agent_name = manifest.name.to_string();
        let version = manifest.version.to_string();
        let manifest_text = manifest.text.clone();
        let digest = crate::runtime::digest_of(&bytes);
        let result = self
            .deploy_inner(manifest, &bytes, &digest, source, approve, held)
            .await;
        let (outcome, detail) = match &result {
            Ok(report) => {
                self.registry.clear_refusal(source);
                self.claim_skills(&agent_name);
                (Outcome::Allowed, report.diff.join("; "))
            }
            Err(err) => {
                self.refuse(source, Some(agent_name.clone()), err);
                (Outcome::Denied, err.to_string())
            }
        };
        self.audit.record(
            AuditEntry::new(
                agent_name.as_str(),
                version.as_str(),
                "",
                "deploy",
                source,
                outcome,
            )
            .detail(detail.as_str()),
        );
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
    async fn record_deployment(&self, deployment: Deployment, component: Option<&[u8]>) {
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
        approve: bool,
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
        self.deploy_holding(
            manifest,
            bytes,
            &target.source,
            approve,
            Origin::Rollback,
            Some(guard),
        )
        .await
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
        self.deploy_path(path, true, Origin::Api).await
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
        tracing::info!(agent, version = %version.version, replaced = %old.version, "canary promoted");
        let counts = canary.counts();
        self.audit.record(
            AuditEntry::new(
                agent,
                &*version.version,
                "",
                "deploy",
                canary.source.as_str(),
                Outcome::Allowed,
            )
            .detail(format!("canary promoted, replacing {}", old.version)),
        );
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

    async fn record_canary_end(
        &self,
        canary: &crate::canary::Canary,
        origin: Origin,
        reason: String,
    ) {
        record_canary_end(&self.deployments, &self.audit, canary, origin, reason).await;
    }

    /// Why `manifest` does not fit the instance pool, if it does not. Every live instance takes
    /// a slot (an agent finding none waits); warm instances keep theirs while idle, so agents
    /// with `reuse_instances` may together keep at most three quarters of the pool, and a
    /// quarter always turns over for the agents on fresh instances.
    fn pool_conflict(&self, manifest: &Manifest) -> Option<String> {
        let pool = self.runtime.pool_instances();
        let limits = &manifest.limits;
        if limits.instances > pool {
            return Some(format!(
                "`limits.instances` = {} exceeds the host's instance pool (runtime.pool_instances = {pool}): lower it",
                limits.instances
            ));
        }
        if !limits.reuse_instances {
            return None;
        }
        let for_warm = pool - pool / 4;
        let held = self.registry.warm_instances_except(manifest.name.as_str());
        (held + limits.instances > for_warm).then(|| {
            format!(
                "`limits.instances` = {} with `reuse_instances` keeps up to that many warm instances, but other agents' warm instances may already keep {held} of the {for_warm} slots warm instances may take (three quarters of runtime.pool_instances = {pool}): lower `limits.instances` or raise `runtime.pool_instances`",
                limits.instances
            )
        })
    }

    /// Registers the skills `agent`'s live version advertises; a skill another agent owns is
    /// not its to answer for by the bare id (logged, so the operator sees why).
    fn claim_skills(&self, agent: &str) {
        let Some(cell) = self.registry.get(agent) else {
            return;
        };
        let skills: Vec<String> = cell
            .current()
            .card
            .skills
            .iter()
            .map(|s| s.id.clone())
            .collect();
        match self.a2a.service.claim_skills(agent, &skills) {
            Ok(claims) => {
                for (skill, owner) in claims.taken {
                    tracing::warn!(
                        agent,
                        skill,
                        owner,
                        "the skill belongs to another agent: a bare {skill:?} reaches {owner}; this agent is reached by name or as {agent}/{skill}"
                    );
                }
            }
            Err(err) => tracing::error!(agent, error = %err, "cannot record skill ownership"),
        }
    }

    fn refuse(&self, source: &str, agent: Option<String>, err: &DeployError) {
        self.registry.refuse(Refusal {
            source: source.to_owned(),
            agent,
            error: err.to_string(),
            at: SystemTime::now(),
        });
    }

    async fn deploy_inner(
        &self,
        manifest: Manifest,
        bytes: &[u8],
        digest: &str,
        source: &str,
        approve: bool,
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
            .check(&manifest)
            .and_then(|()| self.host_secrets.check(&manifest))
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
            && !approve
            && diff_lines.iter().any(|l| l.widens)
        {
            let current = cell.current();
            return Err(DeployError::NeedsApproval {
                agent: name,
                old_version: current.version.to_string(),
                new_version: manifest.version.to_string(),
                lines: diff_lines,
            });
        }
        let version = AgentVersion::deploy(&self.runtime, &self.services, manifest, &compiled)
            .await
            .map_err(load_err)?;
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
        if version.manifest.delivery.mode == crate::config::DeliveryMode::ExactlyOnce
            && let Some(first) = version.manifest.subscribe.first()
        {
            // Refused rather than silently downgraded: the manifest promises exactly-once.
            self.bus
                .check_transactions(&first.topic)
                .await
                .map_err(|e| DeployError::Conflict(format!("{source}: {e}")))?;
        }
        let mut subscriptions: Vec<(String, String)> = version
            .manifest
            .subscribe
            .iter()
            .map(|s| (version.manifest.group_of(s).to_owned(), s.topic.clone()))
            .collect();
        // Bus-served skills: one worker group per skill, shared by every host serving it.
        subscriptions.extend(version.manifest.a2a.bus_skills.iter().map(|skill| {
            (
                crate::a2a::bus::worker_group(skill),
                crate::a2a::bus::request_topic(skill),
            )
        }));
        let report = DeployReport {
            agent: name.clone(),
            version: version.version.to_string(),
            digest: version.digest.clone(),
            replaced: None,
            diff: diff_lines.iter().map(ToString::to_string).collect(),
            canary: 0,
        };

        let Some(cell) = existing else {
            let cell = Arc::new(AgentCell::new(version, Some(self.canary_failed.clone())));
            let running = self.start_subscriptions(cell, subscriptions, source);
            self.registry.write().insert(name, running);
            return Ok(report);
        };
        // What a membership reads once, when it starts: a change takes a restart.
        let membership_settings =
            |d: &crate::config::Delivery| (d.mode, d.ordering, d.concurrency, d.batch);
        let settings_changed = membership_settings(&cell.current().manifest.delivery)
            != membership_settings(&version.manifest.delivery);
        let same_subscriptions = self
            .registry
            .read()
            .get(&name)
            .is_some_and(|r| r.subscriptions == subscriptions);
        if let Some(canary) = cell.canary() {
            return Err(DeployError::Conflict(format!(
                "{source}: {name} {} is on trial as a canary: `agenthost promote {name}` or `agenthost rollback {name}` first",
                canary.version.version
            )));
        }
        let percent = version.manifest.rollout.canary;
        if percent > 0 {
            // The canary shares the live version's consumer groups and partition workers.
            if version.manifest.delivery.mode == crate::config::DeliveryMode::ExactlyOnce {
                return Err(DeployError::Conflict(format!(
                    "{source}: a canary needs at-least-once delivery (exactly-once handles a partition in one transaction at a time, on the live version); deploy it with rollout.canary = 0"
                )));
            }
            if settings_changed || !same_subscriptions {
                return Err(DeployError::Conflict(format!(
                    "{source}: a canary must subscribe and be delivered like the running version (same topics, groups, mode, ordering, concurrency and batch); deploy it with rollout.canary = 0 to switch outright"
                )));
            }
            let rollout = version.manifest.rollout.clone();
            let beside = cell.current().version.to_string();
            cell.start_canary(crate::canary::Canary::new(
                Arc::new(version),
                rollout,
                source.to_owned(),
            ));
            tracing::info!(
                agent = name,
                canary = report.version,
                percent,
                live = beside,
                "canary on trial"
            );
            return Ok(DeployReport {
                replaced: Some(beside),
                canary: percent,
                ..report
            });
        }
        let old = cell.swap(version);
        let report = DeployReport {
            replaced: Some(old.version.to_string()),
            ..report
        };
        // Same subscriptions: the running tasks pick up the new version on their next record,
        // with offsets untouched. Different ones, a different delivery mode (offsets stored for
        // auto-commit and offsets committed in transactions must not interleave), ordering,
        // concurrency or batch (they size a partition's read-ahead): restart them, which commits and leaves the groups first.
        let unchanged = !settings_changed && same_subscriptions;
        if unchanged {
            if let Some(r) = self.registry.write().get_mut(&name) {
                r.source = source.to_owned();
            }
            return Ok(report);
        }
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

    fn start_subscriptions(
        &self,
        cell: Arc<AgentCell>,
        subscriptions: Vec<(String, String)>,
        source: &str,
    ) -> Running {
        let stop = self.stop.child_token();
        let deps = delivery::Deps {
            bus: self.bus.clone(),
            metrics: self.metrics.clone(),
        };
        // One consumer-group membership per group, covering all of its topics.
        let mut by_group: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for (group, topic) in &subscriptions {
            by_group.entry(group).or_default().push(topic.clone());
        }
        let bus_skills = cell.current().manifest.a2a.bus_skills.clone();
        let tasks = by_group
            .into_iter()
            .map(|(group, topics)| {
                let handler = match bus_skills
                    .iter()
                    .find(|skill| crate::a2a::bus::worker_group(skill) == group)
                {
                    Some(skill) => delivery::Handler::BusTasks {
                        skill: skill.clone(),
                        a2a: self.a2a.clone(),
                    },
                    None => delivery::Handler::Events,
                };
                delivery::spawn_subscription(
                    deps.clone(),
                    cell.clone(),
                    group.to_owned(),
                    topics,
                    handler,
                    stop.clone(),
                )
            })
            .collect();
        Running {
            cell,
            stop,
            tasks,
            subscriptions,
            source: source.to_owned(),
        }
    }

    /// Stops intake, lets in-flight invocations finish (each bounded by its timeout and the
    /// drain bound), and flushes storage.
    pub async fn shutdown(&self, bound: Duration) {
        self.ready.store(false, Ordering::Release);
        self.stop.cancel();
        let tasks: Vec<_> = self
            .registry
            .write()
            .values_mut()
            .flat_map(|r| std::mem::take(&mut r.tasks))
            .collect();
        if tokio::time::timeout(bound, futures::future::join_all(tasks))
            .await
            .is_err()
        {
            tracing::warn!(
                "shutdown bound reached with work in flight; it will be redelivered on restart"
            );
        }
        // Pending audit entries first, so the final flush makes them durable too.
        let audit = self.audit.clone();
        let _ = tokio::task::spawn_blocking(move || audit.flush()).await;
        if let Err(e) = self.db.flush_async().await {
            tracing::error!(error = %e, "final flush failed");
        }
    }
}

/// Records a canary trial that ended without promotion, in the history and the audit log.
async fn record_canary_end(
    deployments: &Deployments,
    audit: &AuditLog,
    canary: &crate::canary::Canary,
    origin: Origin,
    reason: String,
) {
    let version = &canary.version;
    tracing::warn!(agent = %version.name, version = %version.version, reason, "canary rolled back");
    audit.record(
        AuditEntry::new(
            &*version.name,
            &*version.version,
            "",
            "deploy",
            canary.source.as_str(),
            Outcome::Denied,
        )
        .detail(format!("canary rolled back: {reason}")),
    );
    let deployment = canary.deployment(origin, deployments::DeployOutcome::RolledBack, reason);
    if let Err(err) = deployments.record(deployment, None).await {
        tracing::error!(error = %err, "cannot record the canary's end in the history");
    }
}

/// Records the canaries that failed their check, as agents report them.
fn spawn_canary_recorder(
    mut failed: tokio::sync::mpsc::UnboundedReceiver<crate::registry::CanaryFailed>,
    deployments: Arc<Deployments>,
    audit: Arc<AuditLog>,
) {
    tokio::spawn(async move {
        while let Some(crate::registry::CanaryFailed { canary, reason }) = failed.recv().await {
            record_canary_end(&deployments, &audit, &canary, Origin::Automatic, reason).await;
        }
    });
}
