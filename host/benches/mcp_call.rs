//! MCP: the cost of a tool call through the host, against the same call made directly with
//! rmcp in the same run. The server is `@modelcontextprotocol/server-everything` over stdio
//! (tests/peers, installed by `cargo xtask bench`), the tool its `echo`.
//!
//! - `rmcp direct`: a Rust program holding its own rmcp session calls `tools/call` — the
//!   floor: JSON-RPC over a pipe to Node and back.
//! - `agent (fresh)`: one event through the `tool-call` agent — a fresh instance, the grant
//!   check, the call on the host's shared session, the audit entry, the result published to an
//!   in-memory bus.
//! - `agent (reuse)`: the same with `limits.reuse_instances`.
//!
//! Each figure is the median (p50) and p99 of sequential calls. Run with `cargo xtask bench`.

mod common;

use agenthost::agent::AgentVersion;
use agenthost::agent::to_event;
use agenthost::audit::AuditLog;
use agenthost::bus::{Bus, BusError, Outgoing, Receipt, StartAt, Subscription, TopicReader};
use agenthost::capabilities::HostServices;
use agenthost::config::{HostConfig, RuntimeConfig};
use agenthost::manifest::Manifest;
use agenthost::mcp::McpServers;
use agenthost::metrics::Metrics;
use agenthost::runtime::Runtime;
use common::p50_p99;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const CALLS: usize = 3000;
const ROUNDS: usize = 6;
const WARMUP: usize = 1500;

/// Accepts every publish in memory.
struct SinkBus;

#[async_trait::async_trait]
impl Bus for SinkBus {
    fn kind(&self) -> &'static str {
        "sink"
    }
    async fn publish(&self, record: Outgoing) -> Result<Receipt, BusError> {
        black_box(&record);
        Ok(Receipt {
            topic: record.topic,
            partition: 0,
            offset: 0,
        })
    }
    async fn subscribe(&self, _: &str, _: &[String]) -> Result<Box<dyn Subscription>, BusError> {
        Err(BusError::Unavailable("publish-only benchmark bus".into()))
    }
    async fn read(&self, _: &str, _: StartAt) -> Result<Box<dyn TopicReader>, BusError> {
        Err(BusError::Unavailable("publish-only benchmark bus".into()))
    }
}

