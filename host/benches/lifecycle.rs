//! S4 and S5 (docs/benchmarks.md): hot swap under load, and density and restart.
//!
//! S4, in process on the embedded bus: `echo` 1.0.0 handles events published at `RATE`/s
//! (about half the host's S2 rate with the manifest's defaults); 2.0.0 is deployed at
//! `SWAP_AT` and rolled back at `ROLLBACK_AT`. Reported: how long each deploy call took and
//! how long until the first output of the new version, events lost and duplicated (must be 0),
//! and the p99 send→output latency of events sent around each swap against the p99 of the
//! steady state before it, as a ratio.
//!
//! S5, real `agenthost serve` processes: resident memory with `DENSITY_AGENTS` idle agents
//! (each `echo` on a topic of its own) against a host with none, per agent, and how many would
//! fit in 24 GiB; then the start time of a host with `RESTART_AGENTS` agents of distinct
//! components, cold (nothing compiled) against warm (the compiled-artifact cache filled).
//!
//! Run with `cargo xtask bench lifecycle` (it builds target/plugins/echo.wasm first).

mod common;

use agenthost::bus::{Outgoing, StartAt};
use agenthost::config::HostConfig;
use agenthost::deployments::Origin;
use agenthost::host::Host;
use agenthost::manifest::Manifest;
use anyhow::{Context, Result, bail, ensure};
use common::{free_port, now_us, percentile_ms};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RATE: u64 = 1_000;
const RUN: Duration = Duration::from_secs(8);
const WARMUP: Duration = Duration::from_secs(1);
const SWAP_AT: Duration = Duration::from_secs(3);
const ROLLBACK_AT: Duration = Duration::from_millis(5_500);
/// Events sent from this long before a deploy to this long after it count as "during" it.
const AROUND: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(1));
const DENSITY_AGENTS: usize = 1_000;
const RESTART_AGENTS: usize = 100;

fn echo_wasm(root: &Path) -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map_or_else(|_| root.join("target"), PathBuf::from)
        .join("plugins/echo.wasm")
}

fn echo_manifest(name: &str, version: &str, component: &Path, input: &str, output: &str) -> String {
    format!(
        "name = \"{name}\"\nversion = \"{version}\"\ncomponent = \"{}\"\n\
         [[subscribe]]\ntopic = \"{input}\"\n\
         [capabilities]\npublish = [\"{output}\"]\nconfig = {{ out = \"{output}\" }}\n",
        component.display()
    )
}

fn p99_ms(mut latencies: Vec<u64>) -> f64 {
    latencies.sort_unstable();
    percentile_ms(&latencies, 0.99)
}

/// One output: which event, its latency, when it arrived, and the version that handled it.
struct Output {
    index: usize,
    latency_us: u64,
    arrived_us: u64,
    version: String,
}

async fn deploy(host: &Host, dir: &Path, version: &str, echo: &Path) -> Result<Duration> {
    let path = dir.join(format!("echo-{version}.toml"));
    let text = echo_manifest("echo", version, echo, "s4.in.v1", "s4.out.v1");
    std::fs::write(&path, &text)?;
    let manifest = Manifest::parse(&path, &text)?;
    let bytes = std::fs::read(echo)?;
    let started = Instant::now();
    host.deploy(agenthost::host::DeployRequest {
        manifest,
        component: bytes,
        source: path.display().to_string(),
        approval: agenthost::host::Approval::Given,
        origin: Origin::Api,
    })
    .await?;
    Ok(started.elapsed())
}

