//! `cargo xtask demo [--once] [--kafka]`: the quickstart. Builds the agents (Rust, Python,
//! JavaScript) and the host, runs `agenthost serve` with `examples/pricing` on the embedded bus
//! (or, with `--kafka`, on a tansu broker it starts), publishes the example price-check
//! requests, shows every step the agents take as it happens, then what they produced; and keeps
//! serving (or, with `--once`, checks every expected output appeared and exits).

use crate::{peers, plugins, test, workspace};
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADDRESS: &str = "127.0.0.1:8080";
/// Where `examples/pricing/agenthost-kafka.toml` expects its broker.
const KAFKA_PORT: u16 = 9092;
/// How long the agents get to produce everything expected.
const OUTPUT_TIMEOUT: &str = "60s";

/// What the example requests must produce (`examples/pricing/expected.json`, which the
/// integration test `tests/it/demo.rs` checks too).
#[derive(serde::Deserialize)]
struct Expected {
    outputs: Vec<ExpectedOutput>,
    /// The notifications customer-notify must have sent through the notifier MCP server.
    notifications: Vec<String>,
    /// The request whose trace the demo prints: it crosses all four agents.
    traced: String,
}

#[derive(serde::Deserialize)]
struct ExpectedOutput {
    topic: String,
    count: u64,
    /// What the records show, for the heading.
    shows: String,
    /// Text the records must contain.
    contains: Vec<String>,
}

/// A child process stopped (SIGTERM, then waited for) when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

struct Options {
    once: bool,
    kafka: bool,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        once: false,
        kafka: false,
    };
    for arg in args {
        match arg.as_str() {
            "--once" => options.once = true,
            "--kafka" => options.kafka = true,
            other => {
                bail!("unknown argument {other:?}; usage: cargo xtask demo [--once] [--kafka]")
            }
        }
    }
    Ok(options)
}

