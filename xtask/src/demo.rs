//! `cargo xtask demo [--once]`: the quickstart. Builds the plugins and the host, runs
//! `agenthost serve` with `examples/quickstart` on the embedded bus, publishes the example
//! events, shows what the agents published, and keeps serving (or, with `--once`, checks every
//! expected output appeared and exits).

use crate::{peers, plugins, workspace};
use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADDRESS: &str = "127.0.0.1:8080";

/// What the example events must produce: (topic, how many records, what it shows, text the
/// records must contain).
const EXPECTED: &[(&str, u64, &str, &[&str])] = &[
    (
        "demo.out.v1",
        1,
        "echo copied the greeting",
        &["hello, agenthost"],
    ),
    (
        "action.price-adjustment.v1",
        2,
        "price-analysis decided on sku-1 and sku-2, with stock from the inventory MCP server",
        &[
            r#""recommendation":"review""#,
            r#""recommendation":"hold""#,
            r#""on_hand":42"#,
        ],
    ),
    (
        "ecommerce.order-updated.v1",
        1,
        "order-update, handed the sku-2 decision over A2A, asked for a restock",
        &[r#""action":"restock""#, r#""incoming":120"#],
    ),
    (
        "agent.dead-letter.v1",
        1,
        "the malformed sku-4 event was dead-lettered with its reason",
        &["sku-4", "price"],
    ),
];

struct Host(Child);

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

pub fn run(args: Vec<String>) -> Result<()> {
    let once = match args.as_slice() {
        [] => false,
        [flag] if flag == "--once" => true,
        _ => bail!("usage: cargo xtask demo [--once]"),
    };
    plugins::run(Vec::new())?;
    workspace::run(workspace::cargo().args(["build", "-p", "agenthost"]))?;

    let root = workspace::root();
    let example = root.join("examples/quickstart");
    // The inventory MCP server is Python on the `mcp` SDK.
    peers::ensure_requirements(&example.join("requirements.txt"))?;
    let bin = workspace::target_dir().join("debug/agenthost");
    let data = workspace::target_dir().join("quickstart-data");
    // A fresh bus every run, so what is shown is exactly what these events produced.
    if data.exists() {
        std::fs::remove_dir_all(&data)
            .with_context(|| format!("cannot clear {}", data.display()))?;
    }
    if TcpStream::connect(ADDRESS).is_ok() {
        bail!(
            "something is already listening on {ADDRESS}; stop it (another `cargo xtask demo`?) and try again"
        );
    }
    let log_path = workspace::target_dir().join("quickstart.log");
    let log = std::fs::File::create(&log_path)?;
    println!(
        "==> starting agenthost serve --config examples/quickstart/agenthost.toml (log: {})",
        log_path.display()
    );
    let child = Command::new(&bin)
        .args(["serve", "--config"])
        .arg(example.join("agenthost.toml"))
        .current_dir(root)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let mut host = Host(child);
    wait_ready(&mut host, &log_path)?;

    let cli = |args: &[&str]| -> Result<std::process::Output> {
        Command::new(&bin)
            .args(args)
            .output()
            .with_context(|| format!("cannot run agenthost {}", args.join(" ")))
    };
    println!("\n==> agents");
    print!("{}", String::from_utf8_lossy(&cli(&["agents"])?.stdout));

    println!("\n==> publishing examples/quickstart/events.jsonl");
    let events = std::fs::read_to_string(example.join("events.jsonl"))?;
    for line in events.lines().filter(|l| !l.trim().is_empty()) {
        let event: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("events.jsonl: bad line {line}"))?;
        let field = |name: &str| {
            event[name]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("events.jsonl: `{name}` missing in {line}"))
        };
        let (topic, key, payload) = (field("topic")?, field("key")?, field("payload")?);
        let out = cli(&["publish", &topic, "--key", &key, &payload])?;
        if !out.status.success() {
            bail!("publish failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        println!(
            "  {topic} key={key} {payload}\n    {}",
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }

    let mut missing = Vec::new();
    for (topic, count, what, must_contain) in EXPECTED {
        println!("\n==> {topic}: {what}");
        let count = count.to_string();
        let format = if *topic == "agent.dead-letter.v1" {
            "json"
        } else {
            "text"
        };
        let out = cli(&[
            "consume",
            topic,
            "--from-beginning",
            "--count",
            &count,
            "--timeout",
            "30s",
            "--format",
            format,
        ])?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if format == "json" {
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
        let stdout = String::from_utf8_lossy(&out.stdout);
        let absent: Vec<&str> = must_contain
            .iter()
            .copied()
            .filter(|text| !stdout.contains(text))
            .collect();
        if !out.status.success() {
            println!("  !! {}", String::from_utf8_lossy(&out.stderr).trim());
            missing.push(*topic);
        } else if !absent.is_empty() {
            println!("  !! expected {absent:?} in these records");
            missing.push(*topic);
        }
    }

    if once {
        if !missing.is_empty() {
            bail!(
                "expected output missing on {}; see {}",
                missing.join(", "),
                log_path.display()
            );
        }
        println!("\n==> every expected output appeared");
        return Ok(());
    }
    println!(
        "\n==> agenthost keeps serving on http://{ADDRESS} (Ctrl-C to stop). Try:\n\
         \x20 target/debug/agenthost publish demo.in.v1 'hi there'\n\
         \x20 target/debug/agenthost consume demo.out.v1 --from-beginning\n\
         \x20 target/debug/agenthost publish ecommerce.price-changed.v1 --key sku-9 '{{\"product\": \"sku-9\", \"price\": 12, \"competitor_price\": 10}}'\n\
         \x20 target/debug/agenthost consume action.price-adjustment.v1 --from-beginning\n\
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

fn wait_ready(host: &mut Host, log: &std::path::Path) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
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
