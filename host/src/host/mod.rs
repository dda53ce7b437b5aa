//! The host: opens storage and the bus, builds the runtime, deploys agents and runs their
//! subscriptions. The HTTP server and CLI are thin layers over this. Deploying is in
//! [`deploy`] (decided by [`plan`]), starting from the history and the files in [`restart`].

mod deploy;
mod events;

use events::DeployEvent;
mod plan;
mod restart;

pub use deploy::{Approval, DeployRequest};

use crate::audit::AuditLog;
use crate::bus::Bus;
use crate::bus::local::{LocalBus, LocalBusOptions};
use crate::capabilities::HostServices;
use crate::config::{BusKind, ConfigError, HostConfig};
use crate::delivery;
use crate::deployments::{self, Deployments, Origin};
use crate::manifest::Manifest;
use crate::manifest::diff::DiffLine;
use crate::mcp::McpServers;
use crate::metrics::Metrics;
use crate::registry::{AgentCell, Refusal, Registry, Running};
use crate::runtime::{LoadError, Runtime};
use anyhow::Context as _;
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
        let mcp = Arc::new(
            McpServers::start(&config.mcp.servers, &db, metrics.clone(), stop.clone())
                .context("cannot open the MCP token store")?,
        );
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

    /// Why `manifest` does not fit the instance pool, if it does not. Every live instance takes
    /// a slot (an agent finding none waits); warm instances keep theirs while idle, so agents
    /// with `reuse_instances` may together keep at most three quarters of the pool, and a
    /// quarter always turns over for the agents on fresh instances.
    pub(super) fn pool_conflict(&self, manifest: &Manifest) -> Option<String> {
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
    pub(super) fn claim_skills(&self, agent: &str) {
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

    /// Says what happened to a deployment (see [`events`]) and keeps the list of refused
    /// deployments current: a refusal stays listed until its file deploys.
    fn announce(&self, event: DeployEvent<'_>) {
        match event {
            DeployEvent::Deployed { source, .. } => self.registry.clear_refusal(source),
            DeployEvent::Refused {
                agent,
                source,
                error,
                ..
            } => self.registry.refuse(Refusal {
                source: source.to_owned(),
                agent: (!agent.is_empty()).then(|| agent.to_owned()),
                error: error.to_owned(),
                at: SystemTime::now(),
            }),
            DeployEvent::Promoted { .. } | DeployEvent::CanaryEnded { .. } => {}
        }
        event.record(&self.audit);
    }

    pub(super) fn start_subscriptions(
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
                let handler: Arc<dyn delivery::Handler> = match bus_skills
                    .iter()
                    .find(|skill| crate::a2a::bus::worker_group(skill) == group)
                {
                    Some(skill) => Arc::new(crate::a2a::bus::SkillRequests {
                        skill: skill.clone(),
                        a2a: self.a2a.clone(),
                        bus: self.bus.clone(),
                    }),
                    None => Arc::new(delivery::AgentEvents),
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
    DeployEvent::CanaryEnded {
        agent: &version.name,
        version: &version.version,
        source: &canary.source,
        reason: &reason,
    }
    .record(audit);
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
