//! The sandbox: one wasmtime engine for the host, components compiled once and cached, a fresh
//! store with its limits for every invocation.

mod cache;
mod describe;
mod store;

pub use cache::digest_of;
pub use describe::{ComponentInfo, InterfaceInfo, NotAComponent, describe};
pub use store::{Limiter, StoreData, http_ctx, resource_table};

use crate::capabilities;
use crate::config::RuntimeConfig;
use crate::manifest::Manifest;
use cache::ArtifactCache;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Core module instances one component may contain (see the pool in [`Runtime::with_sandbox`]).
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 64;

/// Dirty bytes of a released linear memory that are copied back to their initial contents
/// instead of being returned to the kernel (see the pool in [`Runtime::with_sandbox`]). A slot
/// keeps at most this much resident while unused; a Rust agent dirties a few pages per event.
/// Slots in use over time are the peak of concurrent instances plus wasmtime's 100 warm ones
/// (`max_unused_warm_slots`), so this bounds the extra resident memory to about that many MiB.
const KEEP_RESIDENT_PER_MEMORY: usize = 1 << 20;

/// The same for a released table.
const KEEP_RESIDENT_PER_TABLE: usize = 64 << 10;

/// Why a component could not be loaded or does not fit its manifest.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    // The I/O error is in the message, not a source: shown once, however it is printed.
    #[error("{path}: cannot read component: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("digest mismatch: the manifest pins {expected} but the component is {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    #[error("component does not implement the agent world: {0}")]
    WrongWorld(String),
    #[error("component {0}")]
    Import(String),
    /// The card it returned cannot be served: a skill's declared input schema is broken.
    #[error("card(): {0}")]
    Card(String),
}

/// The run-time checks an engine performs. `serve` always interrupts guests by epoch (the
/// timeout) and enforces memory and table limits; fuel metering follows `runtime.fuel`. The
/// others can be turned off only through [`Runtime::with_sandbox`], which exists to measure what
/// each check costs (`cargo xtask bench dispatch`): without epoch interruption a spinning guest
/// cannot be stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sandbox {
    pub epoch_interruption: bool,
    pub fuel: bool,
    pub limiter: bool,
}

impl Sandbox {
    pub const FULL: Self = Self {
        epoch_interruption: true,
        fuel: true,
        limiter: true,
    };
}

/// A compiled component and what it imports and exports.
#[derive(Clone)]
pub struct Compiled {
    pub component: Component,
    pub digest: String,
}

pub struct Runtime {
    engine: Engine,
    linker: Linker<StoreData>,
    cache: Option<ArtifactCache>,
    max_memory: u64,
    max_wasm_stack: u64,
    sandbox: Sandbox,
    stop_ticker: Arc<AtomicBool>,
    /// One permit per slot of the instance pool: every live instance holds one (a fresh one
    /// for its invocation, a warm one while it is kept). An agent finding every slot taken
    /// waits for one instead of failing its event.
    slots: Arc<tokio::sync::Semaphore>,
    pool_instances: u32,
}

impl Runtime {
    /// Builds the engine (component model, async, epoch interruption, fuel, pooling allocator),
    /// the shared linker, the artifact cache under `data_dir`, and the epoch ticker thread.
    pub fn new(config: &RuntimeConfig, data_dir: &Path) -> anyhow::Result<Self> {
        let sandbox = Sandbox {
            fuel: config.fuel,
            ..Sandbox::FULL
        };
        Self::with_sandbox(config, data_dir, sandbox)
    }

