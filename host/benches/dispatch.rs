//! S1 (docs/benchmarks.md): one event through the `echo` agent in-process, at 100 B, 1 KB and 64 KB,
//! against two baselines measured in the same run:
//!
//! - `rust`: a direct Rust function doing echo's work (copy the event into an outgoing record
//!   and hand it to the bus);
//! - `raw`: a raw wasmtime component call: `on-event` on one long-lived echo instance, with the
//!   same imports, no per-invocation instance, limits or bookkeeping;
//! - `agenthost`: `AgentVersion::on_event` — a fresh instance per event in the pooling
//!   allocator, a new store with limits, fuel and epoch deadline, the timeout, the capability
//!   checks and metrics. This is what every event pays by default.
//! - `reuse`: the same with `limits.reuse_instances = true` (a warm instance per event).
//!
//! Then the cost of the sandbox's run-time checks: the same 100 B event through engines with
//! none of them, epoch interruption alone, fuel metering alone, the resource limiter alone, and
//! all three (the default), with a fresh and with a reused instance.
//!
//! The bus is an in-memory sink here, so the figures are the dispatch cost, not bus storage;
//! they include the audit entries every capability use writes (echo reads its config and
//! publishes: two per event).
//! Run with `cargo xtask bench` (it builds target/plugins/echo.wasm first).

mod common;

use agenthost::agent::AgentVersion;
use agenthost::agent::to_event;
use agenthost::audit::AuditLog;
use agenthost::bus::{Bus, BusError, Outgoing, Receipt, StartAt, Subscription, TopicReader};
use agenthost::capabilities::HostServices;
use agenthost::config::RuntimeConfig;
use agenthost::manifest::Manifest;
use agenthost::metrics::Metrics;
use agenthost::runtime::{Runtime, Sandbox};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Accepts every publish in memory.
#[derive(Default)]
struct SinkBus {
    published: AtomicU64,
}

#[async_trait::async_trait]
impl Bus for SinkBus {
    fn kind(&self) -> &'static str {
        "sink"
    }
    async fn publish(&self, record: Outgoing) -> Result<Receipt, BusError> {
        let offset = self.published.fetch_add(1, Ordering::Relaxed);
        black_box(&record);
        Ok(Receipt {
            topic: record.topic,
            partition: 0,
            offset,
        })
    }
    async fn subscribe(&self, _: &str, _: &[String]) -> Result<Box<dyn Subscription>, BusError> {
        Err(BusError::Unavailable(
            "the benchmark bus only accepts publishes".into(),
        ))
    }
    async fn read(&self, _: &str, _: StartAt) -> Result<Box<dyn TopicReader>, BusError> {
        Err(BusError::Unavailable(
            "the benchmark bus only accepts publishes".into(),
        ))
    }
}

/// echo's work, in plain Rust.
async fn rust_echo(bus: &dyn Bus, record: &agenthost::bus::Record) -> Result<(), BusError> {
    let out = Outgoing {
        topic: "bench.out.v1".into(),
        key: record.key.clone(),
        payload: record.payload.clone(),
        headers: record.headers.clone(),
    };
    bus.publish(out).await.map(|_| ())
}

/// Median of `rounds` rounds of `iters` calls, in nanoseconds per call.
async fn measure<F, Fut>(rounds: usize, iters: u32, mut f: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..iters.min(200) {
        f().await;
    }
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..iters {
            f().await;
        }
        samples.push(start.elapsed().as_nanos() as f64 / f64::from(iters));
    }
    samples.sort_by(f64::total_cmp);
    samples[rounds / 2]
}

