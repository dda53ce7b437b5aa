//! The hostile-agent suite: every attack of the `hostile` plugin runs against a host that also
//! serves a bystander. Each must end with the hostile event dead-lettered for a reason that names
//! the limit or the denial, an audit entry saying what was refused, a healthy host, and a
//! bystander that kept serving.

use agenthost_tests::peers::Peer;
use agenthost_tests::*;
use std::collections::BTreeMap;
use std::time::Duration;

fn hostile(allowed_port: u16) -> String {
    format!(
        r#"
name = "hostile"
version = "6.6.6"
component = "{{plugins}}/hostile.wasm"

[[subscribe]]
topic = "hostile.in.v1"

[delivery]
max_attempts = 2
backoff = "50ms"
concurrency = 4

[limits]
memory = "160MiB"
# Long enough for every attack but `loop` to end by its own limit on a loaded 2-core machine.
timeout = "4s"
publishes = 100

[capabilities]
publish = ["hostile.out.v1"]
http = ["http://127.0.0.1:{allowed_port}"]
files = [{{ path = "../granted", mount = "/data", access = "read" }}]
config = {{ out = "hostile.out.v1" }}
"#
    )
}

/// The hostile component with warm instances: the control that shows `remember`/`recall` would
/// see memory carried across invocations.
const HOSTILE_WARM: &str = r#"
name = "hostile-warm"
version = "6.6.6"
component = "{plugins}/hostile.wasm"

[[subscribe]]
topic = "hostile-warm.in.v1"

[limits]
reuse_instances = true
instances = 1

[capabilities]
publish = ["hostile-warm.out.v1"]
# The component imports wasi:http; this agent never uses it (port 9 is discard).
http = ["http://127.0.0.1:9"]
config = { out = "hostile-warm.out.v1" }
"#;

const BYSTANDER: &str = r#"
name = "bystander"
version = "1.0.0"
component = "{plugins}/echo.wasm"

[[subscribe]]
topic = "bystander.in.v1"

[capabilities]
publish = ["bystander.out.v1"]
config = { out = "bystander.out.v1" }
"#;

/// Publishes `count` events for the bystander, each with a key of its own.
fn feed_bystander(host: &HostProcess, count: usize) {
    for i in 0..count {
        publish(
            &host.url,
            "bystander.in.v1",
            Some(&format!("k{i}")),
            &format!("b{i}"),
            None,
        )
        .unwrap();
    }
}