    /// [`Runtime::new`] with chosen run-time checks (see [`Sandbox`]).
    pub fn with_sandbox(
        config: &RuntimeConfig,
        data_dir: &Path,
        sandbox: Sandbox,
    ) -> anyhow::Result<Self> {
        let wasm_stack = usize::try_from(config.max_wasm_stack.as_u64()).unwrap_or(usize::MAX);
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(sandbox.epoch_interruption)
            .consume_fuel(sandbox.fuel)
            .max_wasm_stack(wasm_stack)
            // The fiber a guest runs on holds its wasm stack plus the host calls it makes.
            .async_stack_size((wasm_stack + (1 << 20)).max(2 << 20));
        let n = config.pool_instances;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(n)
            // A Rust wasip2 component is a handful of core instances (the module plus shims); a
            // Python agent (componentize-py --stub-wasi) is 38: CPython, its libc and libpython
            // linked as separate modules, adapters, and one trapping stub per WASI interface.
            // The per-component maximum leaves room above that. Core instances take no slot of
            // their own in the pool (unlike memories and tables): the total is only a counter,
            // and their state is bounded by `max_component_instance_size` per component, so
            // every component slot may hold the largest allowed component at no memory cost.
            .total_core_instances(n.saturating_mul(MAX_CORE_INSTANCES_PER_COMPONENT))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(8))
            .max_memories_per_component(2)
            .max_tables_per_component(8)
            .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(1 << 20)
            .table_elements(crate::manifest::MAX_TABLE_ELEMENTS as usize)
            // Reset a released slot by copying back only the pages the guest dirtied (found with
            // Linux's PAGEMAP_SCAN, 6.7+), up to this many bytes; only a larger working set is
            // returned to the kernel with madvise. madvise drops the slot's page mappings, which
            // costs a TLB shootdown on every core that ran the process and page faults on the
            // next use: with a fresh instance per event that was most of an event's cost (perf,
            // S2). The slot's contents are reset either way; isolation between invocations is
            // the same. Without PAGEMAP_SCAN, wasmtime falls back to madvise.
            .pagemap_scan(Enabled::Auto)
            .linear_memory_keep_resident(KEEP_RESIDENT_PER_MEMORY)
            .table_keep_resident(KEEP_RESIDENT_PER_TABLE)
            // Return the rest to the kernel in batches (one madvise pass per batch of
            // instances). Measured with `cargo xtask bench` (S1).
            .decommit_batch_size(8)
            .max_memory_size(usize::try_from(config.max_memory.as_u64()).unwrap_or(usize::MAX));
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm)?;

        let mut linker = Linker::new(&engine);
        capabilities::add_to_linker(&mut linker)?;

        let cache = if config.cache {
            Some(ArtifactCache::open(&data_dir.join("compiled"), &engine)?)
        } else {
            None
        };

        // Epoch ticks drive both fairness (a running guest yields to the executor every tick)
        // and timeouts (the async deadline fires between ticks).
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let (ticker_engine, stop, tick) = (engine.clone(), stop_ticker.clone(), config.epoch_tick);
        if sandbox.epoch_interruption {
            std::thread::Builder::new()
                .name("epoch-ticker".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        ticker_engine.increment_epoch();
                    }
                })?;
        }

        Ok(Self {
            engine,
            linker,
            cache,
            max_memory: config.max_memory.as_u64(),
            max_wasm_stack: config.max_wasm_stack.as_u64(),
            sandbox,
            stop_ticker,
            slots: Arc::new(tokio::sync::Semaphore::new(config.pool_instances as usize)),
            pool_instances: config.pool_instances,
        })
    }

    /// The instance pool's slots (see [`Runtime::slots`]'s field).
    pub fn slots(&self) -> Arc<tokio::sync::Semaphore> {
        self.slots.clone()
    }

    /// `runtime.pool_instances`.
    pub fn pool_instances(&self) -> u32 {
        self.pool_instances
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn linker(&self) -> &Linker<StoreData> {
        &self.linker
    }

    pub fn max_memory(&self) -> u64 {
        self.max_memory
    }

    pub fn max_wasm_stack(&self) -> u64 {
        self.max_wasm_stack
    }

    pub fn sandbox(&self) -> Sandbox {
        self.sandbox
    }

    /// Compiles component bytes, or loads the cached artifact of the same digest. Compilation is
    /// CPU-heavy: callers on the async runtime should use [`Runtime::compile_blocking`].
    pub fn compile(&self, bytes: &[u8]) -> Result<Compiled, LoadError> {
        let digest = digest_of(bytes);
        if let Some(cache) = &self.cache
            && let Some(component) = cache.get(&self.engine, &digest)
        {
            return Ok(Compiled { component, digest });
        }
        if is_core_module(bytes) {
            return Err(LoadError::Invalid(
                "this is a core WebAssembly module, not a component: build the agent for wasm32-wasip2 (cargo build --target wasm32-wasip2) or wrap it with `wasm-tools component new`".into(),
            ));
        }
        // Said before and after: a large component (an interpreter, as Python agents carry)
        // takes tens of seconds the first time, and a host that says nothing looks hung.
        let size = bytesize::ByteSize::b(bytes.len() as u64);
        tracing::info!(%digest, %size, "compiling a component not compiled before");
        let started = std::time::Instant::now();
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        let cached = match &self.cache {
            Some(cache) => match cache.put(&digest, &component) {
                Ok(()) => true,
                Err(err) => {
                    tracing::warn!(%digest, error = %err, "could not cache compiled component; it will be compiled again next start");
                    false
                }
            },
            None => false,
        };
        tracing::info!(%digest, %size, elapsed = ?started.elapsed(), cached, "component compiled");
        Ok(Compiled { component, digest })
    }

    /// [`Runtime::compile`] on a blocking thread, off the async executor.
    pub async fn compile_blocking(self: &Arc<Self>, bytes: Vec<u8>) -> Result<Compiled, LoadError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.compile(&bytes))
            .await
            .map_err(|e| LoadError::Invalid(format!("compilation aborted: {e}")))?
    }

    /// The manifest's limits this host cannot provide.
    pub fn check_limits(&self, manifest: &Manifest) -> Result<(), LoadError> {
        if manifest.limits.memory.as_u64() > self.max_memory() {
            return Err(LoadError::Import(format!(
                "asks for limits.memory = {} but this host allows at most {} (runtime.max_memory)",
                manifest.limits.memory,
                bytesize::ByteSize::b(self.max_memory())
            )));
        }
        if manifest.limits.fuel > 0 && !self.sandbox.fuel {
            return Err(LoadError::Import(format!(
                "asks for limits.fuel = {} but this host does not meter fuel (runtime.fuel = false)",
                manifest.limits.fuel
            )));
        }
        Ok(())
    }

    /// What a deploy refuses before compiling `bytes` (whose digest is `digest`): a pinned
    /// digest that does not match, limits this host cannot provide, and imports the manifest
    /// does not grant — read from the component's import section, so a component that would be
    /// refused anyway costs no compilation (and leaves no artifact in the cache). Bytes that do
    /// not parse as a component pass here: compiling them says what is wrong.
    pub fn check_before_compile(
        &self,
        bytes: &[u8],
        digest: &str,
        manifest: &Manifest,
    ) -> Result<(), LoadError> {
        check_digest(manifest, digest)?;
        self.check_limits(manifest)?;
        match describe::names(bytes) {
            Ok((imports, _)) => check_imports(imports.iter().map(String::as_str), manifest),
            Err(_) => Ok(()),
        }
    }

    /// What a deploy of the component `info` describes would refuse without compiling it: the
    /// checks of [`Runtime::check_before_compile`] and the agent export. Compiling and linking
    /// it ([`Runtime::prepare`]) can refuse it still, for what only linking reveals (an import
    /// of the right name with the wrong type).
    pub fn check_described(
        &self,
        info: &ComponentInfo,
        manifest: &Manifest,
    ) -> Result<(), LoadError> {
        check_digest(manifest, &info.digest)?;
        self.check_limits(manifest)?;
        check_exports(info.exports.iter().map(|e| e.name.as_str()))?;
        check_imports(info.imports.iter().map(|i| i.name.as_str()), manifest)
    }

    /// Checks a compiled component against a manifest: it must export the agent interface and
    /// import only what the manifest grants. Returns the pre-instantiated component.
    pub fn prepare(
        &self,
        compiled: &Compiled,
        manifest: &Manifest,
    ) -> Result<crate::wit::AgentPluginPre<StoreData>, LoadError> {
        check_digest(manifest, &compiled.digest)?;
        let ty = compiled.component.component_type();
        check_exports(ty.exports(&self.engine).map(|(n, _)| n))?;
        check_imports(ty.imports(&self.engine).map(|(name, _)| name), manifest)?;
        let pre = self
            .linker
            .instantiate_pre(&compiled.component)
            .map_err(|e| LoadError::Import(format!("cannot be linked: {e:#}")))?;
        crate::wit::AgentPluginPre::new(pre).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// A core module and a component share the magic number and differ in the version/layer field.
fn is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}

