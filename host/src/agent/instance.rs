//! Instances of an agent version: a store with the version's grants and limits, a fresh
//! instance per invocation or a warm one kept for reuse (`limits.reuse_instances`), a slot of
//! the host's instance pool while it lives, and what ended a call that failed.

use super::AgentVersion;
use crate::capabilities::Sent;
use crate::capabilities::{self, Caller, InstanceCaps};
use crate::invocation::InvocationError;
use crate::metrics::VersionMetrics;
use crate::runtime::{Limiter, StoreData};
use crate::wit::{AgentPlugin, AgentPluginPre, events};
use std::sync::Arc;
use wasmtime::Store;

/// An instance kept between invocations (`limits.reuse_instances`), with its store.
pub(super) struct WarmInstance {
    store: Store<StoreData>,
    exports: Exports,
    /// The pool slot it occupies while it is kept.
    slot: tokio::sync::OwnedSemaphorePermit,
}

/// The exports of one instance: `agent`, and `events` where the component has it.
pub(super) struct Exports {
    pub plugin: AgentPlugin,
    pub events: Option<events::Guest>,
}

/// Who an invocation is on behalf of (see [`Caller`]).
pub(super) enum Begin<'a> {
    /// One event or message, and the transaction its publishes join (exactly-once).
    One {
        correlation_id: &'a str,
        txn: Option<Arc<dyn crate::bus::TxnPublisher>>,
        /// The card skill the caller addressed, if it named one.
        skill: Option<&'a str>,
    },
    /// An `on-events` batch, by the events' correlation ids.
    Batch(&'a [String]),
}

impl AgentVersion {
    /// Runs `call` on an instance under this agent's limits, bounded by `limits.timeout` (host
    /// calls included), and names the limit or trap that ended it, if any.
    ///
    /// The instance is fresh unless `limits.reuse_instances` is set; then a warm instance from
    /// an earlier invocation is used when one is idle, and returned afterwards — but only if
    /// the call ended normally: one that trapped, timed out or hit a limit is discarded.
    /// Returns, with the value, the acknowledgements of the records the guest sent.
    pub(super) async fn run<R>(
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
                skill,
            } => caller.begin_request(correlation_id, txn, skill),
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
        let sent = caller.take_sent();
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
        let caps = InstanceCaps::new(grants, &caller);
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
