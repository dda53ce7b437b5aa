//! A deployed agent version: its manifest, its pre-instantiated component, its grants, and how
//! one invocation runs inside its limits.

use crate::capabilities::InstanceCaps;
use crate::capabilities::{self, Caller, Grants, HostServices};
use crate::config::Manifest;
use crate::invocation::InvocationError;
use crate::metrics::{InvocationKind, VersionMetrics};
use crate::runtime::{Compiled, Limiter, LoadError, Runtime, StoreData};
use crate::wit::{AgentPlugin, AgentPluginIndices, AgentPluginPre, agent, events, types};
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::sync::Semaphore;
use wasmtime::Store;

/// What an agent says about itself, taken from its `card()` export at deploy.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CardInfo {
    pub name: String,
    pub description: String,
    pub version: String,
    pub skills: Vec<SkillInfo>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct SkillInfo {
    pub id: String,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub examples: Vec<String>,
}

/// An instance kept between invocations (`limits.reuse_instances`), with its store.
struct WarmInstance {
    store: Store<StoreData>,
    exports: Exports,
    /// The pool slot it occupies while it is kept.
    slot: tokio::sync::OwnedSemaphorePermit,
}

/// The exports of one instance: `agent`, and `events` where the component has it.
struct Exports {
    plugin: AgentPlugin,
    events: Option<events::Guest>,
}

/// Who an invocation is on behalf of (see [`Caller`]).
enum Begin<'a> {
    /// One event or message, and the transaction its publishes join (exactly-once).
    One {
        correlation_id: &'a str,
        txn: Option<Arc<dyn crate::bus::TxnPublisher>>,
    },
    /// An `on-events` batch, by the events' correlation ids.
    Batch(&'a [String]),
}

/// The acknowledgements an invocation left to wait for, as [`Begin`] asked.
enum Sent {
    One(Vec<crate::bus::PendingReceipt>),
    Batch(capabilities::BatchSent),
}

pub struct AgentVersion {
    pub manifest: Arc<Manifest>,
    pub name: Arc<str>,
    pub version: Arc<str>,
    pub digest: String,
    pub card: CardInfo,
    pub deployed_at: SystemTime,
    pre: AgentPluginPre<StoreData>,
    /// Where `agent` is in the component, to load it from an instance.
    indices: AgentPluginIndices,
    /// Where `events` is, if the component exports it.
    events: Option<events::GuestIndices>,
    grants: Grants,
    instances: Semaphore,
    /// The instance pool's slots, shared by every agent (see `Runtime::slots`).
    slots: Arc<Semaphore>,
    /// Idle instances kept for reuse; empty unless `limits.reuse_instances`.
    warm: std::sync::Mutex<Vec<WarmInstance>>,
    /// This version's invocation metrics, looked up once.
    metrics: VersionMetrics,
    /// `runtime.max_wasm_stack`, for naming the limit when recursion exhausts it.
    max_wasm_stack: u64,
    /// The checks the engine performs, so a store is set up for exactly those.
    sandbox: crate::runtime::Sandbox,
}

impl AgentVersion {
    /// Validates a compiled component against its manifest, builds its grants and reads its
    /// card. Nothing here touches the running version of the same agent.
    pub async fn deploy(
        runtime: &Runtime,
        services: &HostServices,
        manifest: Manifest,
        compiled: &Compiled,
    ) -> Result<Self, LoadError> {
        runtime.check_limits(&manifest)?;
        let pre = runtime.prepare(compiled, &manifest)?;
        let indices = AgentPluginIndices::new(pre.instance_pre())
            .map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let events = events::GuestIndices::new(pre.instance_pre()).ok();
        let grants = Grants::from_manifest(&manifest, services)
            .map_err(|e| LoadError::Import(format!("{e:#}")))?;
        let mut agent = Self {
            name: manifest.name.as_str().into(),
            version: manifest.version.to_string().into(),
            digest: compiled.digest.clone(),
            card: CardInfo {
                name: String::new(),
                description: String::new(),
                version: String::new(),
                skills: vec![],
            },
            deployed_at: SystemTime::now(),
            instances: Semaphore::new(manifest.limits.instances as usize),
            slots: runtime.slots(),
            warm: std::sync::Mutex::new(Vec::new()),
            metrics: services
                .metrics
                .version(manifest.name.as_str(), &manifest.version.to_string()),
            manifest: Arc::new(manifest),
            pre,
            indices,
            events,
            grants,
            max_wasm_stack: runtime.max_wasm_stack(),
            sandbox: runtime.sandbox(),
        };
        agent.card = agent
            .read_card()
            .await
            .map_err(|e| LoadError::WrongWorld(format!("card() failed: {e}")))?;
        Ok(agent)
    }