#[test]
fn hostile_agents_are_contained_and_the_bystander_keeps_serving() {
    let s = Scenario::new("");
    // The granted directory, with two symlinks planted to lead out of it, and a secret beside it.
    let granted = s.path().join("granted");
    std::fs::create_dir_all(&granted).unwrap();
    std::fs::write(granted.join("inside.txt"), "fine").unwrap();
    std::fs::write(s.path().join("secret.txt"), "top secret").unwrap();
    std::os::unix::fs::symlink("..", granted.join("up")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", granted.join("passwd-link")).unwrap();

    let allowed = Peer::http_origin(free_port(), &s.path().join("allowed-origin.log"));
    let forbidden_log = s.path().join("forbidden-origin.log");
    let forbidden = Peer::http_origin(free_port(), &forbidden_log);
    let forbidden_url = format!("http://127.0.0.1:{}/secrets", forbidden.port);
    let via_redirect = format!(
        "http://127.0.0.1:{}/redirect?to={forbidden_url}",
        allowed.port
    );

    s.manifest("hostile", &hostile(allowed.port));
    s.manifest("bystander", BYSTANDER);
    s.manifest("hostile-warm", HOSTILE_WARM);
    let host = s.start();

    // (attack, payload, what the dead letter's reason must name, the denied audit entry:
    // capability and target prefix).
    let forbidden_http = format!("forbidden-http:{forbidden_url}");
    let redirect_http = format!("forbidden-http:{via_redirect}");
    let forbidden_target = format!("GET http://127.0.0.1:{}/secrets", forbidden.port);
    #[rustfmt::skip]
    let attacks: [(&str, &str, &str, &str, &str); 13] = [
        ("loop", "loop", "limits.timeout", "sandbox", "timeout"),
        ("alloc", "alloc", "limits.memory", "sandbox", "memory"),
        ("recurse", "recurse", "runtime.max_wasm_stack", "sandbox", "stack"),
        ("trap", "trap", "hostile: asked to trap", "sandbox", "trap"),
        ("escape-dotdot", "escape-file", "every escape was refused", "files", "read ../secret.txt"),
        ("escape-symlink", "escape-file", "every escape was refused", "files", "read up/secret.txt"),
        ("forbidden-http", &forbidden_http, "capabilities.http", "http", &forbidden_target),
        ("redirect-http", &redirect_http, "capabilities.http", "http", &forbidden_target),
        ("flood", "flood", "limits.publishes", "publish", "hostile.out.v1"),
        ("big", "big", "limits.publish_size", "publish", "hostile.out.v1"),
        ("forbidden-topic", "forbidden-topic", "capabilities.publish", "publish", "secrets.exfiltrated.v1"),
        ("deny-loop", "deny-loop", "limits.publishes", "publish", "secrets.exfiltrated.v1"),
        ("resource-flood", "resource-flood", "host resources", "sandbox", "resources"),
    ];

    // The attacks and the bystander's traffic at the same time.
    for (name, payload, ..) in attacks {
        let cid = format!("cid-{name}");
        publish(&host.url, "hostile.in.v1", Some(name), payload, Some(&cid)).unwrap();
    }
    const BYSTANDER_EVENTS: usize = 50;
    feed_bystander(&host, BYSTANDER_EVENTS);

    let served = consume(
        &host.url,
        "bystander.out.v1",
        BYSTANDER_EVENTS,
        Duration::from_secs(60),
    );
    assert_eq!(
        served.len(),
        BYSTANDER_EVENTS,
        "the bystander stopped serving; log:\n{}",
        host.log_text()
    );

    let dead = consume(
        &host.url,
        "agent.dead-letter.hostile.v1",
        attacks.len(),
        Duration::from_secs(120),
    );
    let reasons: BTreeMap<String, String> = dead
        .iter()
        .map(|r| {
            (
                r.headers["correlation-id"].clone(),
                r.headers["agenthost-error"].clone(),
            )
        })
        .collect();
    for (name, _, named, capability, target) in attacks {
        let cid = format!("cid-{name}");
        let reason = reasons.get(&cid).unwrap_or_else(|| {
            panic!(
                "{name} was not dead-lettered: {reasons:#?}\nlog:\n{}",
                host.log_text()
            )
        });
        assert!(
            reason.contains(named),
            "{name}: the reason does not name {named:?}: {reason}"
        );

        let entries = s.audit(&["--denied", "--correlation-id", &cid]);
        assert!(
            entries.iter().any(|e| e["capability"] == capability
                && e["target"].as_str().is_some_and(|t| t.starts_with(target))),
            "{name}: no denied {capability} {target}… in the audit log: {entries:#?}"
        );
    }

    // What the manifest's author might try instead: a dead letter to exfiltrate through, the
    // admin token's variable, the host's own data_dir. Each is refused at deploy, naming the
    // key, while the bystander keeps serving.
    let plugins = target_dir().join("plugins").display().to_string();
    let base = hostile(allowed.port).replace("{plugins}", &plugins);
    for (file, edit, says) in [
        (
            "exfil",
            base.replace(
                "concurrency = 4",
                "concurrency = 4\ndead_letter = \"secrets.exfiltrated.v1\"",
            ),
            "`delivery.dead_letter`",
        ),
        (
            "env-secret",
            base.replace(
                "config = {",
                "env = [\"AGENTHOST_ADMIN_TOKEN\"]\nconfig = {",
            ),
            "`capabilities.env[0]`",
        ),
        (
            "state-grab",
            base.replace("path = \"../granted\"", "path = \"../data\""),
            "`capabilities.files[0].path`",
        ),
    ] {
        // Beside agents/, so `../data` is the host's data_dir and `../granted` the granted one.
        let incoming = s.path().join("incoming");
        std::fs::create_dir_all(&incoming).unwrap();
        let manifest = incoming.join(format!("{file}.toml"));
        std::fs::write(&manifest, edit.replace("2.1.0", "6.6.7")).unwrap();
        let refused = s.cli(&["deploy", manifest.to_str().unwrap(), "--approve"]);
        assert_eq!(
            refused.status.code(),
            Some(1),
            "{file}: {}",
            describe(&refused)
        );
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains(says),
            "{file}: {}",
            describe(&refused)
        );
    }
    publish(
        &host.url,
        "bystander.in.v1",
        Some("after"),
        "still here",
        None,
    )
    .unwrap();
    assert_eq!(
        consume(
            &host.url,
            "bystander.out.v1",
            BYSTANDER_EVENTS + 1,
            Duration::from_secs(30)
        )
        .len(),
        BYSTANDER_EVENTS + 1
    );

    // The 1,000 denials of deny-loop left their warnings within the agent's log_rate (100/s),
    // not one (or two) per denial.
    let warnings = host
        .log_text()
        .lines()
        .filter(|l| l.contains("capability use denied"))
        .count();
    assert!(
        warnings < 600,
        "{warnings} denial warnings reached the host log"
    );

    // Nothing got out: no escaped file or response was published, the forbidden origin never
    // saw a request, and the flood stopped at limits.publishes.
    let out = consume(&host.url, "hostile.out.v1", 1_000, Duration::from_secs(3));
    assert!(
        out.iter()
            .all(|r| !r.payload.as_deref().unwrap_or("").starts_with("ESCAPED")),
        "{:#?}",
        out.iter()
            .filter(|r| r.payload.as_deref().unwrap_or("").starts_with("ESCAPED"))
            .collect::<Vec<_>>()
    );
    // Each attempt of the flood stops at limits.publishes. What an attempt published stays
    // published (at-least-once), so on a loaded machine an attempt the timeout ended early
    // adds its records to those of the attempt that reached the limit.
    let flood_attempts: usize = dead
        .iter()
        .find(|r| r.headers["correlation-id"] == "cid-flood")
        .and_then(|r| r.headers.get("agenthost-attempts"))
        .and_then(|a| a.parse().ok())
        .expect("the flood's dead letter says how many attempts it took");
    assert!(
        (100..=100 * flood_attempts).contains(&out.len()),
        "the flood published {} records in {flood_attempts} attempts: beyond limits.publishes (100 each)",
        out.len()
    );
    let reached = std::fs::read_to_string(&forbidden_log).unwrap();
    assert!(
        reached.is_empty(),
        "the forbidden origin was reached: {reached}"
    );

    // The host is healthy, and the hostile agent itself still serves a well-behaved event,
    // including an HTTP request its manifest allows.
    let health = http().get(format!("{}/healthz", host.url)).send().unwrap();
    assert!(health.status().is_success(), "{}", health.status());
    publish(
        &host.url,
        "hostile.in.v1",
        Some("ok"),
        &format!("fetch:http://127.0.0.1:{}/inside", allowed.port),
        Some("cid-fetch"),
    )
    .unwrap();
    let fetched = consume(
        &host.url,
        "hostile.out.v1",
        out.len() + 1,
        Duration::from_secs(30),
    );
    let answer = fetched
        .last()
        .and_then(|r| r.payload.clone())
        .unwrap_or_default();
    assert_eq!(
        answer,
        format!(
            "HTTP 200 from http://127.0.0.1:{}/inside: hello from {} /inside",
            allowed.port, allowed.port
        )
    );
    // Memory does not carry from one event to the next: a fresh instance (the default) finds
    // neither the static nor the heap copy the previous event left; a warm one (the control)
    // does, so the probe would notice.
    for (agent, expected, records) in [
        ("hostile", "recall: fresh memory", out.len() + 3),
        (
            "hostile-warm",
            "ESCAPED static kept across invocations: k9; heap kept across invocations",
            2,
        ),
    ] {
        for payload in ["remember:k9", "recall:k9"] {
            publish(
                &host.url,
                &format!("{agent}.in.v1"),
                Some("carry"),
                payload,
                None,
            )
            .unwrap();
        }
        let outputs: Vec<String> = consume(
            &host.url,
            &format!("{agent}.out.v1"),
            records,
            Duration::from_secs(30),
        )
        .into_iter()
        .filter_map(|r| r.payload)
        .filter(|p| {
            p == "remembered" || p.starts_with("recall:") || p.contains("across invocations")
        })
        .collect();
        assert_eq!(
            outputs,
            ["remembered", expected],
            "{agent}: what the second event saw of the first; log:\n{}",
            host.log_text()
        );
    }

    let metrics = host.metrics();
    assert!(
        metrics.contains("agenthost_audit_events_total{capability=\"sandbox\",outcome=\"denied\"}"),
        "sandbox stops are not counted in /metrics"
    );
}