pub fn run(args: Vec<String>) -> Result<()> {
    let options = parse(&args)?;
    plugins::run(Vec::new())?;
    workspace::run(workspace::cargo().args(["build", "-p", "agenthost"]))?;

    let root = workspace::root();
    let example = root.join("examples/pricing");
    let expected_path = example.join("expected.json");
    let expected: Expected = serde_json::from_str(
        &std::fs::read_to_string(&expected_path)
            .with_context(|| format!("cannot read {}", expected_path.display()))?,
    )
    .with_context(|| {
        format!(
            "{} is not the expected-output table",
            expected_path.display()
        )
    })?;
    // The MCP servers are Python on the `mcp` SDK.
    peers::ensure_requirements(&example.join("requirements.txt"))?;
    let bin = workspace::target_dir().join("debug/agenthost");
    if TcpStream::connect(ADDRESS).is_ok() {
        bail!(
            "something is already listening on {ADDRESS}; stop it (another `cargo xtask demo`?) and try again"
        );
    }

    let (config, data, _broker) = if options.kafka {
        let broker = start_tansu()?;
        ("agenthost-kafka.toml", "pricing-kafka-data", Some(broker))
    } else {
        ("agenthost.toml", "pricing-data", None)
    };
    // A fresh bus and state every run, so what is shown is exactly what these requests
    // produced; compiled components are kept (the first run compiles them, later ones load).
    clear_except(&workspace::target_dir().join(data), "compiled")?;
    let outbox = workspace::target_dir().join("pricing-outbox.jsonl");
    if outbox.exists() {
        std::fs::remove_file(&outbox)
            .with_context(|| format!("cannot clear {}", outbox.display()))?;
    }

    let log_path = workspace::target_dir().join("pricing.log");
    let log = std::fs::File::create(&log_path)?;
    println!(
        "==> starting agenthost serve --config examples/pricing/{config} (log: {})\n    \
         (the first run compiles the Python and JavaScript agents: about a minute)",
        log_path.display()
    );
    let child = Command::new(&bin)
        .args(["serve", "--config"])
        .arg(example.join(config))
        .current_dir(root)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let mut host = Process(child);
    wait_ready(&mut host, &log_path)?;

    let cli = |args: &[&str]| -> Result<std::process::Output> {
        Command::new(&bin)
            .args(args)
            .output()
            .with_context(|| format!("cannot run agenthost {}", args.join(" ")))
    };
    println!("\n==> agents");
    print!("{}", String::from_utf8_lossy(&cli(&["agents"])?.stdout));

    println!(
        "\n==> every step, as the audit log records it (correlation id, agent, capability, target)"
    );
    let follower = follow_steps(&bin)?;

    let requests = std::fs::read_to_string(example.join("requests.jsonl"))?;
    for line in requests.lines().filter(|l| !l.trim().is_empty()) {
        let request: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("requests.jsonl: bad line {line}"))?;
        let field = |name: &str| {
            request[name]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("requests.jsonl: `{name}` missing in {line}"))
        };
        let (topic, key, payload) = (field("topic")?, field("key")?, field("payload")?);
        let header = format!("correlation-id={}", field("correlation_id")?);
        let out = cli(&[
            "publish", &topic, "--key", &key, "--header", &header, &payload,
        ])?;
        if !out.status.success() {
            bail!("publish failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }

    // Wait for everything expected (the steps scroll by meanwhile), then show it.
    let mut results = Vec::new();
    for ExpectedOutput { topic, count, .. } in &expected.outputs {
        let format = if topic == "agent.dead-letter.price-collector.v1" {
            "json"
        } else {
            "text"
        };
        let count = count.to_string();
        results.push(cli(&[
            "consume",
            topic,
            "--from-beginning",
            "--count",
            &count,
            "--timeout",
            OUTPUT_TIMEOUT,
            "--format",
            format,
        ])?);
    }
    let notifications =
        wait_for_notifications(&outbox, &expected.notifications, Duration::from_secs(30));
    // Let the last steps print before the summary.
    std::thread::sleep(Duration::from_millis(800));

    let mut missing = Vec::new();
    for (output, out) in expected.outputs.iter().zip(&results) {
        let (topic, must_contain) = (&output.topic, &output.contains);
        println!("\n==> {topic}: {}", output.shows);
        let stdout = String::from_utf8_lossy(&out.stdout);
        for line in stdout.lines() {
            if topic == "agent.dead-letter.price-collector.v1" {
                let record: serde_json::Value = serde_json::from_str(line)?;
                println!(
                    "  {}  error: {}",
                    record["payload"].as_str().unwrap_or_default(),
                    record["headers"]["agenthost-error"]
                        .as_str()
                        .unwrap_or_default()
                );
            } else {
                println!("  {line}");
            }
        }
        let absent: Vec<&String> = must_contain
            .iter()
            .filter(|text| !stdout.contains(text.as_str()))
            .collect();
        if !out.status.success() {
            println!("  !! {}", String::from_utf8_lossy(&out.stderr).trim());
            missing.push(topic.to_string());
        } else if !absent.is_empty() {
            println!("  !! expected {absent:?} in these records");
            missing.push(topic.to_string());
        }
    }

    println!(
        "\n==> notifications: customer-notify (JavaScript) told the watchers through the notifier MCP server"
    );
    for line in &notifications {
        println!("  {line}");
    }
    for subject in &expected.notifications {
        if !notifications.iter().any(|n| n.contains(subject.as_str())) {
            println!("  !! no notification {subject:?}");
            missing.push(format!("notification {subject:?}"));
        }
    }

    let traced = &expected.traced;
    println!("\n==> agenthost trace {traced}: one request's path through the agents");
    let trace = cli(&["trace", traced])?;
    print!("{}", String::from_utf8_lossy(&trace.stdout));
    if !trace.status.success() {
        println!("  !! {}", String::from_utf8_lossy(&trace.stderr).trim());
        missing.push(format!("trace {traced}"));
    }

    println!(
        "\n==> MCP: an MCP client (the official Python SDK, examples/pricing/ask_over_mcp.py) calls price-analysis.last-price at http://{ADDRESS}/mcp"
    );
    let asked = Command::new("python3")
        .arg(example.join("ask_over_mcp.py"))
        .arg(format!("http://{ADDRESS}/mcp"))
        .arg("sku-1")
        .output()?;
    let answer = String::from_utf8_lossy(&asked.stdout);
    print!("{answer}");
    if !asked.status.success() || !answer.contains("sku-1: last known price") {
        println!("  !! {}", String::from_utf8_lossy(&asked.stderr).trim());
        missing.push("the MCP tool's answer".into());
    }

    if options.once {
        drop(follower);
        if !missing.is_empty() {
            bail!(
                "expected output missing: {}; see {}",
                missing.join(", "),
                log_path.display()
            );
        }
        println!("\n==> every expected output appeared");
        return Ok(());
    }
    println!(
        "\n==> agenthost keeps serving on http://{ADDRESS}; new steps keep printing above (Ctrl-C to stop). Try:\n\
         \x20 target/debug/agenthost publish ecommerce.price-check-requested.v1 --key sku-3 '{{\"product\": \"sku-3\"}}'\n\
         \x20 target/debug/agenthost trace <the correlation-id it prints>\n\
         \x20 target/debug/agenthost send order-update '{{\"product\": \"sku-7\", \"recommendation\": \"raise\", \"suggested_price\": 12.5}}'\n\
         \x20 target/debug/agenthost consume ecommerce.order-updated.v1 --from-beginning\n\
         \x20 target/debug/agenthost audit --denied\n\
         \x20 python3 examples/pricing/ask_over_mcp.py http://{ADDRESS}/mcp sku-5   (an MCP client)\n\
         \x20 curl -s http://{ADDRESS}/metrics | grep agenthost_invocations\n\
         \x20 tail -f {}",
        log_path.display()
    );
    // Ctrl-C reaches the host too (same process group); wait for it to finish shutting down.
    let status = host.0.wait()?;
    std::mem::forget(host);
    println!("agenthost exited: {status}");
    Ok(())
}

/// Removes everything in `dir` but `keep`.
fn clear_except(dir: &Path, keep: &str) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        if path.file_name().is_some_and(|n| n == keep) {
            continue;
        }
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.with_context(|| format!("cannot clear {}", path.display()))?;
    }
    Ok(())
}