    async fn read_card(&self) -> Result<CardInfo, InvocationError> {
        // `card` must not use imports, so there is nothing sent to wait for.
        let (card, _nothing_sent) = self
            .run(
                Begin::One {
                    correlation_id: "deploy",
                    txn: None,
                },
                |exports, store| {
                    Box::pin(async move {
                        exports
                            .plugin
                            .agenthost_agent_agent()
                            .call_card(store)
                            .await
                    })
                },
            )
            .await?;
        Ok(CardInfo {
            name: card.name,
            description: card.description,
            version: card.version,
            skills: card
                .skills
                .into_iter()
                .map(|s| SkillInfo {
                    id: s.id,
                    name: s.name,
                    description: s.description,
                    tags: s.tags,
                    examples: s.examples,
                })
                .collect(),
        })
    }

    /// Delivers one bus event to an instance. The event is finished once the returned
    /// acknowledgements of the records it sent are in.
    pub async fn on_event(&self, event: agent::Event) -> Result<Acks, InvocationError> {
        self.on_event_in(event, None).await
    }

    /// Delivers one bus record as its `on-event` (attempt `attempt`, 1 for the first), its
    /// publishes joining `txn` (exactly-once delivery), if given.
    pub async fn on_record(
        &self,
        record: &crate::bus::Record,
        correlation_id: &str,
        attempt: u32,
        txn: Option<Arc<dyn crate::bus::TxnPublisher>>,
    ) -> Result<Acks, InvocationError> {
        self.on_event_in(to_event(record, correlation_id, attempt), txn)
            .await
    }

    /// Delivers bus records (each with its correlation id and attempt) to one instance through
    /// `on-events`: see [`AgentVersion::on_events`].
    pub async fn on_records(
        &self,
        records: Vec<(&crate::bus::Record, &str, u32)>,
    ) -> Vec<Result<Acks, InvocationError>> {
        let events = records
            .into_iter()
            .map(|(record, correlation_id, attempt)| to_event(record, correlation_id, attempt))
            .collect();
        self.on_events(events).await
    }

    /// Delivers one bus event whose publishes join `txn` (exactly-once delivery), if given.
    pub async fn on_event_in(
        &self,
        event: agent::Event,
        txn: Option<Arc<dyn crate::bus::TxnPublisher>>,
    ) -> Result<Acks, InvocationError> {
        let correlation_id = event.correlation_id.clone();
        let target = event_target(&event.topic, event.partition, event.offset);
        let delivery = Delivery {
            kind: InvocationKind::Event,
            target: &target,
            detail: attempt_detail(event.attempt),
        };
        self.invoke(delivery, &correlation_id, txn, move |exports, store| {
            Box::pin(async move {
                exports
                    .plugin
                    .agenthost_agent_agent()
                    .call_on_event(store, &event)
                    .await
            })
        })
        .await
        .map(|((), acks)| acks)
    }

    /// Delivers one A2A message, part of task `task_id`, to an instance.
    pub async fn on_message(
        &self,
        message: types::Message,
        correlation_id: &str,
        task_id: &str,
    ) -> Result<types::Reply, InvocationError> {
        let target = format!("task {task_id}");
        let delivery = Delivery {
            kind: InvocationKind::Message,
            target: &target,
            detail: String::new(),
        };
        let (reply, acks) = self
            .invoke(delivery, correlation_id, None, move |exports, store| {
                Box::pin(async move {
                    exports
                        .plugin
                        .agenthost_agent_agent()
                        .call_on_message(store, &message)
                        .await
                })
            })
            .await?;
        // The reply says the work is done: what it sent must be stored first.
        acks.wait().await?;
        Ok(reply)
    }

