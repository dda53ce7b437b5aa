//! The bus-level suite, run on the embedded bus and on Kafka (a real tansu broker) alike, so the
//! two cannot drift: real `agenthost serve` processes and components, driven through the HTTP
//! API and the CLI. Each scenario is a function of the bus; `on_both_buses!` makes the tests.

use agenthost_tests::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const ECHO: &str = r#"
name = "echo"
version = "1.0.0"
component = "{plugins}/echo.wasm"

[[subscribe]]
topic = "demo.in.v1"

[delivery]
max_attempts = 3
backoff = "50ms"

[capabilities]
publish = ["demo.out.v1"]
config = { out = "demo.out.v1" }
"#;

fn events_flow_through_echo_with_correlation_and_provenance(bus: TestBus) {
    let s = Scenario::on(&bus);
    s.manifest("echo", ECHO);
    let host = s.start();

    let mut sent = BTreeMap::new();
    for i in 0..20 {
        let cid = format!("cid-{i}");
        publish(
            &host.url,
            "demo.in.v1",
            Some(&format!("key-{}", i % 3)),
            &format!("{{\"n\":{i}}}"),
            Some(&cid),
        )
        .unwrap();
        sent.insert(cid, format!("{{\"n\":{i}}}"));
    }
    let out = consume(&host.url, "demo.out.v1", 20, Duration::from_secs(30));
    assert_eq!(out.len(), 20, "log:\n{}", host.log_text());
    for r in &out {
        let cid = &r.headers["correlation-id"];
        assert_eq!(r.payload.as_ref(), sent.get(cid), "payload kept for {cid}");
        assert_eq!(r.headers["agenthost-agent"], "echo");
        assert_eq!(r.headers["agenthost-agent-version"], "1.0.0");
        let n: usize = cid.trim_start_matches("cid-").parse().unwrap();
        assert_eq!(
            r.key.as_deref(),
            Some(format!("key-{}", n % 3).as_str()),
            "key kept"
        );
    }
    // Order is kept per key (each key maps to one partition).
    let mut last_per_key: BTreeMap<String, usize> = BTreeMap::new();
    for r in out.iter().filter(|r| r.partition == out[0].partition) {
        let n: usize = r.headers["correlation-id"]
            .trim_start_matches("cid-")
            .parse()
            .unwrap();
        let key = r.key.clone().unwrap();
        if let Some(prev) = last_per_key.insert(key, n) {
            assert!(prev < n, "order within a partition");
        }
    }
    assert!(
        metric_value(
            &host.metrics(),
            "agenthost_invocations_total{agent=\"echo\",version=\"1.0.0\",kind=\"event\",outcome=\"ok\"}"
        ) >= 20.0
    );

    // The CLI sees the same thing: publish with a header, consume as JSON lines.
    let published = s.cli(&[
        "publish",
        "demo.in.v1",
        "--key",
        "k",
        "--header",
        "correlation-id=from-cli",
        "hello",
    ]);
    assert!(published.status.success(), "{}", describe(&published));
    assert!(String::from_utf8_lossy(&published.stdout).contains("correlation-id=from-cli"));
    let consumed = s.cli(&[
        "consume",
        "demo.out.v1",
        "--from-beginning",
        "--count",
        "21",
        "--timeout",
        "20s",
        "--format",
        "json",
    ]);
    assert!(consumed.status.success(), "{}", describe(&consumed));
    let lines: Vec<WireRecord> = String::from_utf8_lossy(&consumed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 21);
    assert!(lines.iter().any(
        |r| r.payload.as_deref() == Some("hello") && r.headers["correlation-id"] == "from-cli"
    ));

    // Many records in one call from a JSONL file; text output with --headers shows them.
    let records = s.path().join("records.jsonl");
    std::fs::write(
        &records,
        concat!(
            "{\"payload\": \"one\"}\n",
            "\n",
            "{\"payload\": \"two\", \"key\": \"k2\", \"headers\": {\"source\": \"file\"}}\n",
            "{\"payload_base64\": \"dGhyZWU=\"}\n",
        ),
    )
    .unwrap();
    let published = s.cli(&["publish", "cli.batch.v1", "--file", "records.jsonl"]);
    assert!(published.status.success(), "{}", describe(&published));
    assert_eq!(
        String::from_utf8_lossy(&published.stdout)
            .lines()
            .filter(|l| l.starts_with("published to cli.batch.v1["))
            .count(),
        3,
        "{}",
        describe(&published)
    );
    // A line that is not a record is named, and nothing of the file is published.
    std::fs::write(&records, "{\"payload\": \"four\"}\nnot a record\n").unwrap();
    let refused = s.cli(&["publish", "cli.batch.v1", "--file", "records.jsonl"]);
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("records.jsonl:2: expected a record"),
        "{}",
        describe(&refused)
    );
    let consumed = s.cli(&[
        "consume",
        "cli.batch.v1",
        "--from-beginning",
        "--headers",
        "--count",
        "3",
        "--timeout",
        "20s",
    ]);
    assert!(consumed.status.success(), "{}", describe(&consumed));
    let text = String::from_utf8_lossy(&consumed.stdout);
    let payloads: Vec<&str> = text
        .lines()
        .map(|l| l.rsplit_once(' ').map_or("", |(_, p)| p))
        .collect();
    let mut sorted = payloads.clone();
    sorted.sort();
    assert_eq!(sorted, ["one", "three", "two"], "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains(" key=k2 [") && l.contains("source=file") && l.ends_with(" two")),
        "{text}"
    );
    // Without --headers, none.
    let plain = s.cli(&[
        "consume",
        "cli.batch.v1",
        "--from-beginning",
        "--count",
        "3",
        "--timeout",
        "20s",
    ]);
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains("source=file"),
        "{}",
        describe(&plain)
    );
}

