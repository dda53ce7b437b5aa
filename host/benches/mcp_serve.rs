//! The host as an MCP server (docs/benchmarks.md): `tools/call` round trips per second and
//! latency through the host serving the `echo` agent's skill as the tool `echo.echo`, against
//! the official Python SDK's high-level server (`MCPServer`, formerly FastMCP) serving an
//! `echo` tool (tests/peers/mcp_echo_server.py), measured in the same run with the same client:
//! `CONCURRENCY` rmcp sessions (streamable HTTP), each calling in a loop for `DURATION`, once
//! with connections kept alive (as the SDK clients users run do) and once with rmcp's default
//! client, which opens a connection per request.
//!
//! The host runs in-process (its HTTP router on the listener `agenthost serve` runs, on a
//! loopback port), so the figures are the MCP
//! path — rmcp's server, the argument check against the skill's schema, a fresh echo instance
//! per call, the audit entry — not process start-up. Run with `cargo xtask bench mcp_serve`.

mod common;

use common::{ChildProcess, InProcessHost, free_port, p50_p99, plugin, wait_for_port};
use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 8;
const WARMUP: Duration = Duration::from_secs(2);
const DURATION: Duration = Duration::from_secs(8);

/// How the client's HTTP connections are used.
#[derive(Clone, Copy)]
enum Connections {
    /// rmcp's default client: pooling off, a new connection per request.
    PerRequest,
    /// Kept alive and reused, as the SDK clients users run do (Python's httpx, TypeScript's
    /// fetch).
    KeptAlive,
}

/// Calls/s, p50 and p99 (µs) of `tool` at `url`.
async fn load(
    url: &str,
    tool: &'static str,
    connections: Connections,
) -> anyhow::Result<(f64, f64, f64)> {
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let mut sessions = Vec::new();
    for _ in 0..CONCURRENCY {
        let transport = match connections {
            Connections::PerRequest => StreamableHttpClientTransport::from_uri(url.to_owned()),
            Connections::KeptAlive => StreamableHttpClientTransport::with_client(
                reqwest::Client::new(),
                StreamableHttpClientTransportConfig::with_uri(url.to_owned()),
            ),
        };
        sessions.push(Arc::new(().serve(transport).await?));
    }
    let run = |until: Instant| {
        let sessions = sessions.clone();
        async move {
            let tasks: Vec<_> = sessions
                .into_iter()
                .map(|session| {
                    tokio::spawn(async move {
                        let mut samples = Vec::new();
                        let mut arguments = serde_json::Map::new();
                        arguments.insert("text".into(), "hello".into());
                        while Instant::now() < until {
                            let params =
                                CallToolRequestParams::new(tool).with_arguments(arguments.clone());
                            let started = Instant::now();
                            let result = session.peer().call_tool(params).await?;
                            anyhow::ensure!(
                                result.is_error != Some(true),
                                "the call failed: {result:?}"
                            );
                            samples.push(started.elapsed().as_secs_f64() * 1e6);
                        }
                        anyhow::Ok(samples)
                    })
                })
                .collect();
            let mut samples = Vec::new();
            for task in tasks {
                samples.extend(task.await??);
            }
            anyhow::Ok(samples)
        }
    };
    // Warm-up (connections, caches), then the measured window.
    run(Instant::now() + WARMUP).await?;
    let started = Instant::now();
    let samples = run(started + DURATION).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let rate = samples.len() as f64 / elapsed;
    let (p50, p99) = p50_p99(samples);
    for session in sessions {
        if let Ok(session) = Arc::try_unwrap(session) {
            let _ = session.cancel().await;
        }
    }
    Ok((rate, p50, p99))
}

fn main() -> anyhow::Result<()> {
    let echo = plugin("echo")?;
    // The Python SDK's server with its echo tool.
    let python_port = free_port()?;
    let _python = ChildProcess::python_peer("mcp_echo_server.py", python_port)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let served = InProcessHost::start(
            "echo",
            &format!(
                "name = \"echo\"\nversion = \"1.0.0\"\ncomponent = \"{}\"\n[capabilities]\npublish = [\"x.y.v1\"]\nconfig = {{ out = \"x.y.v1\" }}\n[mcp]\nexpose = true\nsecurity = []\n",
                echo.display()
            ),
        )
        .await?;
        wait_for_port(python_port, "the Python SDK server").await?;

        let python = format!("http://127.0.0.1:{python_port}/mcp");
        let host = format!("http://127.0.0.1:{}/mcp", served.port);
        println!(
            "MCP server: tools/call of an echo tool, {CONCURRENCY} concurrent rmcp sessions, {}s",
            DURATION.as_secs()
        );
        for (title, connections) in [
            ("connections kept alive", Connections::KeptAlive),
            ("a connection per request (rmcp's default client)", Connections::PerRequest),
        ] {
            let (py_rps, py_p50, py_p99) = load(&python, "echo", connections).await?;
            let (rps, p50, p99) = load(&host, "echo.echo", connections).await?;
            println!("{title}:");
            println!("{:>24}  {:>10}  {:>10}  {:>10}", "", "calls/s", "p50", "p99");
            println!(
                "{:>24}  {py_rps:>10.0}  {py_p50:>8.0}µs  {py_p99:>8.0}µs",
                "MCPServer (Python SDK)"
            );
            println!(
                "{:>24}  {rps:>10.0}  {p50:>8.0}µs  {p99:>8.0}µs",
                "agenthost"
            );
            println!(
                "{:>24}  {:>9.2}x  {:>9.2}x  {:>9.2}x",
                "ratio",
                rps / py_rps,
                p50 / py_p50,
                p99 / py_p99
            );
        }
        served.stop().await;
        anyhow::Ok(())
    })
}