    /// [`AgentVersion::run`] for an export that answers `result<_, failure>`: the agent's own
    /// failure becomes an invocation error, and the outcome is counted in the metrics.
    ///
    /// The delivery is audited (capability `event` or `a2a.message`) before the agent runs, and
    /// again if it fails or a record it sent is not stored (see [`Acks::wait`]): with the
    /// capability uses in between, that is one request's path through the agents
    /// (`agenthost trace`).
    async fn invoke<R: Send>(
        &self,
        delivery: Delivery<'_>,
        correlation_id: &str,
        txn: Option<Arc<dyn crate::bus::TxnPublisher>>,
        call: impl for<'a> FnOnce(
            &'a Exports,
            &'a mut Store<StoreData>,
        ) -> futures::future::BoxFuture<
            'a,
            wasmtime::Result<Result<R, types::Failure>>,
        >,
    ) -> Result<(R, Acks), InvocationError> {
        let started = Instant::now();
        let kind = delivery.kind;
        let capability = delivery.capability();
        self.audit(
            correlation_id,
            capability,
            delivery.target,
            crate::audit::Outcome::Allowed,
            &delivery.detail,
        );
        // Everything the invocation logs (denials, MCP and A2A calls, failures) is inside this
        // span, and it is what OTLP export sends: agent, version, kind, correlation id.
        let span = tracing::info_span!(
            "invocation",
            agent = &*self.name,
            version = &*self.version,
            kind = kind.as_str(),
            correlation_id,
            outcome = tracing::field::Empty,
        );
        let begin = Begin::One {
            correlation_id,
            txn,
        };
        let outcome = tracing::Instrument::instrument(self.run(begin, call), span.clone())
            .await
            .and_then(|(r, sent)| {
                let mut acks = Acks::of(sent);
                if !acks.is_empty() {
                    acks.failure =
                        Some(self.unstored_entry(correlation_id, capability, delivery.target));
                }
                r.map(|value| (value, acks)).map_err(failure)
            });
        span.record(
            "outcome",
            outcome.as_ref().err().map_or("ok", InvocationError::label),
        );
        if let Err(err) = &outcome {
            self.audit(
                correlation_id,
                capability,
                delivery.target,
                crate::audit::Outcome::Failed,
                &err.to_string(),
            );
        }
        self.metrics
            .record_invocation(kind, started.elapsed(), outcome.as_ref().err());
        outcome
    }

    /// Where and what [`Acks::wait`] records when a sent record is not stored: the delivery's
    /// failure, as a failed invocation would be audited.
    fn unstored_entry(
        &self,
        correlation_id: &str,
        capability: &str,
        target: &str,
    ) -> (Arc<crate::audit::AuditLog>, crate::audit::AuditEntry) {
        let entry = crate::audit::AuditEntry::new(
            &*self.name,
            &*self.version,
            correlation_id,
            capability,
            target,
            crate::audit::Outcome::Failed,
        );
        (self.grants.audit.clone(), entry)
    }

    /// Records what the host did for this agent version (a delivery, a dead letter) in the
    /// audit log; capability uses inside the guest are audited by the capabilities themselves.
    pub fn audit(
        &self,
        correlation_id: &str,
        capability: &str,
        target: &str,
        outcome: crate::audit::Outcome,
        detail: &str,
    ) {
        self.grants.audit.record(
            crate::audit::AuditEntry::new(
                &*self.name,
                &*self.version,
                correlation_id,
                capability,
                target,
                outcome,
            )
            .detail(detail),
        );
    }

    /// Runs `call` on an instance under this agent's limits, bounded by `limits.timeout` (host
    /// calls included), and names the limit or trap that ended it, if any.
    ///
    /// The instance is fresh unless `limits.reuse_instances` is set; then a warm instance from
    /// an earlier invocation is used when one is idle, and returned afterwards — but only if
    /// the call ended normally: one that trapped, timed out or hit a limit is discarded.
    /// Returns, with the value, the acknowledgements of the records the guest sent.
    async fn run<R>(
        &self,
        begin: Begin<'_>,
        call: impl for<'a> FnOnce(
            &'a Exports,
            &'a mut Store<StoreData>,
        ) -> futures::future::BoxFuture<'a, wasmtime::Result<R>>,
    ) -> Result<(R, Sent), InvocationError>
    where
        R: Send,
    {
        // The semaphore is never closed, so acquire cannot fail; a closed one would mean the
        // agent is being torn down, and running without a permit is still bounded by the pool.
        let _permit = self.instances.acquire().await.ok();
        let _in_use = InUse::new(&self.metrics);
        let limits = &self.manifest.limits;
        let first_id = match &begin {
            Begin::One { correlation_id, .. } => correlation_id,
            Begin::Batch(ids) => ids.first().map_or("", String::as_str),
        };
        // `slot` is bound first so it is dropped last: the pool slot is free before its permit
        // lets another instance take it.
        let (slot, mut store, warm_exports) = match self.take_warm() {
            Some(mut warm) => {
                self.refresh(&mut warm.store);
                (warm.slot, warm.store, Some(warm.exports))
            }
            None => {
                // A slot of the pool for the new instance: with every slot taken (other agents'
                // warm instances, a burst), the event waits for one rather than failing.
                let slot = self.slots.clone().acquire_owned().await.map_err(|_| {
                    InvocationError::Retry("the instance pool is shutting down".into())
                })?;
                (slot, self.new_store(first_id), None)
            }
        };
        let caller = &store.data().caller;
        match begin {
            Begin::One {
                correlation_id,
                txn,
            } => caller.begin_request(correlation_id, txn),
            Begin::Batch(ids) => caller.begin_batch(ids.iter().map(String::as_str)),
        }
        let result = tokio::time::timeout(limits.timeout, async {
            let exports = match warm_exports {
                Some(exports) => exports,
                None => {
                    self.metrics.record_instantiation();
                    self.instantiate(&mut store).await?
                }
            };
            let value = call(&exports, &mut store).await?;
            wasmtime::Result::Ok((exports, value))
        })
        .await;
        let fuel_used = if self.sandbox.fuel {
            let budget = match limits.fuel {
                0 => u64::MAX,
                fuel => fuel,
            };
            store
                .get_fuel()
                .ok()
                .map(|left| budget.saturating_sub(left))
        } else {
            None
        };
        self.metrics
            .record_resources(store.data().limiter.memory_peak, fuel_used);
        let (exports, value) = match self.classify(result, &store) {
            Ok(done) => done,
            Err(err) => {
                if err.is_sandbox_stop() {
                    store.data().caller.audit(
                        &self.grants.audit,
                        "sandbox",
                        err.label(),
                        crate::audit::Outcome::Denied,
                        &err.to_string(),
                    );
                }
                return Err(err);
            }
        };
        let caller = &store.data().caller;
        // The caller is in a batch exactly when this invocation began one.
        let sent = match caller.take_batch_sent() {
            Some(sent) => Sent::Batch(sent),
            None => Sent::One(caller.take_sent()),
        };
        if limits.reuse_instances {
            self.warm
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(WarmInstance {
                    store,
                    exports,
                    slot,
                });
        }
        Ok((value, sent))
    }

    /// A new instance of the component, with its exports looked up.
    async fn instantiate(&self, store: &mut Store<StoreData>) -> wasmtime::Result<Exports> {
        let instance = self
            .pre
            .instance_pre()
            .instantiate_async(&mut *store)
            .await?;
        let plugin = self.indices.load(&mut *store, &instance)?;
        let events = match &self.events {
            Some(indices) => Some(indices.load(&mut *store, &instance)?),
            None => None,
        };
        Ok(Exports { plugin, events })
    }

    /// Whether the component exports `on-events` and the manifest asks for batches
    /// (`delivery.batch` above 1).
    pub fn takes_batches(&self) -> bool {
        self.events.is_some() && self.manifest.delivery.batch > 1
    }

    /// Delivers several bus events to one instance through `on-events` (see
    /// [`AgentVersion::takes_batches`]). Each event gets its own outcome: its acknowledgements
    /// to wait for, or why it failed. An error of the whole call (a trap, a limit, a timeout, a
    /// wrong number of results) is every event's outcome.
    ///
    /// Audited and counted per event, as if each were delivered alone: one `event` entry each
    /// before the call, and a `failed` one for each that failed.
    pub async fn on_events(&self, events: Vec<agent::Event>) -> Vec<Result<Acks, InvocationError>> {
        let started = Instant::now();
        let count = events.len();
        let ids: Vec<String> = events.iter().map(|e| e.correlation_id.clone()).collect();
        let targets: Vec<String> = events
            .iter()
            .map(|e| event_target(&e.topic, e.partition, e.offset))
            .collect();
        for (event, (id, target)) in events.iter().zip(ids.iter().zip(&targets)) {
            self.audit(
                id,
                "event",
                target,
                crate::audit::Outcome::Allowed,
                &attempt_detail(event.attempt),
            );
        }
        let span = tracing::info_span!(
            "invocation",
            agent = &*self.name,
            version = &*self.version,
            kind = "events",
            // As i64: OpenTelemetry has no unsigned integers, and a u64 is exported as text.
            events = i64::try_from(count).unwrap_or(i64::MAX),
            correlation_id = ids.first().map_or("", String::as_str),
            outcome = tracing::field::Empty,
            failed = tracing::field::Empty,
        );
        let call = tracing::Instrument::instrument(
            self.run(Begin::Batch(&ids), move |exports, store| {
                Box::pin(async move {
                    let Some(guest) = &exports.events else {
                        wasmtime::bail!("the component does not export on-events");
                    };
                    guest.call_on_events(store, &events).await
                })
            }),
            span.clone(),
        )
        .await;
        let outcomes: Vec<Result<Acks, InvocationError>> = match call {
            Ok((results, _)) if results.len() != count => {
                let err = InvocationError::Trap(format!(
                    "on-events returned {} results for {count} events",
                    results.len()
                ));
                (0..count).map(|_| Err(err.clone())).collect()
            }
            Ok((results, sent)) => {
                let BatchSentAcks { shared, per_event } = BatchSentAcks::of(sent, count);
                results
                    .into_iter()
                    .zip(per_event)
                    .zip(ids.iter().zip(&targets))
                    .map(|((result, pending), (id, target))| {
                        result.map_err(failure).map(|()| Acks {
                            pending,
                            shared: shared.clone(),
                            failure: Some(self.unstored_entry(id, "event", target)),
                        })
                    })
                    .collect()
            }
            Err(err) => (0..count).map(|_| Err(err.clone())).collect(),
        };
        // The span's outcome is the first failure's; `failed` says how many of the batch failed.
        span.record(
            "outcome",
            outcomes
                .iter()
                .find_map(|o| o.as_ref().err())
                .map_or("ok", InvocationError::label),
        );
        let failed = outcomes.iter().filter(|o| o.is_err()).count();
        span.record("failed", i64::try_from(failed).unwrap_or(i64::MAX));
        let elapsed = started.elapsed();
        for (outcome, (id, target)) in outcomes.iter().zip(ids.iter().zip(&targets)) {
            if let Err(err) = outcome {
                self.audit(
                    id,
                    "event",
                    target,
                    crate::audit::Outcome::Failed,
                    &err.to_string(),
                );
            }
            self.metrics
                .record_invocation(InvocationKind::Event, elapsed, outcome.as_ref().err());
        }
        outcomes
    }

    fn take_warm(&self) -> Option<WarmInstance> {
        if !self.manifest.limits.reuse_instances {
            return None;
        }
        self.warm.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    /// Resets what one invocation may have used up, for the next one on a reused instance.
    fn refresh(&self, store: &mut Store<StoreData>) {
        let data = store.data_mut();
        data.limiter.memory_hit = false;
        data.limiter.table_hit = false;
        data.stderr_tail.clear();
        self.set_budgets(store);
    }

    /// Fuel and the epoch deadline for one invocation.
    fn set_budgets(&self, store: &mut Store<StoreData>) {
        // Fuel is metered engine-wide when `runtime.fuel` is on; 0 in the manifest means no
        // budget.
        if self.sandbox.fuel {
            let fuel = match self.manifest.limits.fuel {
                0 => u64::MAX,
                fuel => fuel,
            };
            if let Err(err) = store.set_fuel(fuel) {
                tracing::error!(error = %err, "cannot set fuel; the engine was built without fuel metering");
            }
        }
        if self.sandbox.epoch_interruption {
            store.epoch_deadline_async_yield_and_update(1);
        }
    }

    /// The pre-instantiated component (for embedders and benchmarks that manage instances).
    pub fn pre(&self) -> &AgentPluginPre<StoreData> {
        &self.pre
    }

    /// A store carrying this version's grants and limits, as every invocation gets.
    pub fn new_store(&self, correlation_id: &str) -> Store<StoreData> {
        let caller = Caller::new(self.name.clone(), self.version.clone(), correlation_id)
            .with_log_budget(self.grants.log.clone());
        let limits = &self.manifest.limits;
        // A grant whose directories vanished since deploy gives the instance no WASI files
        // rather than failing every event; the deploy check already reported it once.
        let stderr_tail = capabilities::wasi::StderrTail::default();
        let grants = &self.grants;
        let wasi = capabilities::wasi::context(&caller, &stderr_tail, &grants.log, &grants.env, &grants.files).unwrap_or_else(|err| {
            tracing::warn!(agent = &*self.name, error = %err, "capabilities.files unavailable for this invocation");
            wasmtime_wasi::WasiCtxBuilder::new().build()
        });
        let caps = InstanceCaps {
            publish: capabilities::publish::PublishInstance::new(
                self.grants.publish.clone(),
                caller.clone(),
            ),
            state: capabilities::state::StateInstance::new(
                self.grants.state.clone(),
                caller.clone(),
                self.grants.audit.clone(),
            ),
            log: capabilities::log::LogInstance::new(caller.clone(), self.grants.log.clone()),
            config: capabilities::config::ConfigInstance::new(
                self.grants.config.clone(),
                caller.clone(),
                self.grants.audit.clone(),
            ),
            mcp: capabilities::mcp::McpInstance::new(self.grants.mcp.clone(), caller.clone()),
            a2a: capabilities::a2a::A2aInstance::new(self.grants.a2a.clone(), caller.clone()),
            files: capabilities::files::FilesInstance::new(
                caller.clone(),
                self.grants.audit.clone(),
            ),
            http: capabilities::http::HttpInstance::new(self.grants.http.clone(), caller.clone()),
        };
        let memory = usize::try_from(limits.memory.as_u64()).unwrap_or(usize::MAX);
        let data = StoreData {
            wasi,
            http: crate::runtime::http_ctx(),
            table: crate::runtime::resource_table(memory),
            limiter: Limiter::new(memory, limits.table_elements as usize),
            caps,
            stderr_tail,
            caller,
        };
        let mut store = Store::new(self.pre.engine(), data);
        if self.sandbox.limiter {
            store.limiter(|s| &mut s.limiter);
        }
        self.set_budgets(&mut store);
        store
    }

    /// Maps how a call ended to an invocation error naming the limit or trap.
    fn classify<R>(
        &self,
        result: Result<wasmtime::Result<R>, tokio::time::error::Elapsed>,
        store: &Store<StoreData>,
    ) -> Result<R, InvocationError> {
        let limits = &self.manifest.limits;
        let err = match result {
            Err(_) => return Err(InvocationError::Timeout(limits.timeout)),
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) => err,
        };
        if store.data().limiter.memory_hit {
            return Err(InvocationError::MemoryLimit(limits.memory.as_u64()));
        }
        if matches!(
            err.downcast_ref::<wasmtime::component::ResourceTableError>(),
            Some(wasmtime::component::ResourceTableError::Full)
        ) {
            return Err(InvocationError::ResourceLimit(
                store.data().table.max_capacity(),
            ));
        }
        match err.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::OutOfFuel) => Err(InvocationError::FuelExhausted(limits.fuel)),
            Some(wasmtime::Trap::StackOverflow) => {
                Err(InvocationError::StackExhausted(self.max_wasm_stack))
            }
            Some(_) if store.data().limiter.table_hit => {
                Err(InvocationError::TableLimit(limits.table_elements))
            }
            Some(trap) => Err(InvocationError::Trap(
                match store.data().stderr_tail.text() {
                    Some(said) => format!("{trap} (guest stderr: {said})"),
                    None => trap.to_string(),
                },
            )),
            None if store.data().limiter.table_hit => {
                Err(InvocationError::TableLimit(limits.table_elements))
            }
            None => Err(InvocationError::Instantiate(format!("{err:#}"))),
        }
    }
}