async fn s4(root: &Path) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = HostConfig::parse(
        &dir.path().join("agenthost.toml"),
        &format!(
            "data_dir = \"data\"\nagents = []\nwatch_interval = \"0s\"\nlisten = \"127.0.0.1:{}\"\n",
            free_port()?
        ),
    )?;
    let host = Host::open(config).await?;
    let echo = echo_wasm(root);
    deploy(&host, dir.path(), "1.0.0", &echo).await?;
    // The output topic exists once the first event went through.
    let warm = Outgoing {
        topic: "s4.in.v1".into(),
        key: None,
        payload: b"warm-up".to_vec(),
        headers: vec![],
    };
    host.bus.publish(warm).await?;
    let mut reader = host.bus.read("s4.out.v1", StartAt::Beginning).await?;
    tokio::time::timeout(Duration::from_secs(30), reader.next())
        .await
        .context("the warm-up event produced no output")??;

    let total = (RATE * RUN.as_secs()) as usize;
    let start_us = now_us();
    let producer = {
        let bus = host.bus.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
            let mut sent = Vec::with_capacity(total);
            for i in 0..total {
                tick.tick().await;
                let at = now_us();
                let record = Outgoing {
                    topic: "s4.in.v1".into(),
                    key: Some(format!("key-{}", i % 64).into_bytes()),
                    payload: format!("{at:020}{i:08}").into_bytes(),
                    headers: vec![],
                };
                bus.publish(record).await?;
                sent.push(at);
            }
            anyhow::Ok(sent)
        })
    };
    let collector = tokio::spawn(async move {
        let mut outputs = Vec::with_capacity(total);
        let deadline = Instant::now() + RUN + Duration::from_secs(60);
        while outputs.len() < total && Instant::now() < deadline {
            let Ok(record) = tokio::time::timeout(Duration::from_secs(5), reader.next()).await
            else {
                continue;
            };
            let record = record?;
            let arrived = now_us();
            let text = String::from_utf8_lossy(&record.payload).into_owned();
            let (Some(sent), Some(index)) = (
                text.get(..20).and_then(|s| s.parse::<u64>().ok()),
                text.get(20..).and_then(|s| s.parse::<usize>().ok()),
            ) else {
                continue;
            };
            let version = record
                .header("agenthost-agent-version")
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            outputs.push(Output {
                index,
                latency_us: arrived.saturating_sub(sent),
                arrived_us: arrived,
                version,
            });
        }
        anyhow::Ok(outputs)
    });

    tokio::time::sleep(SWAP_AT).await;
    let swap_started = now_us();
    let swap_took = deploy(&host, dir.path(), "2.0.0", &echo).await?;
    tokio::time::sleep(ROLLBACK_AT - SWAP_AT).await;
    let rollback_started = now_us();
    let started = Instant::now();
    host.rollback("echo", None, agenthost::host::Approval::Given)
        .await?;
    let rollback_took = started.elapsed();

    let sent = producer.await??;
    // Wait for the stragglers, then for any duplicate.
    let mut outputs = collector.await??;
    ensure!(
        !outputs.is_empty(),
        "no output at all: is target/plugins/echo.wasm built?"
    );
    let mut seen: HashMap<usize, usize> = HashMap::new();
    for o in &outputs {
        *seen.entry(o.index).or_default() += 1;
    }
    let lost = (0..total).filter(|i| !seen.contains_key(i)).count();
    let duplicated: usize = seen.values().map(|n| n - 1).sum();
    outputs.sort_by_key(|o| o.index);

    let first_on = |version: &str, after_us: u64| {
        outputs
            .iter()
            .filter(|o| o.version == version && o.arrived_us >= after_us)
            .map(|o| o.arrived_us)
            .min()
            .map(|t| (t - after_us) as f64 / 1000.0)
    };
    let sent_between = |from_us: u64, to_us: u64| -> Vec<u64> {
        outputs
            .iter()
            .filter(|o| (from_us..to_us).contains(&sent[o.index]))
            .map(|o| o.latency_us)
            .collect()
    };
    let steady = p99_ms(sent_between(
        start_us + WARMUP.as_micros() as u64,
        swap_started,
    ));
    let around = |at: u64| {
        p99_ms(sent_between(
            at - AROUND.0.as_micros() as u64,
            at + AROUND.1.as_micros() as u64,
        ))
    };
    let (during_swap, during_rollback) = (around(swap_started), around(rollback_started));

    println!(
        "S4: hot swap under load, echo on the embedded bus at {RATE} events/s for {}s",
        RUN.as_secs()
    );
    println!("    events {total}, lost {lost}, duplicated {duplicated}");
    println!(
        "    swap 1.0.0 -> 2.0.0: deploy call {:.1} ms, first output on 2.0.0 after {:.1} ms",
        swap_took.as_secs_f64() * 1000.0,
        first_on("2.0.0", swap_started).unwrap_or(f64::NAN)
    );
    println!(
        "    rollback -> 1.0.0:   call {:.1} ms, first output on 1.0.0 after {:.1} ms",
        rollback_took.as_secs_f64() * 1000.0,
        first_on("1.0.0", rollback_started).unwrap_or(f64::NAN)
    );
    println!("    p99 steady (baseline) {steady:.2} ms");
    println!(
        "    p99 around the swap   {during_swap:.2} ms ({:.2}x)",
        during_swap / steady
    );
    println!(
        "    p99 around the rollback {during_rollback:.2} ms ({:.2}x)",
        during_rollback / steady
    );
    host.shutdown(Duration::from_secs(10)).await;
    if lost > 0 || duplicated > 0 {
        bail!("S4 lost {lost} and duplicated {duplicated} events");
    }
    Ok(())
}

