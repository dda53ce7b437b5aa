//! The audit trail a security team reads: capability uses, allowed and denied, and deploy
//! decisions, through `agenthost audit` and `/metrics`.

use agenthost_tests::*;
use std::time::Duration;

/// echo, told to publish to `out`; its manifest grants only `granted.out.v1`.
fn echo(out: &str) -> String {
    format!(
        r#"
name = "echo"
version = "2.1.0"
component = "{{plugins}}/echo.wasm"

[[subscribe]]
topic = "audit.in.v1"

[capabilities]
publish = ["granted.out.v1"]
config = {{ out = "{out}" }}
"#
    )
}

#[test]
fn capability_uses_and_deploy_decisions_are_audited() {
    let s = Scenario::new("");
    s.manifest("echo", &echo("granted.out.v1"));
    let host = s.start();
    publish(&host.url, "audit.in.v1", None, "fine", Some("cid-allowed")).unwrap();
    assert_eq!(
        consume(&host.url, "granted.out.v1", 1, Duration::from_secs(30)).len(),
        1
    );

    // Allowed: the publish and the config read, with agent, version and correlation id.
    let entries = s.audit(&["--correlation-id", "cid-allowed"]);
    let publish_entry = entries
        .iter()
        .find(|e| e["capability"] == "publish" && e["agent"] == "echo")
        .expect("publish audited");
    assert_eq!(publish_entry["outcome"], "allowed");
    assert_eq!(publish_entry["target"], "granted.out.v1");
    assert_eq!(publish_entry["agent"], "echo");
    assert_eq!(publish_entry["version"], "2.1.0");
    assert!(
        entries
            .iter()
            .any(|e| e["capability"] == "config" && e["target"] == "out"),
        "{entries:?}"
    );

    // An upgrade that would publish elsewhere is refused without --approve: audited as denied.
    let widened = s.path().join("echo-wide.toml");
    std::fs::write(
        &widened,
        echo("granted.out.v1")
            .replace("2.1.0", "2.2.0")
            .replace(
                "publish = [\"granted.out.v1\"]",
                "publish = [\"granted.out.v1\", \"secret.*\"]",
            )
            .replace(
                "{plugins}",
                &target_dir().join("plugins").display().to_string(),
            ),
    )
    .unwrap();
    assert_eq!(
        s.cli(&["deploy", widened.to_str().unwrap()]).status.code(),
        Some(1)
    );
    let deploys = s.audit(&["--agent", "echo", "--denied"]);
    let refused = deploys
        .iter()
        .find(|e| e["capability"] == "deploy")
        .expect("refused deploy audited");
    assert_eq!(refused["version"], "2.2.0");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("+ publish secret.*"),
        "{refused}"
    );

    // A denied publish: the agent asked for a topic its manifest does not grant.
    let redirected = s.path().join("echo-redirected.toml");
    std::fs::write(
        &redirected,
        echo("secret.topic.v1").replace("2.1.0", "2.3.0").replace(
            "{plugins}",
            &target_dir().join("plugins").display().to_string(),
        ),
    )
    .unwrap();
    let deployed = s.cli(&["deploy", redirected.to_str().unwrap()]);
    assert!(deployed.status.success(), "{}", describe(&deployed));
    publish(&host.url, "audit.in.v1", None, "sneaky", Some("cid-denied")).unwrap();
    consume(
        &host.url,
        "agent.dead-letter.echo.v1",
        1,
        Duration::from_secs(30),
    );
    let denied = s.audit(&["--denied", "--since", "5m"]);
    let entry = denied
        .iter()
        .find(|e| e["capability"] == "publish")
        .expect("denied publish audited");
    assert_eq!(entry["target"], "secret.topic.v1");
    assert_eq!(entry["correlation_id"], "cid-denied");
    assert_eq!(entry["version"], "2.3.0");
    assert!(
        entry["detail"]
            .as_str()
            .unwrap()
            .contains("capabilities.publish"),
        "{entry}"
    );
    assert!(denied.iter().all(|e| e["outcome"] == "denied"));

    // The text form is one line per entry, and the metrics count by capability and outcome.
    let text = s.cli(&["audit", "--agent", "echo", "--denied"]);
    assert!(
        String::from_utf8_lossy(&text.stdout)
            .lines()
            .any(|l| l.contains("denied") && l.contains("publish secret.topic.v1"))
    );
    let metrics = host.metrics();
    assert!(
        metric_value(
            &metrics,
            "agenthost_audit_events_total{capability=\"publish\",outcome=\"denied\"}"
        ) >= 1.0
    );
    assert!(
        metric_value(
            &metrics,
            "agenthost_audit_events_total{capability=\"deploy\",outcome=\"denied\"}"
        ) >= 1.0
    );
    assert!(
        metric_value(
            &metrics,
            "agenthost_audit_events_total{capability=\"publish\",outcome=\"allowed\"}"
        ) >= 1.0
    );

    // Bad queries are refused with the reason.
    let bad = s.cli(&["audit", "--since", "soonish"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("since"));
}

