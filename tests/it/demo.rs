//! The quickstart, as a test: the pricing example (`examples/pricing`) with its own manifests and
//! its three MCP servers, fed its `requests.jsonl`, must produce everything its expected-output
//! table (`examples/pricing/expected.json`, which `cargo xtask demo --once` checks too) says.

use agenthost_tests::*;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn example() -> PathBuf {
    workspace_root().join("examples/pricing")
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The example's manifest for `agent`, its component path pointed at the built plugins.
fn example_manifest(agent: &str) -> String {
    read(example().join(format!("agents/{agent}.toml")))
        .replace("../../../target/plugins", "{plugins}")
}

/// The example's MCP servers, by absolute path, the notifier writing to `outbox`.
fn mcp_servers(outbox: &std::path::Path) -> String {
    let script = |name: &str| example().join(name).display().to_string();
    let outbox = outbox.display().to_string();
    [
        (
            "shop-scraper",
            vec!["python3".to_owned(), script("scraper_server.py")],
        ),
        (
            "inventory",
            vec!["python3".to_owned(), script("inventory_server.py")],
        ),
        (
            "notifier",
            vec![
                "python3".to_owned(),
                script("notify_server.py"),
                "--outbox".to_owned(),
                outbox,
            ],
        ),
    ]
    .iter()
    .map(|(name, command)| {
        let command: Vec<&str> = command.iter().map(String::as_str).collect();
        format!(
            "[mcp.servers.{name}]\ncommand = {}\n",
            peers::toml_array(&command)
        )
    })
    .collect()
}

#[test]
fn the_pricing_example_produces_every_expected_output() {
    let expected: Value = serde_json::from_str(&read(example().join("expected.json")))
        .expect("expected.json is JSON");
    let outbox_dir = tempfile::tempdir().unwrap();
    let outbox = outbox_dir.path().join("outbox.jsonl");
    let s = Scenario::new(&mcp_servers(&outbox));
    for agent in [
        "price-collector",
        "price-analysis",
        "order-update",
        "customer-notify",
    ] {
        s.manifest(agent, &example_manifest(agent));
    }
    let host = s.start();

    for line in read(example().join("requests.jsonl")).lines() {
        if line.trim().is_empty() {
            continue;
        }
        let request: Value = serde_json::from_str(line).unwrap();
        let field = |name: &str| request[name].as_str().unwrap();
        publish(
            &host.url,
            field("topic"),
            Some(field("key")),
            field("payload"),
            Some(field("correlation_id")),
        )
        .unwrap();
    }

    for output in expected["outputs"].as_array().unwrap() {
        let topic = output["topic"].as_str().unwrap();
        let count = output["count"].as_u64().unwrap() as usize;
        let records = consume(&host.url, topic, count, Duration::from_secs(90));
        let text: Vec<String> = records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        assert_eq!(
            records.len(),
            count,
            "{topic}: {} — {count} records expected, got {text:?}; the host's log:\n{}",
            output["shows"],
            host.log_text()
        );
        // Payloads are compared as the agents wrote them (the wire record escapes them).
        let payloads: Vec<String> = records
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r.payload.as_deref().unwrap_or_default(),
                    serde_json::to_string(&r.headers).unwrap()
                )
            })
            .collect();
        for needle in output["contains"].as_array().unwrap() {
            let needle = needle.as_str().unwrap();
            assert!(
                payloads.iter().any(|p| p.contains(needle)),
                "{topic}: no record contains {needle}: {payloads:?}"
            );
        }
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    let notifications = loop {
        let sent = std::fs::read_to_string(&outbox).unwrap_or_default();
        let all = expected["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| sent.contains(n.as_str().unwrap()));
        if all || Instant::now() > deadline {
            break sent;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for subject in expected["notifications"].as_array().unwrap() {
        assert!(
            notifications.contains(subject.as_str().unwrap()),
            "no notification {subject}: the outbox holds {notifications:?}"
        );
    }

    let traced = expected["traced"].as_str().unwrap();
    let trace = s.cli(&["trace", traced]);
    assert!(trace.status.success(), "{}", describe(&trace));
    let trace = String::from_utf8_lossy(&trace.stdout);
    for agent in expected["traced_agents"].as_array().unwrap() {
        assert!(
            trace.contains(agent.as_str().unwrap()),
            "trace {traced} does not pass {agent}:\n{trace}"
        );
    }
    // Each event comes after the publish of its record: by its place (`topic[p]@offset`,
    // for the API's and an agent's `publish`), or by its topic (an agent's `send`).
    // (who, capability, target) of each step line: `  +12ms  who  capability  target …`.
    let steps: Vec<(String, String, String)> = trace
        .lines()
        .filter(|l| l.trim_start().starts_with('+'))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words
                .iter()
                .position(|w| *w == "event" || *w == "publish")?;
            Some((
                words.get(1)?.to_string(),
                words[at].to_owned(),
                words.get(at + 1)?.to_string(),
            ))
        })
        .collect();
    for (i, (_, capability, target)) in steps.iter().enumerate() {
        if capability != "event" {
            continue;
        }
        let topic = target.split('[').next().unwrap_or_default();
        assert!(
            steps[..i]
                .iter()
                .any(|(_, c, t)| c == "publish" && (t == target || t == topic)),
            "the event {target} is shown before the publish of its record:\n{trace}"
        );
    }
    assert!(
        steps
            .iter()
            .any(|(who, c, t)| who != "(api)" && c == "publish" && t.contains("]@")),
        "an agent's publish shows where its record was stored:\n{trace}"
    );
}