fn a_kill_9_mid_stream_loses_nothing(bus: TestBus) {
    let s = Scenario::on(&bus);
    s.manifest("slow-echo", SLOW_ECHO);
    let mut host = s.start();
    let url = host.url.clone();

    // Publish from another thread while the host is killed under it; only what the host
    // acknowledged counts as accepted.
    let published = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = published.clone();
    let publisher = std::thread::spawn(move || {
        let mut accepted = Vec::new();
        for i in 0..400 {
            let payload = format!("slow:{i}");
            match publish(
                &url,
                "work.in.v1",
                Some(&format!("p{}", i % 8)),
                &payload,
                Some(&payload),
            ) {
                Ok(_) => {
                    accepted.push(payload);
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(_) => break,
            }
        }
        accepted
    });
    // Kill once a good part of the stream is in, with a backlog still unhandled (the agent
    // takes 20 ms an event; on a busy machine the publisher may need a moment to get ahead).
    wait_for_metric(
        &host,
        "agenthost_invocations_total",
        30.0,
        Duration::from_secs(60),
    );
    let ahead_by = std::time::Instant::now() + Duration::from_secs(30);
    let mut handled_before_kill = metric_value(&host.metrics(), "agenthost_invocations_total");
    while (published.load(std::sync::atomic::Ordering::Relaxed) as f64) < handled_before_kill + 20.0
        && std::time::Instant::now() < ahead_by
    {
        std::thread::sleep(Duration::from_millis(20));
        handled_before_kill = metric_value(&host.metrics(), "agenthost_invocations_total");
    }
    host.kill9();
    let mut accepted = publisher.join().unwrap();
    let killed_at = accepted.len();
    let backlog = killed_at.saturating_sub(handled_before_kill as usize);
    assert!(
        backlog > 0,
        "the kill must land mid-stream: {killed_at} accepted, {handled_before_kill} handled"
    );

    let host = s.start();
    for i in 0..20 {
        let payload = format!("slow:after-{i}");
        publish(&host.url, "work.in.v1", None, &payload, Some(&payload)).unwrap();
        accepted.push(payload);
    }
    let expected: BTreeSet<&str> = accepted.iter().map(String::as_str).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut outputs;
    loop {
        outputs = consume(
            &host.url,
            "work.out.v1",
            usize::MAX >> 1,
            Duration::from_secs(2),
        );
        let seen: BTreeSet<&str> = outputs
            .iter()
            .filter_map(|r| r.payload.as_deref())
            .collect();
        if expected.is_subset(&seen) || std::time::Instant::now() > deadline {
            let missing: Vec<_> = expected.difference(&seen).collect();
            assert!(
                missing.is_empty(),
                "{} accepted events produced no output: {:?}\nlog after the restart:\n{}",
                missing.len(),
                &missing[..missing.len().min(10)],
                host.log_text()
            );
            break;
        }
    }
    // Replays are bounded by what was read and unfinished when the host died (a partition
    // worker reads at most 2 × `delivery.concurrency` = 8 records ahead of its committed offset,
    // and there are 4 partitions; slow-echo `publish`es, so no handled record of its waits on
    // acknowledgements, which would widen that) plus, on Kafka, what finished within the last commit
    // interval — never the backlog or the whole stream. slow-echo finishes at most 4 × 50
    // records a second.
    let duplicates = outputs.len() - expected.len();
    let bound = 4 * 8 + (200.0 * bus.replay_window().as_secs_f64()) as usize;
    eprintln!(
        "kill -9 with {killed_at} accepted and a backlog of {backlog}: {} outputs, {duplicates} duplicates",
        outputs.len()
    );
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates after one kill -9 (bound {bound})"
    );
}