/// echo under another name, relaying `from` to `to`.
fn relay(name: &str, from: &str, to: &str) -> String {
    format!(
        r#"
name = "{name}"
version = "1.0.0"
component = "{{plugins}}/echo.wasm"

[[subscribe]]
topic = "{from}"

[capabilities]
publish = ["{to}"]
config = {{ out = "{to}" }}
"#
    )
}

#[test]
fn a_request_is_traced_through_agents_and_topics_and_the_log_can_be_followed() {
    let s = Scenario::new("");
    s.manifest("first", &relay("first", "trace.in.v1", "trace.middle.v1"));
    s.manifest(
        "second",
        &relay("second", "trace.middle.v1", "trace.out.v1"),
    );
    let host = s.start();

    // A follower started before the request sees its steps as they are recorded.
    let mut follower = std::process::Command::new(agenthost_bin())
        .args(["audit", "--follow", "--format", "json", "--since", "1m"])
        .arg("--host")
        .arg(s.url())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start audit --follow");
    let stdout = follower.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    publish(
        &host.url,
        "trace.in.v1",
        Some("k"),
        "hop",
        Some("cid-trace"),
    )
    .unwrap();
    assert_eq!(
        consume(&host.url, "trace.out.v1", 1, Duration::from_secs(30)).len(),
        1
    );

    // Until the last agent's publish and the API's own entry have both shown up: the API
    // records its entry once the record is stored, so on a busy machine it may come after
    // every agent's step.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut followed = Vec::new();
    let seen = |followed: &[serde_json::Value], agent: &str| {
        followed.iter().any(|e| {
            e["agent"] == agent
                && e["capability"] == "publish"
                && e["correlation_id"] == "cid-trace"
        })
    };
    while !(seen(&followed, "second") && seen(&followed, "(api)")) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => followed.push(serde_json::from_str(&line).unwrap()),
            Err(_) => panic!(
                "audit --follow did not show the API's and the second agent's publishes: {followed:#?}"
            ),
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    let steps: Vec<(String, String)> = followed
        .iter()
        .filter(|e| e["correlation_id"] == "cid-trace")
        .map(|e| {
            (
                e["agent"].as_str().unwrap().to_owned(),
                e["capability"].as_str().unwrap().to_owned(),
            )
        })
        .filter(|(_, capability)| capability != "config")
        .collect();
    // Where the request entered (shown above, wherever it came), then the agents' steps in
    // the order they ran.
    let agents_steps: Vec<(String, String)> = steps
        .iter()
        .filter(|(agent, _)| agent != "(api)")
        .cloned()
        .collect();
    let expected = [
        ("first", "event"),
        ("first", "publish"),
        ("second", "event"),
        ("second", "publish"),
    ];
    assert_eq!(
        agents_steps,
        expected.map(|(a, c)| (a.to_owned(), c.to_owned())),
        "followed in the order they happened"
    );

    // The trace: every step, then where the request went.
    let trace = s.cli(&["trace", "cid-trace"]);
    assert!(trace.status.success(), "{}", describe(&trace));
    let text = String::from_utf8_lossy(&trace.stdout);
    assert!(text.starts_with("trace cid-trace: "), "{text}");
    assert!(text.contains("first@1.0.0"), "{text}");
    assert!(text.contains("trace.in.v1[0]@0"), "{text}");
    let first_step = text.lines().nth(1).unwrap_or_default();
    assert!(
        first_step.contains("(api)") && first_step.contains("publish"),
        "the trace starts where the request entered: {text}"
    );
    assert!(text.contains("agents:       first → second"), "{text}");
    assert!(
        text.contains("topics:       trace.in.v1 → trace.middle.v1 → trace.out.v1"),
        "{text}"
    );
    let json = s.cli(&["trace", "cid-trace", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        json["summary"]["agents"],
        serde_json::json!(["first", "second"])
    );
    assert_eq!(json["summary"]["problems"], 0);

    // An unknown id says so.
    let unknown = s.cli(&["trace", "cid-never-seen"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no audit entries for correlation id"),
        "{}",
        describe(&unknown)
    );
}

#[test]
fn a_request_that_crossed_two_hosts_on_kafka_is_traced_across_both() {
    let bus = TestBus::kafka();
    // Two hosts on one cluster, each with its own audit log: the request enters at the first,
    // whose agent relays it to a topic only the second host's agent reads.
    let a = Scenario::on(&bus);
    let b = Scenario::on(&bus);
    a.manifest("first", &relay("first", "hop.in.v1", "hop.middle.v1"));
    b.manifest("second", &relay("second", "hop.middle.v1", "hop.out.v1"));
    let host_a = a.start();
    let host_b = b.start();
    publish(&host_a.url, "hop.in.v1", Some("k"), "hop", Some("cid-hop")).unwrap();
    assert_eq!(
        consume(&host_b.url, "hop.out.v1", 1, Duration::from_secs(60)).len(),
        1,
        "the relay through both hosts; first host's log:\n{}\nsecond's:\n{}",
        host_a.log_text(),
        host_b.log_text()
    );
    let second_host = host_b.url.trim_start_matches("http://").to_owned();

    let trace = a.cli(&["trace", "cid-hop", "--also", &host_b.url]);
    assert!(trace.status.success(), "{}", describe(&trace));
    let text = String::from_utf8_lossy(&trace.stdout);
    assert!(text.contains(", 2 agents, 2 hosts, "), "{text}");
    assert!(text.contains("agents:       first → second"), "{text}");
    assert!(
        text.contains("topics:       hop.in.v1 → hop.middle.v1 → hop.out.v1"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains(&format!("second@1.0.0 on {second_host}"))
                && l.contains("hop.out.v1")),
        "the second host's publish, named with its host: {text}"
    );
    let json = a.cli(&[
        "trace",
        "cid-hop",
        "--also",
        &host_b.url,
        "--format",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["summary"]["hosts"].as_array().map(Vec::len), Some(2));
    assert!(
        json["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["agent"] == "second" && s["host"] == second_host.as_str()),
        "{json:#}"
    );

    // The first host's log alone ends where the request left it.
    let alone = a.cli(&["trace", "cid-hop"]);
    let text = String::from_utf8_lossy(&alone.stdout);
    assert!(text.contains("agents:       first\n"), "{text}");
    assert!(!text.contains("hosts"), "{text}");

    // A host that cannot be read is named, rather than a trace with a hole in it.
    let down = a.cli(&["trace", "cid-hop", "--also", "http://127.0.0.1:9"]);
    assert_eq!(down.status.code(), Some(1), "{}", describe(&down));
    assert!(
        String::from_utf8_lossy(&down.stderr)
            .contains("cannot read the audit log of http://127.0.0.1:9"),
        "{}",
        describe(&down)
    );
}