/// Loads the component a manifest names, with the file path in any error.
pub fn read_component(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|error| LoadError::Read {
        path: path.display().to_string(),
        error,
    })
}

/// A digest the manifest pins must be the component's.
fn check_digest(manifest: &Manifest, digest: &str) -> Result<(), LoadError> {
    match &manifest.digest {
        Some(expected) if expected != digest => Err(LoadError::DigestMismatch {
            expected: expected.clone(),
            actual: digest.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// A component must export the agent interface.
fn check_exports<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), LoadError> {
    let exports: Vec<&str> = names.collect();
    if exports
        .iter()
        .any(|e| e.starts_with("agenthost:agent/agent@0.1."))
    {
        return Ok(());
    }
    Err(LoadError::WrongWorld(format!(
        "it must export `{}`, but it exports {}",
        crate::wit::AGENT_EXPORT,
        if exports.is_empty() {
            "nothing".to_owned()
        } else {
            format!("{exports:?}")
        }
    )))
}

/// Every import must be one the manifest grants; the refusal names each that is not.
fn check_imports<'a>(
    names: impl Iterator<Item = &'a str>,
    manifest: &Manifest,
) -> Result<(), LoadError> {
    let refused: Vec<String> = names
        .filter_map(|name| capabilities::check_import(name, &manifest.capabilities).err())
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(LoadError::Import(refused.join("; ")))
    }
}
