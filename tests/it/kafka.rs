//! Kafka-only behaviour, against a real tansu broker: an independent client (Python
//! confluent-kafka) on both ends, a frozen broker, and a rebalance between two host processes.

use agenthost_tests::*;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

const ECHO: &str = r#"
name = "echo"
version = "1.4.2"
component = "{plugins}/echo.wasm"

[[subscribe]]
topic = "orders.received.v1"

[capabilities]
publish = ["orders.echoed.v1"]
config = { out = "orders.echoed.v1" }
"#;

#[test]
fn an_independent_kafka_client_sees_every_output_with_its_correlation_id() {
    let bus = TestBus::kafka();
    let TestBus::Kafka(broker) = &bus else {
        unreachable!()
    };
    let s = Scenario::on(&bus);
    s.manifest("echo", ECHO);
    let host = s.start();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/roundtrip.py");
    let out = Command::new("python3")
        .arg(script)
        .args([
            &broker.address(),
            "orders.received.v1",
            "orders.echoed.v1",
            "50",
            "echo",
            "1.4.2",
            "90",
        ])
        .output()
        .expect("python3 (cargo xtask test installs confluent-kafka)");
    assert!(
        out.status.success(),
        "{}\nhost log:\n{}",
        describe(&out),
        host.log_text()
    );
}

/// Outputs of `topic` from the beginning, read until `expected` payloads all appeared (or the
/// deadline passed); returns every record read.
fn outputs_until(
    host: &HostProcess,
    topic: &str,
    expected: &BTreeSet<String>,
    limit: Duration,
) -> Vec<WireRecord> {
    let deadline = Instant::now() + limit;
    loop {
        let out = consume(&host.url, topic, usize::MAX >> 1, Duration::from_secs(3));
        let seen: BTreeSet<String> = out.iter().filter_map(|r| r.payload.clone()).collect();
        if expected.is_subset(&seen) || Instant::now() > deadline {
            let missing: Vec<_> = expected.difference(&seen).take(10).collect();
            assert!(
                missing.is_empty(),
                "{} accepted events produced no output, e.g. {missing:?}\nhost log:\n{}",
                expected.difference(&seen).count(),
                host.log_text()
            );
            return out;
        }
    }
}

#[test]
fn a_frozen_broker_loses_nothing_and_the_host_recovers_by_itself() {
    let bus = TestBus::kafka();
    let TestBus::Kafka(broker) = &bus else {
        unreachable!()
    };
    let s = Scenario::on(&bus);
    s.manifest("slow-echo", SLOW_ECHO);
    let host = s.start();
    let url = host.url.clone();
    let publisher = std::thread::spawn(move || {
        let mut accepted = BTreeSet::new();
        for i in 0..300 {
            let payload = format!("slow:{i}");
            // A publish during the freeze waits for the broker; one that fails is simply not
            // accepted (the caller would retry), and must not appear as lost.
            if publish(
                &url,
                "work.in.v1",
                Some(&format!("k{}", i % 8)),
                &payload,
                Some(&payload),
            )
            .is_ok()
            {
                accepted.insert(payload);
            }
        }
        accepted
    });
    wait_for_metric(
        &host,
        "agenthost_invocations_total",
        40.0,
        Duration::from_secs(60),
    );
    // Several seconds, within the group's session timeout (6 s, heartbeats every second): the
    // broker stalls, the group stays intact, every publish and commit in flight waits and then
    // goes through.
    broker.freeze();
    std::thread::sleep(Duration::from_secs(3));
    broker.thaw();
    let accepted = publisher.join().unwrap();
    assert!(
        accepted.len() >= 250,
        "only {} of 300 publishes were accepted around a 3 s freeze",
        accepted.len()
    );
    let out = outputs_until(&host, "work.out.v1", &accepted, Duration::from_secs(120));
    // The host is still healthy and keeps processing new work.
    publish(
        &host.url,
        "work.in.v1",
        None,
        "slow:after-thaw",
        Some("after-thaw"),
    )
    .unwrap();
    let after: BTreeSet<String> = ["slow:after-thaw".to_string()].into();
    outputs_until(&host, "work.out.v1", &after, Duration::from_secs(60));
    eprintln!("freeze: {} accepted, {} outputs", accepted.len(), out.len());
}