fn failures_are_retried_then_dead_lettered_with_the_reason(bus: TestBus) {
    let s = Scenario::on(&bus);
    s.manifest("faulty", FAULTY);
    let host = s.start();

    publish(
        &host.url,
        "faulty.in.v1",
        Some("a"),
        "trap",
        Some("cid-trap"),
    )
    .unwrap();
    publish(
        &host.url,
        "faulty.in.v1",
        Some("b"),
        "reject",
        Some("cid-reject"),
    )
    .unwrap();
    publish(
        &host.url,
        "faulty.in.v1",
        Some("c"),
        "loop",
        Some("cid-loop"),
    )
    .unwrap();
    publish(
        &host.url,
        "faulty.in.v1",
        Some("d"),
        "alloc",
        Some("cid-alloc"),
    )
    .unwrap();
    publish(
        &host.url,
        "faulty.in.v1",
        Some("e"),
        "fine",
        Some("cid-fine"),
    )
    .unwrap();
    // Behind the poison event, on its key and so its partition: the partition moves on.
    publish(
        &host.url,
        "faulty.in.v1",
        Some("a"),
        "behind-the-poison",
        Some("cid-behind"),
    )
    .unwrap();

    let dead = consume(
        &host.url,
        "faulty.dead-letter.v1",
        4,
        Duration::from_secs(60),
    );
    assert_eq!(dead.len(), 4, "log:\n{}", host.log_text());
    let by_cid: BTreeMap<&str, &WireRecord> = dead
        .iter()
        .map(|r| (r.headers["correlation-id"].as_str(), r))
        .collect();

    let trap = by_cid["cid-trap"];
    assert_eq!(
        trap.headers["agenthost-attempts"], "3",
        "a trap is retried up to max_attempts"
    );
    assert!(
        trap.headers["agenthost-error"].contains("trapped"),
        "{:?}",
        trap.headers
    );
    assert!(
        trap.headers["agenthost-error"].contains("asked to trap"),
        "the guest's panic message is kept: {:?}",
        trap.headers
    );
    assert_eq!(trap.headers["agenthost-agent"], "faulty");
    assert_eq!(trap.headers["agenthost-agent-version"], "0.3.0");
    assert_eq!(trap.headers["agenthost-source-topic"], "faulty.in.v1");
    assert_eq!(
        trap.payload.as_deref(),
        Some("trap"),
        "the original payload is dead-lettered"
    );

    let reject = by_cid["cid-reject"];
    assert_eq!(
        reject.headers["agenthost-attempts"], "1",
        "a rejection is not retried"
    );
    assert!(reject.headers["agenthost-error"].contains("asked to reject"));

    let looped = by_cid["cid-loop"];
    assert!(
        looped.headers["agenthost-error"].contains("limits.timeout"),
        "{:?}",
        looped.headers
    );

    let alloc = by_cid["cid-alloc"];
    assert!(
        alloc.headers["agenthost-error"].contains("limits.memory"),
        "{:?}",
        alloc.headers
    );

    // Neighbours are unaffected: the good events went through — including the one queued
    // behind the poison event in its partition — and the host still serves.
    let out = consume(&host.url, "faulty.out.v1", 2, Duration::from_secs(20));
    let payloads: BTreeSet<_> = out.iter().filter_map(|r| r.payload.as_deref()).collect();
    assert_eq!(payloads, BTreeSet::from(["fine", "behind-the-poison"]));
    let metrics = host.metrics();
    assert_eq!(
        metric_value(
            &metrics,
            "agenthost_dead_letters_total{agent=\"faulty\",version=\"0.3.0\"}"
        ),
        4.0
    );
    // What the invocations used, per version: memory and fuel observed, no instance left busy.
    let per_version = "{agent=\"faulty\",version=\"0.3.0\"}";
    assert!(
        metric_value(
            &metrics,
            &format!("agenthost_invocation_memory_bytes_count{per_version}")
        ) >= 6.0
    );
    assert!(
        metric_value(
            &metrics,
            &format!("agenthost_fuel_consumed_total{per_version}")
        ) > 0.0
    );
    assert!(
        metrics.contains(&format!("agenthost_instances_in_use{per_version} 0")),
        "{metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            "agenthost_invocations_total{agent=\"faulty\",version=\"0.3.0\",kind=\"event\",outcome=\"trap\"}"
        ),
        3.0
    );
}