/// An agent with the grant a sidecar needs, `http://127.0.0.1:*`: it reaches its sidecar, but
/// not the host's own admin API on the same address, and a host *name* that resolves to
/// loopback reaches nothing. The admin API itself answers no one without the token.
const SIDECAR_CLIENT: &str = r#"
name = "sidecar-client"
version = "1.0.0"
component = "{plugins}/hostile.wasm"

[[subscribe]]
topic = "sidecar-client.in.v1"

[delivery]
max_attempts = 1

[capabilities]
publish = ["sidecar-client.out.v1"]
http = ["http://127.0.0.1:*", "http://localhost:*"]
config = { out = "sidecar-client.out.v1" }
"#;

#[test]
fn a_loopback_grant_reaches_its_sidecar_but_not_the_admin_api_or_a_name_for_loopback() {
    let s = Scenario::new("[admin]\nmetrics_public = false\n");
    let sidecar = Peer::http_origin(free_port(), &s.path().join("sidecar.log"));
    s.manifest("sidecar-client", SIDECAR_CLIENT);
    let host = s.start();
    let host_port = host.url.rsplit(':').next().unwrap().to_owned();

    // /v1 needs the token even on loopback: the host generated one, and only a client that
    // presents it gets in.
    let anonymous = http()
        .get(format!("{}/v1/agents", host.url))
        .send()
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let token_file = s.path().join("data/admin-token");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&token_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the generated token is private");
    let authorized = http()
        .get(format!("{}/v1/agents", host.url))
        .bearer_auth(std::fs::read_to_string(&token_file).unwrap().trim())
        .send()
        .unwrap();
    assert_eq!(authorized.status().as_u16(), 200);
    // With `metrics_public = false`, /metrics too.
    let metrics = |token: Option<&str>| {
        let request = http().get(format!("{}/metrics", host.url));
        match token {
            Some(t) => request.bearer_auth(t),
            None => request,
        }
        .send()
        .unwrap()
        .status()
        .as_u16()
    };
    assert_eq!(metrics(None), 401);
    assert_eq!(metrics(Some(&admin_token(&host.url))), 200);

    for (key, payload) in [
        (
            "admin",
            format!("forbidden-http:http://127.0.0.1:{host_port}/v1/agents"),
        ),
        (
            "by-name",
            format!("forbidden-http:http://localhost:{}/inside", sidecar.port),
        ),
        (
            "sidecar",
            format!("fetch:http://127.0.0.1:{}/inside", sidecar.port),
        ),
    ] {
        publish(
            &host.url,
            "sidecar-client.in.v1",
            Some(key),
            &payload,
            Some(&format!("cid-{key}")),
        )
        .unwrap();
    }
    let out = consume(
        &host.url,
        "sidecar-client.out.v1",
        1,
        Duration::from_secs(30),
    );
    assert_eq!(
        out[0].payload.as_deref().unwrap_or_default(),
        format!(
            "HTTP 200 from http://127.0.0.1:{}/inside: hello from {} /inside",
            sidecar.port, sidecar.port
        ),
        "the granted sidecar is reachable"
    );
    let dead = consume(
        &host.url,
        "agent.dead-letter.sidecar-client.v1",
        2,
        Duration::from_secs(30),
    );
    assert_eq!(dead.len(), 2, "log:\n{}", host.log_text());
    for (cid, reason) in [
        ("cid-admin", "own listener"),
        ("cid-by-name", "loopback address"),
    ] {
        let entries = s.audit(&["--denied", "--correlation-id", cid]);
        assert!(
            entries.iter().any(|e| e["capability"] == "http"
                && e["detail"].as_str().is_some_and(|d| d.contains(reason))),
            "{cid}: no denied http entry naming {reason:?}: {entries:#?}"
        );
    }
}