#[test]
fn a_rebalance_between_two_hosts_loses_nothing_and_keeps_per_key_order() {
    let bus = TestBus::kafka();
    // Two hosts, each with its own data directory and port, one consumer group.
    let a = Scenario::on(&bus);
    let b = Scenario::on(&bus);
    a.manifest("slow-echo", SLOW_ECHO);
    b.manifest("slow-echo", SLOW_ECHO);
    let host_a = a.start();

    // Publish at a steady pace (below what one host can handle) until the second host has
    // clearly taken over part of the group, so the rebalance happens mid-stream.
    let keys = 8;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let url = host_a.url.clone();
    let stop_publishing = stop.clone();
    let publisher = std::thread::spawn(move || {
        let mut accepted = BTreeSet::new();
        let mut seq = 0;
        while !stop_publishing.load(std::sync::atomic::Ordering::Relaxed) && seq < 200 {
            for key in 0..keys {
                let payload = format!("slow:{key}:{seq:04}");
                publish(
                    &url,
                    "work.in.v1",
                    Some(&format!("key-{key}")),
                    &payload,
                    Some(&payload),
                )
                .unwrap();
                accepted.insert(payload);
            }
            seq += 1;
            std::thread::sleep(Duration::from_millis(60));
        }
        accepted
    });
    wait_for_metric(
        &host_a,
        "agenthost_invocations_total",
        30.0,
        Duration::from_secs(60),
    );
    // A second member joins mid-stream: the group rebalances and splits the partitions.
    let host_b = b.start();
    let b_started = wait_for_metric(
        &host_b,
        "agenthost_invocations_total",
        40.0,
        Duration::from_secs(90),
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let accepted = publisher.join().unwrap();
    assert!(
        b_started >= 40.0,
        "the second host never got partitions; log:\n{}",
        host_b.log_text()
    );
    let out = outputs_until(&host_a, "work.out.v1", &accepted, Duration::from_secs(180));

    // Both members did part of the work.
    let done_a = metric_value(&host_a.metrics(), "agenthost_invocations_total");
    let done_b = metric_value(&host_b.metrics(), "agenthost_invocations_total");
    assert!(
        done_a > 0.0 && done_b > 0.0,
        "work was not shared: a={done_a} b={done_b}"
    );
    // Lag is exported per group and partition (from librdkafka's statistics, every 5 s).
    let lag_line = "agenthost_consumer_lag{group=\"slow-echo\",topic=\"work.in.v1\"";
    let deadline = Instant::now() + Duration::from_secs(20);
    while !host_a.metrics().contains(lag_line) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        host_a.metrics().contains(lag_line),
        "no consumer lag metric:\n{}",
        host_a.metrics()
    );

    // Per key, the first time each record shows up is in publish order (a replay after the
    // rebalance may repeat records, never reorder new ones).
    let mut firsts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for r in &out {
        let Some(payload) = r.payload.clone() else {
            continue;
        };
        if !seen.insert(payload.clone()) {
            continue;
        }
        let mut parts = payload.splitn(3, ':');
        let (_, key, seq) = (
            parts.next(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        firsts
            .entry(key.to_owned())
            .or_default()
            .push(seq.to_owned());
    }
    for (key, seqs) in &firsts {
        let mut sorted = seqs.clone();
        sorted.sort();
        assert_eq!(seqs, &sorted, "key {key} out of order");
    }
    eprintln!(
        "rebalance: {} accepted, {} outputs, a handled {done_a}, b handled {done_b}",
        accepted.len(),
        out.len()
    );
}