/// What a record the bus did not store says, for every event waiting on it.
type SharedAck = futures::future::Shared<futures::future::BoxFuture<'static, Result<(), String>>>;

/// A batch's sent records as each event waits for them.
struct BatchSentAcks {
    /// Sent before the agent named an event: every event waits for them.
    shared: Option<SharedAck>,
    per_event: Vec<Vec<crate::bus::PendingReceipt>>,
}

impl BatchSentAcks {
    fn of(sent: Sent, count: usize) -> Self {
        let (shared, mut per_event) = match sent {
            Sent::Batch(sent) => (sent.shared, sent.per_event),
            Sent::One(pending) => (pending, Vec::new()),
        };
        per_event.resize_with(count, Vec::new);
        let shared = (!shared.is_empty()).then(|| {
            let all: futures::future::BoxFuture<'static, Result<(), String>> =
                Box::pin(async move {
                    for outcome in futures::future::join_all(shared).await {
                        outcome.map_err(|e| e.to_string())?;
                    }
                    Ok(())
                });
            futures::FutureExt::shared(all)
        });
        Self { shared, per_event }
    }
}

/// The acknowledgements still to come for the records an invocation sent (`bus.send`).
#[must_use = "an event is finished only once the records it sent are acknowledged"]
pub struct Acks {
    pending: Vec<crate::bus::PendingReceipt>,
    /// In a batch, records sent before the agent named an event, which every event awaits.
    shared: Option<SharedAck>,
    /// The delivery's failure, recorded in the audit log if a record is not stored (like an
    /// invocation that fails).
    failure: Option<(Arc<crate::audit::AuditLog>, crate::audit::AuditEntry)>,
}