/// A running `agenthost serve` in `dir` (its `agenthost.toml`), stopped on drop.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the host in `dir` and waits until `/healthz` answers 200 (every agent deployed);
/// returns it and how long that took.
async fn serve(dir: &Path, port: u16) -> Result<(Served, Duration)> {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_agenthost"))
        .args(["serve", "--config"])
        .arg(dir.join("agenthost.toml"))
        .env("AGENTHOST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start agenthost")?;
    let served = Served(child);
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            && r.status().is_success()
        {
            return Ok((served, started.elapsed()));
        }
        ensure!(Instant::now() < deadline, "the host never became ready");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Stops a served host with SIGTERM (a clean shutdown) and waits for it.
fn terminate(mut served: Served) -> Result<()> {
    Command::new("kill")
        .arg(served.0.id().to_string())
        .status()?;
    served.0.wait()?;
    Ok(())
}

fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS in /proc")?;
    Ok(kib * 1024)
}

/// A host directory with `agents` manifests (from `manifest(i)`), on the embedded bus.
fn host_dir(agents: usize, manifest: impl Fn(usize) -> String) -> Result<(tempfile::TempDir, u16)> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("agents"))?;
    for i in 0..agents {
        std::fs::write(
            dir.path().join(format!("agents/echo-{i:04}.toml")),
            manifest(i),
        )?;
    }
    let port = free_port()?;
    std::fs::write(
        dir.path().join("agenthost.toml"),
        format!(
            "data_dir = \"data\"\nagents = [\"agents/*.toml\"]\nwatch_interval = \"0s\"\n\
             listen = \"127.0.0.1:{port}\"\n[bus.local]\npartitions = 1\n"
        ),
    )?;
    Ok((dir, port))
}

/// `bytes` with a custom section naming `i`: the same component, a different digest.
fn variant(bytes: &[u8], i: usize) -> Vec<u8> {
    let name = b"agenthost-bench";
    let payload = i.to_le_bytes();
    let mut out = bytes.to_vec();
    out.push(0); // custom section
    let size = 1 + name.len() + payload.len();
    out.push(u8::try_from(size).unwrap_or(u8::MAX)); // fits one LEB128 byte (< 128)
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(&payload);
    out
}

async fn s5(root: &Path) -> Result<()> {
    let echo = echo_wasm(root);
    let idle = |i: usize| {
        echo_manifest(
            &format!("echo-{i:04}"),
            "1.0.0",
            &echo,
            &format!("density.in-{i:04}.v1"),
            &format!("density.out-{i:04}.v1"),
        )
    };
    println!(
        "S5: density and restart, real agenthost processes on the embedded bus (1 partition a topic)"
    );
    let mut rss = Vec::new();
    for agents in [0, DENSITY_AGENTS] {
        let (dir, port) = host_dir(agents, idle)?;
        let (served, took) = serve(dir.path(), port).await?;
        // Let start-up allocations settle.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let bytes = rss_bytes(served.0.id())?;
        println!(
            "    {agents:>5} agents: ready in {:.2} s, resident {:.1} MiB",
            took.as_secs_f64(),
            bytes as f64 / (1024.0 * 1024.0)
        );
        rss.push(bytes);
        terminate(served)?;
    }
    let per_agent = rss[1].saturating_sub(rss[0]) as f64 / DENSITY_AGENTS as f64;
    println!(
        "    per idle agent {:.0} KiB; 24 GiB would hold about {:.0} agents (goal: 1,000)",
        per_agent / 1024.0,
        (24.0 * 1024.0 * 1024.0 * 1024.0 - rss[0] as f64) / per_agent
    );

    let bytes = std::fs::read(&echo)?;
    let (dir, port) = host_dir(0, idle)?;
    for i in 0..RESTART_AGENTS {
        let component = dir.path().join(format!("agents/echo-{i:04}.wasm"));
        std::fs::write(&component, variant(&bytes, i))?;
        std::fs::write(
            dir.path().join(format!("agents/echo-{i:04}.toml")),
            echo_manifest(
                &format!("echo-{i:04}"),
                "1.0.0",
                &component,
                &format!("restart.in-{i:04}.v1"),
                &format!("restart.out-{i:04}.v1"),
            ),
        )?;
    }
    let (served, cold) = serve(dir.path(), port).await?;
    terminate(served)?;
    let (served, warm) = serve(dir.path(), port).await?;
    terminate(served)?;
    println!(
        "    start with {RESTART_AGENTS} agents of distinct components: cold {:.2} s, from the artifact cache {:.2} s ({:.1}x faster)",
        cold.as_secs_f64(),
        warm.as_secs_f64(),
        cold.as_secs_f64() / warm.as_secs_f64()
    );
    Ok(())
}

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_owned();
    ensure!(
        echo_wasm(&root).exists(),
        "{} is missing: run `cargo xtask plugins echo`",
        echo_wasm(&root).display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let root = Arc::new(root);
    rt.block_on(async {
        s4(&root).await?;
        s5(&root).await
    })
}
