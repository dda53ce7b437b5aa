//! Versions: the deployment history, rollback (also after the files are gone, and across a
//! restart), and the watched `agents` globs deploying changed manifests by the same rules.

use agenthost_tests::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The echo manifest at `version`, for the component at `component`.
fn echo(version: &str, component: &Path) -> String {
    ECHO.replace("1.0.0", version)
        .replace("{plugins}/echo.wasm", &component.display().to_string())
}

/// Publishes one event and returns the version that handled it (its output's provenance).
fn handled_by(host: &HostProcess, n: usize) -> String {
    let cid = format!("cid-{n}");
    publish(&host.url, "demo.in.v1", None, "hello", Some(&cid)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = consume(&host.url, "demo.out.v1", n, Duration::from_secs(5));
        if let Some(r) = out.iter().find(|r| r.headers["correlation-id"] == cid) {
            return r.headers["agenthost-agent-version"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no output for {cid}:\n{}",
            host.log_text()
        );
    }
}

fn history(s: &Scenario) -> Vec<Value> {
    let out = s.cli(&["history", "echo", "--format", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn summary(history: &[Value]) -> Vec<(String, String, String)> {
    history
        .iter()
        .map(|d| {
            (
                d["version"].as_str().unwrap().to_owned(),
                d["origin"].as_str().unwrap().to_owned(),
                d["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn row(version: &str, origin: &str, outcome: &str) -> (String, String, String) {
    (version.into(), origin.into(), outcome.into())
}

#[test]
fn rollback_brings_an_earlier_version_back_even_after_its_files_are_gone() {
    let s = Scenario::new("");
    s.manifest("echo", &echo("1.0.0", &plugin("echo")));
    let mut host = s.start();
    assert_eq!(handled_by(&host, 1), "1.0.0");

    // Version 2 from a component file of its own, which is deleted after the deploy.
    let incoming = s.path().join("incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    let v2_component = incoming.join("echo-2.wasm");
    std::fs::copy(plugin("echo"), &v2_component).unwrap();
    let v2 = incoming.join("echo-2.toml");
    std::fs::write(&v2, echo("2.0.0", &v2_component)).unwrap();
    let deployed = s.cli(&["deploy", v2.to_str().unwrap()]);
    assert!(deployed.status.success(), "{}", describe(&deployed));
    assert_eq!(handled_by(&host, 2), "2.0.0");
    std::fs::remove_file(&v2_component).unwrap();
    std::fs::remove_file(&v2).unwrap();

    // Back to the version before the live one.
    let back = s.cli(&["rollback", "echo"]);
    assert!(back.status.success(), "{}", describe(&back));
    assert!(
        String::from_utf8_lossy(&back.stdout)
            .contains("rolled back to echo 1.0.0 (replacing 2.0.0)"),
        "{}",
        describe(&back)
    );
    assert_eq!(handled_by(&host, 3), "1.0.0");

    // Forward again to a named version, whose files no longer exist.
    let forward = s.cli(&["rollback", "echo", "--to", "2.0.0"]);
    assert!(forward.status.success(), "{}", describe(&forward));
    assert_eq!(handled_by(&host, 4), "2.0.0");

    // What cannot be done is refused, naming why; the live version keeps serving.
    let unknown = s.cli(&["rollback", "echo", "--to", "9.9.9"]);
    assert_eq!(unknown.status.code(), Some(1), "{}", describe(&unknown));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("9.9.9 was never live") && stderr.contains("2.0.0, 1.0.0"),
        "{stderr}"
    );
    let live = s.cli(&["rollback", "echo", "--to", "2.0.0"]);
    assert!(
        String::from_utf8_lossy(&live.stderr).contains("already live"),
        "{}",
        describe(&live)
    );
    let nobody = s.cli(&["rollback", "nobody"]);
    assert!(
        String::from_utf8_lossy(&nobody.stderr).contains("no agent named \"nobody\""),
        "{}",
        describe(&nobody)
    );
    assert_eq!(handled_by(&host, 5), "2.0.0");

    let before_restart = history(&s);
    assert_eq!(
        summary(&before_restart),
        [
            row("2.0.0", "rollback", "deployed"),
            row("1.0.0", "rollback", "deployed"),
            row("2.0.0", "api", "deployed"),
            row("1.0.0", "config", "deployed"),
        ]
    );
    assert!(
        before_restart[2]["source"]
            .as_str()
            .unwrap()
            .ends_with("echo-2.toml")
    );
    assert!(
        before_restart[1]["detail"]
            .as_str()
            .unwrap()
            .contains("replaced 2.0.0")
    );
    let text = s.cli(&["history", "echo"]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("rollback"),
        "{}",
        describe(&text)
    );

    // The history outlives the process. At start the host deploys its files again (1.0.0):
    // a deployment of its own, recorded once however often the host restarts.
    host.terminate();
    drop(host);
    let host = s.start();
    assert_eq!(handled_by(&host, 6), "1.0.0");
    let after = history(&s);
    assert_eq!(after.len(), before_restart.len() + 1);
    assert_eq!(summary(&after[..1]), [row("1.0.0", "config", "deployed")]);
    drop(host);
    let host = s.start();
    assert_eq!(
        history(&s).len(),
        after.len(),
        "a restart is not a deployment"
    );
    // A rollback after the restart still finds 2.0.0's component.
    let again = s.cli(&["rollback", "echo"]);
    assert!(again.status.success(), "{}", describe(&again));
    assert_eq!(handled_by(&host, 7), "2.0.0");
}

#[test]
fn two_rollbacks_at_once_go_back_and_forth() {
    let s = Scenario::new("");
    s.manifest("echo", &echo("1.0.0", &plugin("echo")));
    let host = s.start();
    let v2 = s.path().join("echo-2.toml");
    std::fs::write(&v2, echo("2.0.0", &plugin("echo"))).unwrap();
    let deployed = s.cli(&["deploy", v2.to_str().unwrap()]);
    assert!(deployed.status.success(), "{}", describe(&deployed));

    // Each rollback picks its target under the deploy lock: the second sees what the first
    // made live, as if they had been run one after the other.
    let rollback = || {
        std::process::Command::new(agenthost_bin())
            .args(["rollback", "echo", "--host", &s.url()])
            .output()
            .expect("run agenthost rollback")
    };
    let (first, second) = std::thread::scope(|scope| {
        let a = scope.spawn(rollback);
        let b = scope.spawn(rollback);
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut said: Vec<String> = [&first, &second]
        .iter()
        .map(|out| {
            assert!(out.status.success(), "{}", describe(out));
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        })
        .collect();
    said.sort();
    assert!(
        said[0].contains("rolled back to echo 1.0.0 (replacing 2.0.0)")
            && said[1].contains("rolled back to echo 2.0.0 (replacing 1.0.0)"),
        "{said:?}"
    );
    assert_eq!(handled_by(&host, 1), "2.0.0");
}

/// Puts `watch_interval` at the top of the scenario's host config.
fn watching(s: &Scenario, interval: &str) {
    let path = s.path().join("agenthost.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("watch_interval = \"{interval}\"\n{config}")).unwrap();
}

fn agents_json(s: &Scenario) -> Value {
    let out = s.cli(&["agents", "--format", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Polls `agenthost agents` until `done` holds.
fn wait_for_agents(s: &Scenario, host: &HostProcess, what: &str, done: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let agents = agents_json(s);
        if done(&agents) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never happened: {agents:#}\nlog:\n{}",
            host.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn version_of(agents: &Value, name: &str) -> Option<String> {
    agents["agents"]
        .as_array()?
        .iter()
        .find(|a| a["name"] == name)
        .map(|a| a["version"].as_str().unwrap_or_default().to_owned())
}

#[test]
fn changed_manifests_in_the_watched_globs_are_deployed_by_the_same_rules() {
    let s = Scenario::new("");
    watching(&s, "200ms");
    let manifest: PathBuf = s.manifest("echo", &echo("1.0.0", &plugin("echo")));
    let host = s.start();
    assert_eq!(handled_by(&host, 1), "1.0.0");

    // An edit with the same grants goes live by itself.
    std::fs::write(&manifest, echo("1.1.0", &plugin("echo"))).unwrap();
    wait_for_agents(&s, &host, "1.1.0 going live", |a| {
        version_of(a, "echo").as_deref() == Some("1.1.0")
    });
    assert_eq!(handled_by(&host, 2), "1.1.0");

    // An edit that grants more is refused, listed with the diff, and 1.1.0 keeps serving.
    std::fs::write(
        &manifest,
        echo("1.2.0", &plugin("echo")).replace(
            "publish = [\"demo.out.v1\"]",
            "publish = [\"demo.out.v1\", \"billing.*\"]",
        ),
    )
    .unwrap();
    wait_for_agents(&s, &host, "the widening edit being refused", |a| {
        a["refused"].as_array().is_some_and(|r| {
            r.iter().any(|r| {
                let error = r["error"].as_str().unwrap_or_default();
                error.contains("+ publish billing.*") && error.contains("--approve")
            })
        })
    });
    assert_eq!(handled_by(&host, 3), "1.1.0");

    // A new manifest in the glob is deployed too.
    s.manifest(
        "second",
        &echo("0.1.0", &plugin("echo"))
            .replace("name = \"echo\"", "name = \"second\"")
            .replace("demo.in.v1", "second.in.v1"),
    );
    wait_for_agents(&s, &host, "the new manifest going live", |a| {
        version_of(a, "second").as_deref() == Some("0.1.0")
    });
    let history = history(&s);
    assert_eq!(
        summary(&history),
        [
            row("1.2.0", "config", "refused"),
            row("1.1.0", "config", "deployed"),
            row("1.0.0", "config", "deployed"),
        ]
    );
}

/// Writes a manifest for `version` of echo outside the watched globs; `extra` is appended.
fn write_upgrade(s: &Scenario, version: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let incoming = s.path().join("incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    let path = incoming.join(format!("echo-{version}.toml"));
    std::fs::write(&path, edit(echo(version, &plugin("echo")))).unwrap();
    path
}

/// The versions that handled `count` new events with distinct keys, published now.
fn versions_handling(host: &HostProcess, tag: &str, count: usize) -> Vec<String> {
    let mut cids = Vec::new();
    for i in 0..count {
        let cid = format!("{tag}-{i}");
        publish(&host.url, "demo.in.v1", Some(&cid), "hello", Some(&cid)).unwrap();
        cids.push(cid);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = consume(
            &host.url,
            "demo.out.v1",
            usize::MAX >> 1,
            Duration::from_secs(2),
        );
        let found: Vec<String> = cids
            .iter()
            .filter_map(|cid| {
                out.iter()
                    .find(|r| &r.headers["correlation-id"] == cid)
                    .map(|r| r.headers["agenthost-agent-version"].clone())
            })
            .collect();
        if found.len() == count {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} {tag} events produced output:\n{}",
            found.len(),
            host.log_text()
        );
    }
}

const CANARY: &str = "\n[rollout]\ncanary = 50\nmin_invocations = 5\nmargin = 0.2\n";

#[test]
fn a_failing_canary_is_rolled_back_by_itself_and_a_good_one_is_promoted() {
    let s = Scenario::new("");
    s.manifest("echo", &echo("1.0.0", &plugin("echo")));
    let host = s.start();

    // 2.0.0 is misconfigured: it publishes to a topic it is not granted, so every invocation
    // on it fails. Its events are handed to 1.0.0, and the check takes it out.
    let broken = write_upgrade(&s, "2.0.0", |m| {
        m.replace(
            "config = { out = \"demo.out.v1\" }",
            "config = { out = \"demo.typo.v1\" }",
        ) + CANARY
    });
    let deployed = s.cli(&["deploy", broken.to_str().unwrap()]);
    assert!(deployed.status.success(), "{}", describe(&deployed));
    assert!(
        String::from_utf8_lossy(&deployed.stdout)
            .contains("echo 2.0.0 as a canary for 50% of events beside 1.0.0"),
        "{}",
        describe(&deployed)
    );
    let handled = versions_handling(&host, "broken", 60);
    assert!(
        handled.iter().all(|v| v == "1.0.0"),
        "a failed canary invocation is handled by the live version: {handled:?}"
    );
    let dead = consume(
        &host.url,
        "agent.dead-letter.echo.v1",
        1,
        Duration::from_secs(1),
    );
    assert!(
        dead.is_empty(),
        "no event is dead-lettered for a canary's failure"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let rolled_back = loop {
        let h = history(&s);
        if let Some(d) = h
            .iter()
            .find(|d| d["version"] == "2.0.0" && d["outcome"] == "rolled-back")
        {
            break d.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the canary was never rolled back: {h:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(rolled_back["origin"], "automatic");
    let reason = rolled_back["detail"].as_str().unwrap();
    assert!(reason.contains("canary failure rate 100.0%"), "{reason}");
    let echo_now = &agents_json(&s)["agents"][0];
    assert!(echo_now.get("canary").is_none());
    // The counters show the canary's failures beside the events handled.
    assert!(
        echo_now["invocations"].as_u64().unwrap() >= 60,
        "{echo_now}"
    );
    assert!(echo_now["failures"].as_u64().unwrap() >= 5, "{echo_now}");
    let audit = s.cli(&["audit", "--agent", "echo", "--denied"]);
    assert!(
        String::from_utf8_lossy(&audit.stdout).contains("canary rolled back"),
        "{}",
        describe(&audit)
    );

    // 3.0.0 is sound: it shares the events with 1.0.0 until promoted. It may publish to one
    // more topic: approved, and the grant it adds is shown like any deploy's.
    let good = write_upgrade(&s, "3.0.0", |m| {
        m.replace(
            "publish = [\"demo.out.v1\"]",
            "publish = [\"demo.out.v1\", \"demo.extra.v1\"]",
        ) + CANARY
    });
    let deployed = s.cli(&["deploy", "--approve", good.to_str().unwrap()]);
    assert!(deployed.status.success(), "{}", describe(&deployed));
    assert!(
        String::from_utf8_lossy(&deployed.stdout).contains("+ publish demo.extra.v1"),
        "{}",
        describe(&deployed)
    );
    let canary = &agents_json(&s)["agents"][0]["canary"];
    assert_eq!(canary["version"], "3.0.0");
    assert_eq!(canary["percent"], 50);
    let handled = versions_handling(&host, "shared", 40);
    assert!(
        handled.iter().any(|v| v == "1.0.0") && handled.iter().any(|v| v == "3.0.0"),
        "both versions take part: {handled:?}"
    );
    // Nothing else is deployed while a canary is on trial.
    let other = write_upgrade(&s, "4.0.0", |m| m);
    let refused = s.cli(&["deploy", other.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("3.0.0 is on trial as a canary"),
        "{}",
        describe(&refused)
    );
    let promoted = s.cli(&["promote", "echo"]);
    assert!(
        String::from_utf8_lossy(&promoted.stdout).contains("promoted echo 3.0.0 (replacing 1.0.0)"),
        "{}",
        describe(&promoted)
    );
    assert!(
        versions_handling(&host, "after", 10)
            .iter()
            .all(|v| v == "3.0.0")
    );

    // A canary the operator rolls back ends its trial; the live version stays.
    let next = write_upgrade(&s, "5.0.0", |m| m + CANARY);
    assert!(s.cli(&["deploy", next.to_str().unwrap()]).status.success());
    let back = s.cli(&["rollback", "echo"]);
    assert!(
        String::from_utf8_lossy(&back.stdout)
            .contains("rolled back to echo 3.0.0 (replacing 5.0.0)"),
        "{}",
        describe(&back)
    );
    assert!(
        versions_handling(&host, "end", 10)
            .iter()
            .all(|v| v == "3.0.0")
    );
    assert_eq!(
        summary(&history(&s)),
        [
            row("5.0.0", "rollback", "rolled-back"),
            row("5.0.0", "api", "canary"),
            row("3.0.0", "promote", "deployed"),
            row("4.0.0", "api", "refused"),
            row("3.0.0", "api", "canary"),
            row("2.0.0", "automatic", "rolled-back"),
            row("2.0.0", "api", "canary"),
            row("1.0.0", "config", "deployed"),
        ]
    );
}

/// What a restarted host runs is the deployment history's last approved version of each agent:
/// a manifest file widened while the host was down is refused (listed and audited) until
/// approved, an agent deployed only through the API comes back, and two manifests naming one
/// agent are both refused.
#[test]
fn a_restart_runs_the_approved_versions_and_refuses_widenings_made_on_disk() {
    let s = Scenario::new("");
    s.manifest("echo", &echo("1.0.0", &plugin("echo")));
    let mut host = s.start();
    assert_eq!(handled_by(&host, 1), "1.0.0");
    // An agent that exists only because the CLI deployed it.
    let incoming = s.path().join("incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    let relay = incoming.join("relay.toml");
    std::fs::write(
        &relay,
        echo("1.0.0", &plugin("echo"))
            .replace("name = \"echo\"", "name = \"relay\"")
            .replace("demo.", "relay."),
    )
    .unwrap();
    let deployed = s.cli(&["deploy", relay.to_str().unwrap()]);
    assert!(deployed.status.success(), "{}", describe(&deployed));
    host.terminate();
    drop(host);

    // While the host is down, the file is edited to publish somewhere new.
    s.manifest(
        "echo",
        &echo("1.1.0", &plugin("echo")).replace(
            "publish = [\"demo.out.v1\"]",
            "publish = [\"demo.out.v1\", \"secrets.exfiltrated.v1\"]",
        ),
    );
    let host = s.start();
    assert_eq!(
        handled_by(&host, 2),
        "1.0.0",
        "the approved version runs; log:\n{}",
        host.log_text()
    );
    let agents = s.cli(&["agents", "--format", "json"]);
    let v: Value = serde_json::from_slice(&agents.stdout).unwrap();
    let refusal = v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["agent"] == "echo")
        .unwrap_or_else(|| panic!("the widening is not listed: {v:#}"));
    let error = refusal["error"].as_str().unwrap();
    assert!(
        error.contains("+ publish secrets.exfiltrated.v1") && error.contains("--approve"),
        "{error}"
    );
    let log = host.log_text();
    assert!(
        log.lines().any(|l| l.contains("agent deployed")
            && l.contains("origin=\"restore\"")
            && l.contains("relay.toml")),
        "{log}"
    );
    // The CLI-deployed agent is back.
    publish(&host.url, "relay.in.v1", None, "still here", None).unwrap();
    assert_eq!(
        consume(&host.url, "relay.out.v1", 1, Duration::from_secs(30)).len(),
        1
    );
    // The refusal is in the audit log with its diff.
    let audit = s.cli(&["audit", "--denied", "--format", "json"]);
    assert!(
        String::from_utf8_lossy(&audit.stdout).contains("secrets.exfiltrated.v1"),
        "{}",
        describe(&audit)
    );

    // Approving it makes it live.
    let approved = s.cli(&["approve", "echo"]);
    assert!(approved.status.success(), "{}", describe(&approved));
    assert!(
        String::from_utf8_lossy(&approved.stdout).contains("approved and deployed echo 1.1.0"),
        "{}",
        describe(&approved)
    );
    assert_eq!(handled_by(&host, 3), "1.1.0");
    let nothing = s.cli(&["approve", "echo"]);
    assert_eq!(nothing.status.code(), Some(1), "{}", describe(&nothing));
    assert!(
        String::from_utf8_lossy(&nothing.stderr).contains("no refused deployment"),
        "{}",
        describe(&nothing)
    );

    drop(host);

    // A second manifest naming echo: both files are refused, naming each other; the approved
    // version (1.1.0, from the history) keeps running.
    s.manifest("echo-copy", &echo("1.2.0", &plugin("echo")));
    let host = s.start();
    assert_eq!(handled_by(&host, 4), "1.1.0");
    let agents = s.cli(&["agents", "--format", "json"]);
    let v: Value = serde_json::from_slice(&agents.stdout).unwrap();
    let refused: Vec<&str> = v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["error"].as_str())
        .filter(|e| e.contains("is named by 2 manifests"))
        .collect();
    assert_eq!(refused.len(), 2, "{v:#}");
    assert!(
        refused
            .iter()
            .all(|e| e.contains("echo.toml") && e.contains("echo-copy.toml")),
        "{refused:?}"
    );
}

/// Rolling back past a version that narrowed the grants widens them again: like a deploy, that
/// needs `--approve`.
#[test]
fn a_rollback_that_widens_needs_approval() {
    let s = Scenario::new("");
    s.manifest(
        "echo",
        &echo("1.0.0", &plugin("echo")).replace(
            "publish = [\"demo.out.v1\"]",
            "publish = [\"demo.out.v1\", \"legacy.out.v1\"]",
        ),
    );
    let host = s.start();
    let fixed = s.path().join("echo-2.toml");
    std::fs::write(&fixed, echo("2.0.0", &plugin("echo"))).unwrap();
    let deployed = s.cli(&["deploy", fixed.to_str().unwrap()]);
    assert!(
        deployed.status.success(),
        "a narrowing needs no approval: {}",
        describe(&deployed)
    );
    assert_eq!(handled_by(&host, 1), "2.0.0");

    let refused = s.cli(&["rollback", "echo"]);
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("+ publish legacy.out.v1") && stderr.contains("--approve"),
        "{stderr}"
    );
    assert_eq!(
        handled_by(&host, 2),
        "2.0.0",
        "the live version keeps serving"
    );

    let approved = s.cli(&["rollback", "echo", "--approve"]);
    assert!(approved.status.success(), "{}", describe(&approved));
    assert_eq!(handled_by(&host, 3), "1.0.0");
}