/// Appends the latency of `calls` sequential runs of `f` to `samples`, in microseconds.
async fn sample<F, Fut>(samples: &mut Vec<f64>, calls: usize, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..calls {
        let start = Instant::now();
        f().await;
        samples.push(start.elapsed().as_secs_f64() * 1e6);
    }
}

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned();
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), Into::into);
    let plugin = target.join("plugins/tool-call.wasm");
    let bytes = std::fs::read(&plugin)
        .map_err(|e| anyhow::anyhow!("{}: {e} (run `cargo xtask plugins`)", plugin.display()))?;
    let everything =
        root.join("tests/peers/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    anyhow::ensure!(
        everything.exists(),
        "{} is missing: run `cargo xtask bench` (it installs tests/peers)",
        everything.display()
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        // The floor: our own rmcp session with the same server.
        let mut command = tokio::process::Command::new("node");
        command.arg(&everything).arg("stdio");
        let direct = ()
            .serve(rmcp::transport::TokioChildProcess::new(command)?)
            .await?;
        let arguments = serde_json::json!({"message": "hello"});
        let arguments = arguments.as_object().cloned().unwrap_or_default();
        let direct_call = || {
            let params = CallToolRequestParams::new("echo").with_arguments(arguments.clone());
            let peer = direct.peer().clone();
            async move {
                black_box(peer.call_tool_once(params).await.expect("direct call"));
            }
        };

        // Through the host: the tool-call agent on the host's shared session (the direct one
        // stays open: it is measured in turns with the host below).
        let scratch = std::env::temp_dir().join(format!("agenthost-mcp-bench-{}", std::process::id()));
        let runtime = Runtime::new(&RuntimeConfig { cache: false, ..RuntimeConfig::default() }, &scratch)?;
        let db = sled::Config::new().temporary(true).path(scratch.join("db")).open()?;
        let metrics = Arc::new(Metrics::new());
        let audit = Arc::new(AuditLog::open(&db, &scratch.join("audit"), Duration::from_secs(3600), 10_000_000, metrics.clone())?);
        let config = HostConfig::parse(
            &root.join("bench.toml"),
            &format!(
                "[mcp.servers.everything]\ncommand = [\"node\", {:?}, \"stdio\"]\n",
                everything.display().to_string()
            ),
        )?;
        let stop = CancellationToken::new();
        let mcp = Arc::new(McpServers::start(&config.mcp.servers, &db, metrics.clone(), stop.clone())?);
        let bus: Arc<dyn Bus> = Arc::new(SinkBus);
        let services = HostServices {
            bus: bus.clone(),
            a2a: agenthost::a2a::A2a::detached(&db, metrics.clone(), bus.clone())?,
            db,
            metrics,
            audit,
            mcp,
            listen: None,
            states: Default::default(),
        };
        let manifest = |reuse: bool| {
            Manifest::parse(
                &root.join("bench.toml"),
                &format!(
                    "name = \"tool-call\"\nversion = \"1.0.0\"\ncomponent = \"{}\"\n[limits]\ntimeout = \"5s\"\nreuse_instances = {reuse}\n[capabilities]\npublish = [\"bench.out.v1\"]\nconfig = {{ out = \"bench.out.v1\" }}\nmcp = [{{ server = \"everything\", tools = [\"echo\"] }}]\n",
                    plugin.display()
                ),
            )
        };
        let compiled = runtime.compile(&bytes)?;
        let fresh = AgentVersion::deploy(&runtime, &services, manifest(false)?, &compiled).await?;
        let reusing = AgentVersion::deploy(&runtime, &services, manifest(true)?, &compiled).await?;
        let record = agenthost::bus::Record {
            topic: "bench.in.v1".into(),
            partition: 0,
            offset: 0,
            key: None,
            payload: br#"{"server": "everything", "tool": "echo", "arguments": {"message": "hello"}}"#.to_vec(),
            headers: vec![agenthost::bus::Header::new("correlation-id", "bench")],
            timestamp_ms: 0,
        };
        let fresh_call = || async {
            fresh.on_event(to_event(&record, "bench", 1)).await.expect("on_event").wait().await.expect("acknowledged");
        };
        let reuse_call = || async {
            reusing.on_event(to_event(&record, "bench", 1)).await.expect("on_event").wait().await.expect("acknowledged");
        };
        // Both Node processes get the same warm-up (its JIT matters), then the three paths take
        // turns so drift in the machine or the servers affects them alike.
        let (mut direct_samples, mut fresh_samples, mut reuse_samples) = (Vec::new(), Vec::new(), Vec::new());
        let mut warmup = Vec::new();
        sample(&mut warmup, WARMUP, direct_call).await;
        sample(&mut warmup, WARMUP, reuse_call).await;
        for _ in 0..ROUNDS {
            sample(&mut direct_samples, CALLS / ROUNDS, direct_call).await;
            sample(&mut fresh_samples, CALLS / ROUNDS, fresh_call).await;
            sample(&mut reuse_samples, CALLS / ROUNDS, reuse_call).await;
        }
        let (direct_p50, direct_p99) = p50_p99(direct_samples);
        let (fresh_p50, fresh_p99) = p50_p99(fresh_samples);
        let (reuse_p50, reuse_p99) = p50_p99(reuse_samples);
        stop.cancel();
        direct.cancel().await?;

        println!("MCP: one `echo` tool call on server-everything (stdio), {CALLS} sequential calls each, in {ROUNDS} alternating rounds");
        println!("{:>16}  {:>10}  {:>10}  {:>8}  {:>8}", "", "p50", "p99", "p50 vs", "p99 vs");
        let row = |name: &str, p50: f64, p99: f64| {
            println!(
                "{name:>16}  {:>8.1}µs  {:>8.1}µs  {:>7.2}x  {:>7.2}x",
                p50,
                p99,
                p50 / direct_p50,
                p99 / direct_p99
            );
        };
        row("rmcp direct", direct_p50, direct_p99);
        row("agent (fresh)", fresh_p50, fresh_p99);
        row("agent (reuse)", reuse_p50, reuse_p99);
        let _ = std::fs::remove_dir_all(&scratch);
        anyhow::Ok(())
    })
}
