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

fn audit_lines(s: &Scenario, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["audit", "--format", "json"];
    all.extend_from_slice(args);
    let out = s.cli(&all);
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
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
    let entries = audit_lines(&s, &["--correlation-id", "cid-allowed"]);
    let publish_entry = entries
        .iter()
        .find(|e| e["capability"] == "publish")
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
    let deploys = audit_lines(&s, &["--agent", "echo", "--denied"]);
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
        "agent.dead-letter.v1",
        1,
        Duration::from_secs(30),
    );
    let denied = audit_lines(&s, &["--denied", "--since", "5m"]);
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