fn show(ns: f64) -> String {
    if ns >= 1_000_000.0 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1_000.0 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned();
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), Into::into);
    let echo = target.join("plugins/echo.wasm");
    let bytes = std::fs::read(&echo)
        .map_err(|e| anyhow::anyhow!("{}: {e} (run `cargo xtask plugins`)", echo.display()))?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let scratch = std::env::temp_dir().join(format!("agenthost-bench-{}", std::process::id()));
        let runtime = Runtime::new(&RuntimeConfig { cache: false, ..RuntimeConfig::default() }, &scratch)?;
        let db = sled::Config::new().temporary(true).path(scratch.join("db")).open()?;
        let bus: Arc<dyn Bus> = Arc::new(SinkBus::default());
        let metrics = Arc::new(Metrics::new());
        let audit = Arc::new(AuditLog::open(&db, &scratch.join("audit"), Duration::from_secs(3600), 1_000_000, metrics.clone())?);
        let services = HostServices {
            bus: bus.clone(),
            a2a: agenthost::a2a::A2a::detached(&db, metrics.clone(), bus.clone())?,
            db,
            metrics,
            audit,
            mcp: Default::default(),
            listen: None,
            states: Default::default(),
        };
        // `publishes` is raised so the raw column's one long-lived instance (which never starts
        // a new request) is not stopped by limits.publishes.
        let manifest = |reuse: bool| {
            Manifest::parse(
                &root.join("bench.toml"),
                &format!(
                    "name = \"echo\"\nversion = \"1.0.0\"\ncomponent = \"{}\"\n[limits]\ntimeout = \"5s\"\nreuse_instances = {reuse}\npublishes = 4000000000\n[capabilities]\npublish = [\"bench.out.v1\"]\nconfig = {{ out = \"bench.out.v1\" }}\n",
                    echo.display()
                ),
            )
        };

        let compile_start = Instant::now();
        let compiled = runtime.compile(&bytes)?;
        let compile = compile_start.elapsed();
        let agent = AgentVersion::deploy(&runtime, &services, manifest(false)?, &compiled).await?;
        let reusing = AgentVersion::deploy(&runtime, &services, manifest(true)?, &compiled).await?;

        println!("S1: one event through `echo` in-process (median of 7 rounds; in-memory bus)");
        println!("component: {} bytes, compiled in {:.1} ms", bytes.len(), compile.as_secs_f64() * 1e3);

        let inst = measure(7, 2000, || async {
            let mut store = agent.new_store("bench");
            black_box(agent.pre().instantiate_async(&mut store).await.expect("instantiate"));
        })
        .await;
        println!("instantiation (fresh store + instance from the pool): {}", show(inst));
        println!();
        println!(
            "{:>8}  {:>10}  {:>10}  {:>10}  {:>8}  {:>8}  {:>10}  {:>8}",
            "payload", "rust", "raw wasm", "agenthost", "vs rust", "vs raw", "reuse", "vs raw"
        );

        for size in [100usize, 1024, 64 * 1024] {
            let record = agenthost::bus::Record {
                topic: "bench.in.v1".into(),
                partition: 0,
                offset: 0,
                key: Some(b"key".to_vec()),
                payload: vec![b'x'; size],
                headers: vec![agenthost::bus::Header::new("correlation-id", "bench")],
                timestamp_ms: 0,
            };
            let iters = if size > 10_000 { 500 } else { 3000 };

            let rust = measure(7, iters, || async {
                rust_echo(bus.as_ref(), &record).await.expect("publish");
            })
            .await;

            let mut store = agent.new_store("bench");
            let plugin = agent.pre().instantiate_async(&mut store).await?;
            let raw = {
                let store = &mut store;
                let plugin = &plugin;
                let record = &record;
                let mut samples = Vec::new();
                for round in 0..8 {
                    let start = Instant::now();
                    for _ in 0..iters {
                        // Keep the long-lived instance within its fuel budget.
                        store.set_fuel(u64::MAX)?;
                        let event = to_event(record, "bench", 1);
                        plugin.agenthost_agent_agent().call_on_event(&mut *store, &event).await?.map_err(|f| anyhow::anyhow!("{f:?}"))?;
                    }
                    if round > 0 {
                        samples.push(start.elapsed().as_nanos() as f64 / f64::from(iters));
                    }
                }
                samples.sort_by(f64::total_cmp);
                samples[samples.len() / 2]
            };

            let hosted = measure(7, iters, || async {
                agent.on_event(to_event(&record, "bench", 1)).await.expect("on_event").wait().await.expect("acknowledged");
            })
            .await;
            let reused = measure(7, iters, || async {
                reusing.on_event(to_event(&record, "bench", 1)).await.expect("on_event").wait().await.expect("acknowledged");
            })
            .await;
            println!(
                "{:>8}  {:>10}  {:>10}  {:>10}  {:>7.1}x  {:>7.1}x  {:>10}  {:>7.1}x",
                if size >= 1024 { format!("{} KB", size / 1024) } else { format!("{size} B") },
                show(rust),
                show(raw),
                show(hosted),
                hosted / rust,
                hosted / raw,
                show(reused),
                reused / raw
            );
        }

        println!();
        println!("sandbox cost: 100 B through `echo`, by the run-time checks the engine performs");
        println!("{:>22}  {:>10}  {:>8}  {:>10}  {:>8}", "checks", "fresh", "vs none", "reuse", "vs none");
        let record = agenthost::bus::Record {
            topic: "bench.in.v1".into(),
            partition: 0,
            offset: 0,
            key: Some(b"key".to_vec()),
            payload: vec![b'x'; 100],
            headers: vec![agenthost::bus::Header::new("correlation-id", "bench")],
            timestamp_ms: 0,
        };
        let off = Sandbox { epoch_interruption: false, fuel: false, limiter: false };
        let variants = [
            ("none", off),
            ("epoch interruption", Sandbox { epoch_interruption: true, ..off }),
            ("fuel", Sandbox { fuel: true, ..off }),
            ("resource limiter", Sandbox { limiter: true, ..off }),
            ("all (the default)", Sandbox::FULL),
        ];
        let mut baseline = None;
        for (name, sandbox) in variants {
            let runtime = Runtime::with_sandbox(&RuntimeConfig { cache: false, ..RuntimeConfig::default() }, &scratch, sandbox)?;
            let compiled = runtime.compile(&bytes)?;
            let fresh_agent = AgentVersion::deploy(&runtime, &services, manifest(false)?, &compiled).await?;
            let warm_agent = AgentVersion::deploy(&runtime, &services, manifest(true)?, &compiled).await?;
            let fresh = measure(7, 3000, || async {
                fresh_agent.on_event(to_event(&record, "bench", 1)).await.expect("on_event").wait().await.expect("acknowledged");
            })
            .await;
            let warm = measure(7, 3000, || async {
                warm_agent.on_event(to_event(&record, "bench", 1)).await.expect("on_event").wait().await.expect("acknowledged");
            })
            .await;
            let (fresh_none, warm_none) = *baseline.get_or_insert((fresh, warm));
            println!(
                "{name:>22}  {:>10}  {:>7.2}x  {:>10}  {:>7.2}x",
                show(fresh),
                fresh / fresh_none,
                show(warm),
                warm / warm_none
            );
        }
        let _ = std::fs::remove_dir_all(&scratch);
        anyhow::Ok(())
    })
}