impl Acks {
    /// Nothing to wait for.
    pub fn none() -> Self {
        Self {
            pending: Vec::new(),
            shared: None,
            failure: None,
        }
    }

    /// What a single invocation sent. (A batch's, were it given one, is waited for whole.)
    fn of(sent: Sent) -> Self {
        let pending = match sent {
            Sent::One(pending) => pending,
            Sent::Batch(sent) => sent
                .shared
                .into_iter()
                .chain(sent.per_event.into_iter().flatten())
                .collect(),
        };
        Self {
            pending,
            shared: None,
            failure: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.shared.is_none()
    }

    /// Waits for every acknowledgement; a record the bus did not store makes the invocation a
    /// failed attempt, to be retried.
    pub async fn wait(self) -> Result<(), InvocationError> {
        if self.is_empty() {
            return Ok(());
        }
        let own = async {
            for outcome in futures::future::join_all(self.pending).await {
                outcome.map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        };
        let shared = async {
            match self.shared {
                Some(shared) => shared.await,
                None => Ok(()),
            }
        };
        let (own, shared) = futures::future::join(own, shared).await;
        if let Err(e) = own.and(shared) {
            let err = InvocationError::Retry(format!("a record it sent was not stored: {e}"));
            if let Some((log, entry)) = self.failure {
                log.record(entry.detail(err.to_string()));
            }
            return Err(err);
        }
        Ok(())
    }
}

/// What an invocation delivers, for its span, metrics and audit entries.
struct Delivery<'a> {
    /// The span's and the metrics' `kind`.
    kind: InvocationKind,
    /// `topic[partition]@offset`, or `task <id>`.
    target: &'a str,
    /// For a redelivered event, which attempt this is.
    detail: String,
}

impl Delivery<'_> {
    /// The audit log's name for it.
    fn capability(&self) -> &'static str {
        match self.kind {
            InvocationKind::Event => "event",
            InvocationKind::Message => "a2a.message",
        }
    }
}

