//! What an agent can see of its host: only the environment variables and directories its
//! manifest grants, nothing else.

use agenthost_tests::*;
use std::collections::BTreeSet;
use std::time::Duration;

const PROBE: &str = r#"
name = "probe"
version = "1.0.0"
component = "{plugins}/faulty.wasm"

[[subscribe]]
topic = "probe.in.v1"

[delivery]
concurrency = 1

[capabilities]
publish = ["probe.out.v1"]
env = ["AH_TEST_VISIBLE"]
files = [
  { path = "../shared", mount = "/data", access = "read" },
  { path = "../scratch", mount = "/scratch", access = "read-write" },
]
config = { out = "probe.out.v1" }
"#;

#[test]
fn an_agent_sees_only_the_env_and_directories_it_is_granted() {
    let s = Scenario::new("");
    std::fs::create_dir_all(s.path().join("shared")).unwrap();
    std::fs::create_dir_all(s.path().join("scratch")).unwrap();
    std::fs::write(s.path().join("shared/hello.txt"), "hello from the host").unwrap();
    std::fs::write(s.path().join("secret.txt"), "top secret").unwrap();
    s.manifest("probe", PROBE);
    let host = s.start_with_env(&[("AH_TEST_VISIBLE", "yes"), ("AH_TEST_HIDDEN", "no")]);

    let probes = [
        "env:AH_TEST_VISIBLE",
        "env:AH_TEST_HIDDEN",
        "env:PATH",
        "read:/data/hello.txt",
        "read:/data/../secret.txt",
        "read:/data/../../../../etc/passwd",
        "read:/etc/passwd",
        "write:/data/new.txt",
        "write:/scratch/new.txt",
        "mkdir:/scratch/made",
        "rm:/data/hello.txt",
    ];
    for p in probes {
        publish(&host.url, "probe.in.v1", Some("one-partition"), p, None).unwrap();
    }
    let out = consume(
        &host.url,
        "probe.out.v1",
        probes.len(),
        Duration::from_secs(30),
    );
    assert_eq!(out.len(), probes.len(), "log:\n{}", host.log_text());
    let reports: BTreeSet<String> = out.iter().filter_map(|r| r.payload.clone()).collect();
    let has = |prefix: &str| reports.iter().any(|r| r.starts_with(prefix));

    assert!(reports.contains("AH_TEST_VISIBLE=yes"), "{reports:#?}");
    assert!(reports.contains("AH_TEST_HIDDEN unset"), "{reports:#?}");
    assert!(reports.contains("PATH unset"), "{reports:#?}");
    assert!(
        reports.contains("read /data/hello.txt: hello from the host"),
        "{reports:#?}"
    );
    assert!(
        has("read /data/../secret.txt failed"),
        "no escape through ..: {reports:#?}"
    );
    assert!(
        has("read /data/../../../../etc/passwd failed"),
        "{reports:#?}"
    );
    assert!(
        has("read /etc/passwd failed"),
        "no access outside preopens: {reports:#?}"
    );
    assert!(
        has("write /data/new.txt failed"),
        "read-only grant: {reports:#?}"
    );
    assert!(
        reports.contains("write /scratch/new.txt: ok"),
        "{reports:#?}"
    );
    assert!(reports.contains("mkdir /scratch/made: ok"), "{reports:#?}");
    assert!(
        has("rm /data/hello.txt failed"),
        "read-only grant: {reports:#?}"
    );
    assert!(s.path().join("scratch/made").is_dir());
    assert!(s.path().join("shared/hello.txt").exists());
    // Changes to a directory are audited like opens: allowed, and denied with the reason.
    let entries = s.audit(&["--agent", "probe"]);
    let entry = |target: &str| {
        entries
            .iter()
            .find(|e| e["capability"] == "files" && e["target"] == target)
            .unwrap_or_else(|| panic!("no files entry for {target:?}: {entries:#?}"))
    };
    assert_eq!(entry("mkdir made")["outcome"], "allowed");
    assert_eq!(entry("unlink hello.txt")["outcome"], "denied");
    assert!(!s.path().join("shared/new.txt").exists());
    assert_eq!(
        std::fs::read_to_string(s.path().join("scratch/new.txt")).unwrap(),
        "written by faulty"
    );
}

const NOISY: &str = r#"
name = "noisy"
version = "1.0.0"
component = "{plugins}/faulty.wasm"

[[subscribe]]
topic = "noisy.in.v1"

[limits]
log_rate = 50
publish_size = "1MiB"

[capabilities]
publish = ["noisy.out.v1"]
config = { out = "noisy.out.v1" }
"#;

#[test]
fn an_agent_cannot_flood_the_log_or_push_out_oversized_records() {
    let s = Scenario::new("");
    s.manifest("noisy", NOISY);
    let host = s.start();

    // 10,000 log lines in one invocation: at most 50 a second reach the host's log; the rest
    // are dropped and counted, and the event itself completes.
    publish(
        &host.url,
        "noisy.in.v1",
        Some("k"),
        "flood",
        Some("cid-flood"),
    )
    .unwrap();
    let out = consume(&host.url, "noisy.out.v1", 1, Duration::from_secs(30));
    assert_eq!(out.len(), 1, "log:\n{}", host.log_text());
    assert_eq!(out[0].payload.as_deref(), Some("flood"));
    let dropped = wait_for_metric(
        &host,
        "agenthost_log_lines_dropped_total{agent=\"noisy\"}",
        9_000.0,
        Duration::from_secs(10),
    );
    assert!(dropped >= 9_000.0, "only {dropped} lines dropped");
    let logged = host
        .log_text()
        .lines()
        .filter(|l| l.contains("flood"))
        .count();
    assert!(logged <= 150, "{logged} flood lines reached the host log");

    // A 2 MiB record against a 1 MiB limit: refused, naming the limit; the event is
    // dead-lettered at once, and the host keeps serving.
    publish(&host.url, "noisy.in.v1", Some("k"), "big", Some("cid-big")).unwrap();
    let dead = consume(
        &host.url,
        "agent.dead-letter.noisy.v1",
        1,
        Duration::from_secs(30),
    );
    assert_eq!(dead.len(), 1);
    let error = &dead[0].headers["agenthost-error"];
    assert!(error.contains("limits.publish_size"), "{error}");
    assert_eq!(dead[0].headers["agenthost-attempts"], "1");
    publish(&host.url, "noisy.in.v1", Some("k"), "still fine", None).unwrap();
    assert_eq!(
        consume(&host.url, "noisy.out.v1", 2, Duration::from_secs(30)).len(),
        2
    );
}