fn a_denied_publish_is_seen_by_the_agent_and_dead_lettered(bus: TestBus) {
    let s = Scenario::on(&bus);
    // echo is told to publish to a topic its manifest does not grant.
    s.manifest(
        "echo",
        &ECHO.replace(
            "config = { out = \"demo.out.v1\" }",
            "config = { out = \"secret.topic.v1\" }",
        ),
    );
    let host = s.start();
    publish(&host.url, "demo.in.v1", None, "sneaky", Some("cid-denied")).unwrap();
    let dead = consume(
        &host.url,
        "agent.dead-letter.echo.v1",
        1,
        Duration::from_secs(30),
    );
    assert_eq!(dead.len(), 1, "log:\n{}", host.log_text());
    let error = &dead[0].headers["agenthost-error"];
    assert!(
        error.contains("may not publish to \"secret.topic.v1\""),
        "{error}"
    );
    assert_eq!(
        dead[0].headers["agenthost-attempts"], "1",
        "a denial is permanent: no retries"
    );
    assert!(consume(&host.url, "secret.topic.v1", 1, Duration::from_secs(5)).is_empty());
    assert_eq!(
        metric_value(
            &host.metrics(),
            "agenthost_agent_publishes_total{agent=\"echo\",outcome=\"denied\"}"
        ),
        1.0
    );
}

fn sigterm_exits_cleanly_and_a_restart_resumes_after_committed_offsets(bus: TestBus) {
    let s = Scenario::on(&bus);
    s.manifest("echo", ECHO);
    let mut host = s.start();
    for i in 0..10 {
        publish(&host.url, "demo.in.v1", None, &format!("first-{i}"), None).unwrap();
    }
    assert_eq!(
        consume(&host.url, "demo.out.v1", 10, Duration::from_secs(30)).len(),
        10
    );
    let status = host.terminate();
    assert!(status.success(), "SIGTERM exits 0, got {status}");

    let host = s.start();
    publish(&host.url, "demo.in.v1", None, "second", None).unwrap();
    let out = consume(&host.url, "demo.out.v1", 11, Duration::from_secs(30));
    assert_eq!(out.len(), 11);
    // Nothing was handled twice: committed offsets survived the restart.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        consume(&host.url, "demo.out.v1", 100, Duration::from_secs(5)).len(),
        11
    );
}