/// Starts tansu (installed first if missing) with in-memory storage where the Kafka config
/// expects it.
fn start_tansu() -> Result<tansu_harness::Broker> {
    let tansu = test::ensure_tansu()?;
    let log = workspace::target_dir().join("pricing-tansu.log");
    println!(
        "==> starting the tansu broker on 127.0.0.1:{KAFKA_PORT} (log: {})",
        log.display()
    );
    // The harness refuses a port something already listens on; say what to do then.
    tansu_harness::Broker::start(&tansu, KAFKA_PORT, &workspace::target_dir(), &log).with_context(
        || {
            format!(
                "`--kafka` starts its own broker on 127.0.0.1:{KAFKA_PORT}. To use a broker you run, \
                 start `target/debug/agenthost serve --config examples/pricing/agenthost-kafka.toml` yourself"
            )
        },
    )
}

/// `agenthost audit --follow`, each entry printed as one step line as it is recorded. Config
/// reads are left out: every invocation makes several, and they say nothing about the path.
fn follow_steps(bin: &Path) -> Result<Process> {
    let mut child = Command::new(bin)
        .args(["audit", "--follow", "--format", "json", "--since", "1s"])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start agenthost audit --follow")?;
    let stdout = child
        .stdout
        .take()
        .context("audit --follow has no stdout")?;
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Ok(step) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let text = |name: &str| step[name].as_str().unwrap_or_default().to_owned();
            let capability = text("capability");
            if capability == "config" || capability == "deploy" {
                continue;
            }
            let outcome = match text("outcome").as_str() {
                "allowed" => String::new(),
                other => format!("  {}", other.to_uppercase()),
            };
            let detail = match text("detail") {
                d if d.is_empty() => String::new(),
                d => format!("  ({d})"),
            };
            println!(
                "  {:<12} {:<16} {:<17} {}{outcome}{detail}",
                text("correlation_id"),
                text("agent"),
                capability,
                text("target"),
            );
        }
    });
    Ok(Process(child))
}

/// The notifier's outbox lines, once it holds every expected notification or after `wait`.
fn wait_for_notifications(outbox: &PathBuf, expected: &[String], wait: Duration) -> Vec<String> {
    let start = Instant::now();
    loop {
        let lines: Vec<String> = std::fs::read_to_string(outbox)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        let complete = expected
            .iter()
            .all(|subject| lines.iter().any(|l| l.contains(subject.as_str())));
        if complete || start.elapsed() > wait {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_ready(host: &mut Process, log: &Path) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(600) {
        if let Some(status) = host.0.try_wait()? {
            bail!(
                "agenthost exited with {status}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if healthz().unwrap_or(false) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("agenthost did not become ready; see {}", log.display())
}

/// `GET /healthz` over a raw socket (xtask stays free of an HTTP client).
fn healthz() -> Result<bool> {
    let mut stream = TcpStream::connect(ADDRESS)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"))
}
