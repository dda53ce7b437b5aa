//! S6 (docs/benchmarks.md): A2A `SendMessage` requests per second and latency, through the host serving
//! the `echo` agent, against the Python `a2a-sdk` server running an echo agent
//! (tests/peers/a2a_echo_server.py), measured in the same run with the same client: blocking
//! v1.0 `SendMessage` calls over keep-alive HTTP from `CONCURRENCY` tasks for `DURATION`.
//!
//! The host runs in-process (its HTTP router on a loopback port), so the figures are the A2A
//! path — JSON-RPC parsing, the task persisted in sled at each state change, a fresh echo
//! instance per message — not process start-up. Run with `cargo xtask bench a2a_send`.

mod common;

use common::{ChildProcess, InProcessHost, free_port, p50_p99, plugin};
use serde_json::json;
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 8;
const WARMUP: Duration = Duration::from_secs(2);
const DURATION: Duration = Duration::from_secs(8);

/// Requests/s, p50 and p99 (µs) of blocking SendMessage calls to `endpoint`.
async fn load(endpoint: &str) -> anyhow::Result<(f64, f64, f64)> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()?;
    let run = |until: Instant| {
        let http = http.clone();
        let endpoint = endpoint.to_owned();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut n = 0u64;
            while Instant::now() < until {
                n += 1;
                let body = json!({
                    "jsonrpc": "2.0", "id": n, "method": "SendMessage",
                    "params": {"message": {"messageId": format!("m-{n}"), "role": "ROLE_USER", "parts": [{"text": "hello"}]}},
                });
                let started = Instant::now();
                let response = http
                    .post(&endpoint)
                    .header("A2A-Version", "1.0")
                    .json(&body)
                    .send()
                    .await?;
                let value: serde_json::Value = response.json().await?;
                anyhow::ensure!(value.get("result").is_some(), "no result: {value}");
                samples.push(started.elapsed().as_secs_f64() * 1e6);
            }
            anyhow::Ok(samples)
        })
    };
    // Warm-up (connections, JIT, caches), then the measured window.
    for task in (0..CONCURRENCY)
        .map(|_| run(Instant::now() + WARMUP))
        .collect::<Vec<_>>()
    {
        task.await??;
    }
    let started = Instant::now();
    let until = started + DURATION;
    let mut samples = Vec::new();
    for task in (0..CONCURRENCY).map(|_| run(until)).collect::<Vec<_>>() {
        samples.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = samples.len() as f64 / elapsed;
    let (p50, p99) = p50_p99(samples);
    Ok((rate, p50, p99))
}

fn main() -> anyhow::Result<()> {
    let echo = plugin("echo")?;
    // The Python a2a-sdk server with its echo agent.
    let python_port = free_port()?;
    let _python = ChildProcess::python_peer("a2a_echo_server.py", python_port)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let served = InProcessHost::start(
            "echo",
            &format!(
                "name = \"echo\"\nversion = \"1.0.0\"\ncomponent = \"{}\"\n[capabilities]\npublish = [\"x.y.v1\"]\nconfig = {{ out = \"x.y.v1\" }}\n[a2a]\nexpose = true\nsecurity = []\n",
                echo.display()
            ),
        )
        .await?;
        let port = served.port;
        let card = format!("http://127.0.0.1:{python_port}/.well-known/agent-card.json");
        let started = Instant::now();
        while reqwest::get(&card)
            .await
            .map(|r| r.status().is_success())
            .ok()
            != Some(true)
        {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(30),
                "the a2a-sdk server did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let (py_rps, py_p50, py_p99) =
            load(&format!("http://127.0.0.1:{python_port}/a2a/jsonrpc")).await?;
        let (rps, p50, p99) = load(&format!("http://127.0.0.1:{port}/agents/echo")).await?;
        println!(
            "S6: blocking SendMessage to an echo agent, {CONCURRENCY} concurrent clients, {}s",
            DURATION.as_secs()
        );
        println!("{:>20}  {:>10}  {:>10}  {:>10}", "", "req/s", "p50", "p99");
        println!(
            "{:>20}  {py_rps:>10.0}  {py_p50:>8.0}µs  {py_p99:>8.0}µs",
            "a2a-sdk (Python)"
        );
        println!(
            "{:>20}  {rps:>10.0}  {p50:>8.0}µs  {p99:>8.0}µs",
            "agenthost"
        );
        println!(
            "{:>20}  {:>9.2}x  {:>9.2}x  {:>9.2}x",
            "ratio",
            rps / py_rps,
            p50 / py_p50,
            p99 / py_p99
        );
        served.stop().await;
        anyhow::Ok(())
    })
}