fn reused_instances_keep_each_events_correlation_and_drop_after_a_trap(bus: TestBus) {
    let s = Scenario::on(&bus);
    s.manifest(
        "faulty",
        &FAULTY
            .replace(
                "[limits]\n",
                "[limits]\nreuse_instances = true\ninstances = 2\n",
            )
            .replace("max_attempts = 3", "max_attempts = 1"),
    );
    let host = s.start();
    for i in 0..30 {
        let cid = format!("reuse-{i}");
        let payload = if i == 10 {
            "trap".to_string()
        } else {
            format!("event-{i}")
        };
        publish(
            &host.url,
            "faulty.in.v1",
            Some(&format!("k{}", i % 4)),
            &payload,
            Some(&cid),
        )
        .unwrap();
    }
    let out = consume(&host.url, "faulty.out.v1", 29, Duration::from_secs(30));
    assert_eq!(out.len(), 29, "log:\n{}", host.log_text());
    for r in &out {
        // Every output carries its own event's correlation id, not the one a reused instance
        // served before.
        let n = r.headers["correlation-id"].trim_start_matches("reuse-");
        assert_eq!(r.payload.as_deref(), Some(format!("event-{n}").as_str()));
    }
    let dead = consume(
        &host.url,
        "faulty.dead-letter.v1",
        1,
        Duration::from_secs(10),
    );
    assert_eq!(dead[0].headers["correlation-id"], "reuse-10");
    assert!(dead[0].headers["agenthost-error"].contains("asked to trap"));
    // At most `instances` warm instances, plus the one the trap discarded (and the card read
    // at deploy) — not one per event.
    let created = metric_value(
        &host.metrics(),
        "agenthost_instantiations_total{agent=\"faulty\",version=\"0.3.0\"}",
    );
    assert!(
        (2.0..=6.0).contains(&created),
        "{created} instances for 30 events"
    );
}

/// `delivery.batch`: a backlog goes to `faulty` (which exports `on-events`) several records per
/// invocation. Each record still ends on its own: outputs carry their own event's correlation
/// id, a key's outputs come in order, a rejected record and a trapping one (which fails its
/// whole batch; the batch's other records are retried one at a time and succeed) are
/// dead-lettered under their own correlation ids, and no instance is made per record.
fn a_backlog_goes_to_the_agent_in_batches_and_each_record_ends_on_its_own(bus: TestBus) {
    let s = Scenario::on(&bus);
    // The backlog is in the topic before the agent is deployed, so batches fill up.
    let host = s.start();
    const COUNT: usize = 80;
    // A batch holds one record per key: many keys per partition, so batches can fill.
    const KEYS: usize = 40;
    let payload = |i: usize| match i {
        21 => "reject".to_string(),
        50 => "trap".to_string(),
        i => format!("event-{i}"),
    };
    for i in 0..COUNT {
        publish(
            &host.url,
            "faulty.in.v1",
            Some(&format!("k{}", i % KEYS)),
            &payload(i),
            Some(&format!("batch-{i}")),
        )
        .unwrap();
    }
    let manifest = s.manifest(
        "faulty",
        &FAULTY
            .replace("[delivery]\n", "[delivery]\nbatch = 16\n")
            .replace("max_attempts = 3", "max_attempts = 2"),
    );
    let deployed = s.cli(&["deploy", manifest.to_str().unwrap()]);
    assert!(deployed.status.success(), "{}", describe(&deployed));

    let dead = consume(
        &host.url,
        "faulty.dead-letter.v1",
        2,
        Duration::from_secs(60),
    );
    assert_eq!(dead.len(), 2, "log:\n{}", host.log_text());
    let dead_cids: BTreeSet<&str> = dead
        .iter()
        .map(|r| r.headers["correlation-id"].as_str())
        .collect();
    assert_eq!(dead_cids, BTreeSet::from(["batch-21", "batch-50"]));
    let reject = dead
        .iter()
        .find(|r| r.headers["correlation-id"] == "batch-21");
    assert_eq!(reject.unwrap().headers["agenthost-attempts"], "1");

    // The trap fails its whole batch; the records before it in the batch had sent their copies
    // already, so those may come twice (at-least-once). Every other record comes at least once.
    let out = consume(&host.url, "faulty.out.v1", 200, Duration::from_secs(10));
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    let mut last_per_key: BTreeMap<String, usize> = BTreeMap::new();
    for r in &out {
        let cid = &r.headers["correlation-id"];
        let n: usize = cid.trim_start_matches("batch-").parse().unwrap();
        // Attributed to its own event: the payload is the one sent with that correlation id.
        assert_eq!(r.payload.as_deref(), Some(payload(n).as_str()), "{cid}");
        assert_eq!(r.key.as_deref(), Some(format!("k{}", n % KEYS).as_str()));
        *seen.entry(n).or_default() += 1;
        // A key's outputs in order (a redelivered record repeats, it never goes back).
        if let Some(prev) = last_per_key.insert(r.key.clone().unwrap(), n) {
            assert!(prev <= n, "key {:?}: {n} after {prev}", r.key);
        }
    }
    let expected: BTreeSet<usize> = (0..COUNT).filter(|i| ![21, 50].contains(i)).collect();
    assert_eq!(
        seen.keys().copied().collect::<BTreeSet<_>>(),
        expected,
        "log:\n{}",
        host.log_text()
    );
    let repeated = seen.values().filter(|c| **c > 1).count();
    assert!(
        repeated < 16,
        "{repeated} records came twice: only the trap's batch may repeat"
    );

    // Fresh instances (no reuse): one per batch and per retry, not one per record.
    let created = metric_value(
        &host.metrics(),
        "agenthost_instantiations_total{agent=\"faulty\",version=\"0.3.0\"}",
    );
    assert!(
        created < (COUNT / 2) as f64,
        "{created} instances for {COUNT} records in batches of up to 16"
    );
    // Invocations are counted per record, as without batches.
    let ok = metric_value(
        &host.metrics(),
        "agenthost_invocations_total{agent=\"faulty\",version=\"0.3.0\",kind=\"event\",outcome=\"ok\"}",
    );
    assert!(ok >= (COUNT - 2) as f64, "{ok} ok invocations");
}