/// An agent allowed as many instances as the whole pool, each held for 3 s (asleep, so the
/// test burns no CPU the suites running beside it need).
const POOL_HOG: &str = r#"
name = "pool-hog"
version = "1.0.0"
component = "{plugins}/faulty.wasm"

[[subscribe]]
topic = "pool-hog.in.v1"

[delivery]
max_attempts = 1
concurrency = 64

[limits]
timeout = "5s"
instances = 64

[capabilities]
publish = ["pool-hog.out.v1"]
config = { out = "pool-hog.out.v1" }
"#;

/// One agent taking every slot of the instance pool (the scenarios' pool has 64) makes the
/// others wait for a slot, not fail: the bystander's events all come out, none dead-lettered.
/// And a manifest whose warm instances would not leave a quarter of the pool is refused.
#[test]
fn a_pool_hog_delays_the_others_but_fails_none_of_their_events() {
    let s = Scenario::new("");
    s.manifest("pool-hog", POOL_HOG);
    s.manifest("bystander", BYSTANDER);
    let host = s.start();
    for i in 0..64 {
        publish(
            &host.url,
            "pool-hog.in.v1",
            Some(&format!("k{i}")),
            "hold:3000",
            None,
        )
        .unwrap();
    }
    // Every slot is held now (or about to be).
    std::thread::sleep(Duration::from_millis(300));
    const EVENTS: usize = 20;
    feed_bystander(&host, EVENTS);
    let served = consume(
        &host.url,
        "bystander.out.v1",
        EVENTS,
        Duration::from_secs(60),
    );
    assert_eq!(served.len(), EVENTS, "log:\n{}", host.log_text());
    let dead = consume(
        &host.url,
        "agent.dead-letter.bystander.v1",
        1,
        Duration::from_secs(1),
    );
    assert!(dead.is_empty(), "the bystander lost events: {dead:?}");

    let hog = s.path().join("warm-hog.toml");
    std::fs::write(
        &hog,
        POOL_HOG
            .replace("pool-hog", "warm-hog")
            .replace("instances = 64", "instances = 60\nreuse_instances = true")
            .replace(
                "{plugins}",
                &target_dir().join("plugins").display().to_string(),
            ),
    )
    .unwrap();
    let refused = s.cli(&["deploy", hog.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("runtime.pool_instances = 64"),
        "{}",
        describe(&refused)
    );
}

/// An agent with no grant at all can read its config: 2,000 reads with a 64 KiB key are stored
/// as one bounded entry with a count (not 128 MiB of targets), and the host stays healthy.
#[test]
fn an_audit_flood_through_an_ungranted_call_stays_bounded() {
    let s = Scenario::new("");
    std::fs::create_dir_all(s.path().join("granted")).unwrap();
    s.manifest("hostile", &hostile(9));
    let host = s.start();
    publish(
        &host.url,
        "hostile.in.v1",
        Some("flood"),
        "audit-flood",
        Some("cid-audit-flood"),
    )
    .unwrap();
    let dead = consume(
        &host.url,
        "agent.dead-letter.hostile.v1",
        1,
        Duration::from_secs(60),
    );
    assert_eq!(dead.len(), 1, "log:\n{}", host.log_text());
    let reads: Vec<serde_json::Value> = s
        .audit(&["--correlation-id", "cid-audit-flood"])
        .into_iter()
        .filter(|e| e["capability"] == "config" && e["target"] != "out")
        .collect();
    let recorded: u64 = reads
        .iter()
        .map(|e| 1 + e["repeated"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(recorded, 2_000, "every read is counted: {reads:#?}");
    assert!(
        reads.len() <= 10,
        "{} entries for one repeated read",
        reads.len()
    );
    assert!(
        reads
            .iter()
            .all(|e| e["target"].as_str().unwrap().len() < 300),
        "targets are bounded"
    );
    let health = http().get(format!("{}/healthz", host.url)).send().unwrap();
    assert!(health.status().is_success());
}