/// How an event's position reads in logs and the audit trail: `topic[partition]@offset`.
pub fn event_target(topic: &str, partition: u32, offset: u64) -> String {
    format!("{topic}[{partition}]@{offset}")
}

/// The audit detail of a delivery: which attempt, for a redelivered event.
fn attempt_detail(attempt: u32) -> String {
    match attempt {
        0 | 1 => String::new(),
        n => format!("attempt {n}"),
    }
}

fn failure(f: types::Failure) -> InvocationError {
    match f {
        types::Failure::Retry(reason) => InvocationError::Retry(reason),
        types::Failure::Reject(reason) => InvocationError::Rejected(reason),
    }
}

impl AgentVersion {
    /// Bytes of state this agent holds, when it is granted state.
    pub fn state_used(&self) -> Option<u64> {
        self.grants.state.as_ref().map(|s| s.used())
    }
}

/// Counts an instance as running an invocation for as long as it lives.
struct InUse<'a>(&'a VersionMetrics);

impl<'a> InUse<'a> {
    fn new(metrics: &'a VersionMetrics) -> Self {
        metrics.add_instances_in_use(1);
        Self(metrics)
    }
}

impl Drop for InUse<'_> {
    fn drop(&mut self) {
        self.0.add_instances_in_use(-1);
    }
}

/// The `event` an agent sees for a bus record.
pub fn to_event(record: &crate::bus::Record, correlation_id: &str, attempt: u32) -> agent::Event {
    agent::Event {
        topic: record.topic.clone(),
        partition: record.partition,
        offset: record.offset,
        key: record.key.clone(),
        payload: record.payload.clone(),
        headers: record
            .headers
            .iter()
            .map(|h| types::Header {
                key: h.key.clone(),
                value: h.value.clone(),
            })
            .collect(),
        timestamp_ms: record.timestamp_ms,
        correlation_id: correlation_id.to_owned(),
        attempt,
    }
}