/// `delivery.mode = "exactly-once"` needs broker transactions. Neither test bus has them — the
/// embedded bus none at all, tansu 0.6 no EndTxn — so the agent is refused at deploy with the
/// reason, never silently run at-least-once, and the same agent at-least-once serves.
fn exactly_once_is_refused_without_broker_transactions(bus: TestBus) {
    let s = Scenario::on(&bus);
    let host = s.start();
    let exactly_once = ECHO.replace("[delivery]", "[delivery]\nmode = \"exactly-once\"");
    let manifest = s.manifest("echo", &exactly_once);
    let out = s.cli(&["deploy", manifest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("exactly-once") && stderr.contains("transactions"),
        "{stderr}"
    );
    match bus {
        TestBus::Local => assert!(stderr.contains("local bus has none"), "{stderr}"),
        // librdkafka names the missing request.
        TestBus::Kafka(_) => assert!(
            stderr.contains("does not support") && stderr.contains("EndTxn"),
            "{stderr}"
        ),
    }
    let agents = s.cli(&["agents"]);
    assert!(
        String::from_utf8_lossy(&agents.stdout).contains("refused"),
        "{}",
        describe(&agents)
    );

    let manifest = s.manifest("echo", ECHO);
    let out = s.cli(&["deploy", manifest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    publish(&host.url, "demo.in.v1", None, "after", Some("cid-after")).unwrap();
    let got = consume(&host.url, "demo.out.v1", 1, Duration::from_secs(30));
    assert_eq!(got.len(), 1, "log:\n{}", host.log_text());
    assert_eq!(got[0].headers["correlation-id"], "cid-after");
}

/// Two agents on one single-partition topic, one per `delivery.ordering`; each writes its
/// outputs and dead letters to one topic of its own, so that topic's order is the order the
/// agent finished records in.
const ORDERED: &str = r#"
name = "{name}"
version = "1.0.0"
component = "{plugins}/faulty.wasm"

[[subscribe]]
topic = "ordering.in.v1"

[delivery]
max_attempts = 3
backoff = "1s"
dead_letter = "{name}.out.v1"
ordering = "{ordering}"

[capabilities]
publish = ["{name}.out.v1"]
config = { out = "{name}.out.v1" }
"#;

fn a_key_in_backoff_holds_up_its_own_key_only_unless_ordering_is_per_partition(bus: TestBus) {
    let one_partition = match &bus {
        TestBus::Local => "[bus.local]\npartitions = 1\n".to_owned(),
        TestBus::Kafka(_) => format!("{}partitions = 1\n", bus.config()),
    };
    let s = Scenario::new(&one_partition);
    for (name, ordering) in [("per-key", "key"), ("per-partition", "partition")] {
        s.manifest(
            name,
            &ORDERED
                .replace("{name}", name)
                .replace("{ordering}", ordering),
        );
    }
    let host = s.start();
    // Key a's first record traps (three attempts, 1 s + 2 s of backoff, then a dead letter);
    // key b's records come right behind it in the same partition.
    let mut inputs = vec![("a", "trap".to_owned())];
    inputs.extend((0..5).map(|i| ("b", format!("b-{i}"))));
    inputs.push(("a", "a-after".to_owned()));
    for (key, payload) in &inputs {
        publish(
            &host.url,
            "ordering.in.v1",
            Some(key),
            payload,
            Some(payload),
        )
        .unwrap();
    }
    let finished_order = |agent: &str| -> Vec<String> {
        consume(
            &host.url,
            &format!("{agent}.out.v1"),
            7,
            Duration::from_secs(60),
        )
        .into_iter()
        .filter_map(|r| r.payload)
        .collect()
    };
    // Per key: b's records do not wait for a's backoff; a's next record waits for its dead
    // letter.
    assert_eq!(
        finished_order("per-key"),
        ["b-0", "b-1", "b-2", "b-3", "b-4", "trap", "a-after"],
        "log:\n{}",
        host.log_text()
    );
    // Per partition: everything waits for the record before it.
    assert_eq!(
        finished_order("per-partition"),
        ["trap", "b-0", "b-1", "b-2", "b-3", "b-4", "a-after"],
        "log:\n{}",
        host.log_text()
    );
}

/// A version upgrade and a rollback while events stream in: nothing is lost or handled twice,
/// every output names the version that handled it, and each partition's events (in offset
/// order) switch version once per deployment.
fn a_swap_and_a_rollback_under_load_lose_and_repeat_nothing(bus: TestBus) {
    let s = Scenario::on(&bus);
    s.manifest("echo", ECHO);
    let host = s.start();
    let upgrade = s.path().join("echo-2.toml");
    std::fs::write(
        &upgrade,
        ECHO.replace("1.0.0", "2.0.0").replace(
            "{plugins}",
            &target_dir().join("plugins").display().to_string(),
        ),
    )
    .unwrap();

    const EVENTS: usize = 2000;
    let url = host.url.clone();
    let published = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = published.clone();
    let publisher = std::thread::spawn(move || {
        // payload → (partition, offset) of the input record
        let mut stored = BTreeMap::new();
        for i in 0..EVENTS {
            let payload = format!("event-{i:05}");
            let at = publish_stored(
                &url,
                "demo.in.v1",
                Some(&format!("key-{}", i % 16)),
                &payload,
                Some(&payload),
            )
            .unwrap();
            stored.insert(payload, (at.partition, at.offset));
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        stored
    });
    let wait_published = |n: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while published.load(std::sync::atomic::Ordering::Relaxed) < n {
            assert!(std::time::Instant::now() < deadline, "publishing stalled");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_published(EVENTS / 3);
    let deployed = s.cli(&["deploy", upgrade.to_str().unwrap()]);
    assert!(deployed.status.success(), "{}", describe(&deployed));
    wait_published(2 * EVENTS / 3);
    let rolled_back = s.cli(&["rollback", "echo"]);
    assert!(rolled_back.status.success(), "{}", describe(&rolled_back));
    let stored = publisher.join().unwrap();

    let out = consume(&host.url, "demo.out.v1", EVENTS, Duration::from_secs(120));
    assert_eq!(out.len(), EVENTS, "log:\n{}", host.log_text());
    // Nothing more trickles in: no event was handled twice.
    let again = consume(&host.url, "demo.out.v1", EVENTS + 1, Duration::from_secs(2));
    assert_eq!(again.len(), EVENTS, "duplicates after the swaps");
    let mut by_partition: BTreeMap<u32, Vec<(u64, String)>> = BTreeMap::new();
    for r in &out {
        let payload = r.payload.clone().unwrap();
        let (partition, offset) = stored[&payload];
        let version = r.headers["agenthost-agent-version"].clone();
        by_partition
            .entry(partition)
            .or_default()
            .push((offset, version));
    }
    let handled: BTreeSet<&str> = out.iter().filter_map(|r| r.payload.as_deref()).collect();
    assert_eq!(handled.len(), EVENTS, "every event handled once");
    let mut versions_seen = BTreeSet::new();
    let mut rolled_back_partitions = 0;
    for (partition, mut events) in by_partition {
        events.sort();
        let mut runs: Vec<&str> = Vec::new();
        for (_, version) in &events {
            versions_seen.insert(version.clone());
            if runs.last() != Some(&version.as_str()) {
                runs.push(version);
            }
        }
        assert!(
            runs.len() <= 3 && runs.iter().all(|v| ["1.0.0", "2.0.0"].contains(v)),
            "partition {partition} went through versions {runs:?}"
        );
        if runs.len() == 3 {
            assert_eq!(runs, ["1.0.0", "2.0.0", "1.0.0"]);
            rolled_back_partitions += 1;
        }
    }
    assert!(
        rolled_back_partitions > 0,
        "no partition saw the upgrade and the rollback mid-stream"
    );
    assert_eq!(
        versions_seen,
        BTreeSet::from(["1.0.0".to_owned(), "2.0.0".to_owned()]),
        "both versions served part of the stream"
    );
}

/// SIGTERM while a backlog is being worked through: in-flight invocations finish, their offsets
/// are committed, the process exits 0, and a restart handles the rest — nothing lost, and
/// nothing handled twice.
fn sigterm_under_load_finishes_in_flight_work_and_loses_nothing(bus: TestBus) {
    let s = Scenario::on(&bus);
    s.manifest("slow-echo", SLOW_ECHO);
    let mut host = s.start();
    let mut accepted = BTreeSet::new();
    for i in 0..200 {
        let payload = format!("slow:{i}");
        publish(
            &host.url,
            "work.in.v1",
            Some(&format!("k{}", i % 8)),
            &payload,
            Some(&payload),
        )
        .unwrap();
        accepted.insert(payload);
    }
    // Mid-backlog: slow-echo takes 20 ms an event, 4 at a time.
    wait_for_metric(
        &host,
        "agenthost_invocations_total",
        40.0,
        Duration::from_secs(60),
    );
    let handled = metric_value(&host.metrics(), "agenthost_invocations_total");
    assert!(
        handled < 200.0,
        "the SIGTERM must land mid-backlog: {handled} handled"
    );
    let status = host.terminate();
    assert!(status.success(), "SIGTERM exits 0, got {status}");
    let log = host.log_text();
    assert!(
        !log.contains("it will be redelivered"),
        "in-flight work finished within the bound:\n{log}"
    );

    let host = s.start();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let out = loop {
        let out = consume(
            &host.url,
            "work.out.v1",
            usize::MAX >> 1,
            Duration::from_secs(2),
        );
        let seen: BTreeSet<String> = out.iter().filter_map(|r| r.payload.clone()).collect();
        if accepted.is_subset(&seen) {
            break out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} accepted events produced no output\nlog after the restart:\n{}",
            accepted.difference(&seen).count(),
            host.log_text()
        );
    };
    assert_eq!(
        out.len(),
        accepted.len(),
        "a graceful shutdown commits what it finished: nothing is handled twice\nlog before the SIGTERM:\n{log}\nlog after the restart:\n{}",
        host.log_text()
    );
}

macro_rules! on_both_buses {
    ($($name:ident),* $(,)?) => {
        mod local {
            $( #[test] fn $name() { super::$name(agenthost_tests::TestBus::local()) } )*
        }
        mod kafka {
            $( #[test] fn $name() { super::$name(agenthost_tests::TestBus::kafka()) } )*
        }
    };
}

on_both_buses!(
    events_flow_through_echo_with_correlation_and_provenance,
    a_kill_9_mid_stream_loses_nothing,
    failures_are_retried_then_dead_lettered_with_the_reason,
    a_denied_publish_is_seen_by_the_agent_and_dead_lettered,
    sigterm_exits_cleanly_and_a_restart_resumes_after_committed_offsets,
    reused_instances_keep_each_events_correlation_and_drop_after_a_trap,
    exactly_once_is_refused_without_broker_transactions,
    a_key_in_backoff_holds_up_its_own_key_only_unless_ordering_is_per_partition,
    a_swap_and_a_rollback_under_load_lose_and_repeat_nothing,
    sigterm_under_load_finishes_in_flight_work_and_loses_nothing,
    a_backlog_goes_to_the_agent_in_batches_and_each_record_ends_on_its_own
);
