//! The orchestrator–worker example (`examples/orchestrator`), its manifests as they are, on a
//! real Kafka-compatible broker: jobs split into tasks, workers in two host processes sharing
//! one consumer group, results assembled, failed tasks reported from the dead-letter topic.

use agenthost_tests::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// An example manifest, its component path pointed at the built plugins.
fn example_manifest(name: &str) -> String {
    let path = workspace_root().join(format!("examples/orchestrator/agents/{name}.toml"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .replace("../../../target/plugins", "{plugins}")
}

fn job(id: &str, kind: &str, documents: usize) -> String {
    let documents: Vec<String> = (0..documents)
        .map(|i| format!("document {i} of job {id}: the work is split and the work is done"))
        .collect();
    json!({"job": id, "kind": kind, "documents": documents}).to_string()
}

/// The completed jobs seen on `research.job-completed.v1`, by job id, once `wanted` are there.
fn completed_jobs(url: &str, wanted: &[String], timeout: Duration) -> BTreeMap<String, Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let records = consume(
            url,
            "research.job-completed.v1",
            100_000,
            Duration::from_secs(2),
        );
        let done: BTreeMap<String, Value> = records
            .iter()
            .filter_map(|r| r.payload.as_deref())
            .map(|p| serde_json::from_str::<Value>(p).unwrap())
            .map(|v| (v["job"].as_str().unwrap().to_owned(), v))
            .collect();
        if wanted.iter().all(|j| done.contains_key(j)) || Instant::now() > deadline {
            return done;
        }
    }
}

#[test]
fn jobs_are_split_across_workers_in_two_hosts_and_failed_tasks_are_reported() {
    let bus = TestBus::kafka();
    let first = Scenario::on(&bus);
    first.manifest("orchestrator", &example_manifest("orchestrator"));
    first.manifest("task-worker", &example_manifest("task-worker"));
    let second = Scenario::on(&bus);
    second.manifest("task-worker", &example_manifest("task-worker"));
    let host_a = first.start();

    // Jobs keep coming until the second host's worker has joined the group and done tasks.
    let mut jobs = Vec::new();
    let mut publish_job = |n: usize| {
        let id = format!("j-{n}");
        publish(
            &host_a.url,
            "research.job-requested.v1",
            Some(&id),
            &job(&id, "word-count", 8),
            None,
        )
        .unwrap();
        jobs.push(id);
    };
    publish_job(0);
    let host_b = second.start();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut n = 1;
    while metric_value(&host_b.metrics(), "agenthost_invocations_total") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the second host's worker never got tasks; its log:\n{}\nthe first host's log:\n{}",
            host_b.log_text(),
            host_a.log_text()
        );
        publish_job(n);
        n += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    publish_job(n);

    // A kind no worker does: every task is dead-lettered, and the job completes as failed.
    publish(
        &host_a.url,
        "research.job-requested.v1",
        Some("j-bad-kind"),
        &job("j-bad-kind", "sentiment", 2),
        None,
    )
    .unwrap();
    // A malformed job is dead-lettered by the orchestrator with the reason (to its own
    // dead-letter topic: it reads the worker's).
    publish(
        &host_a.url,
        "research.job-requested.v1",
        Some("j-x"),
        r#"{"job": "j x", "kind": "word-count", "documents": ["a"]}"#,
        None,
    )
    .unwrap();

    let mut wanted = jobs.clone();
    wanted.push("j-bad-kind".into());
    let done = completed_jobs(&host_a.url, &wanted, Duration::from_secs(180));
    for id in &jobs {
        let completed = done
            .get(id)
            .unwrap_or_else(|| panic!("job {id} never completed; completed: {:?}", done.keys()));
        assert_eq!(completed["of"], 8, "{completed}");
        assert_eq!(completed["succeeded"], 8, "{completed}");
        assert_eq!(completed["results"].as_array().unwrap().len(), 8);
        // Each document has 15 words ("j-0" is two).
        assert_eq!(completed["totals"]["words"], 8.0 * 15.0, "{completed}");
    }
    let failed = &done["j-bad-kind"];
    assert_eq!(failed["succeeded"], 0, "{failed}");
    let reasons = failed["failed"].as_object().unwrap();
    assert_eq!(reasons.len(), 2, "{failed}");
    assert!(
        reasons.values().all(|r| r
            .as_str()
            .unwrap()
            .contains("unknown task kind \"sentiment\"")),
        "{failed}"
    );

    // Both hosts' workers did tasks: the consumer group split the work.
    let tasks_a = metric_value(
        &host_a.metrics(),
        "agenthost_invocations_total{agent=\"task-worker\"",
    );
    let tasks_b = metric_value(&host_b.metrics(), "agenthost_invocations_total");
    assert!(tasks_a > 0.0 && tasks_b > 0.0, "a={tasks_a} b={tasks_b}");

    let dead = consume(
        &host_a.url,
        "agent.dead-letter.orchestrator.v1",
        1,
        Duration::from_secs(30),
    );
    assert!(
        dead.iter().any(|r| r
            .headers
            .get("agenthost-error")
            .is_some_and(|e| e.contains("[A-Za-z0-9._-]"))),
        "the malformed job's dead letter names what was wrong: {dead:?}"
    );
}
