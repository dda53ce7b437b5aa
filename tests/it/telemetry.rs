//! Observability: every invocation is a span carrying its agent, version and correlation id,
//! exported over OTLP/HTTP to a receiver that decodes it with the OpenTelemetry project's own
//! protobuf definitions, and listed on the JSON log lines written inside it.

use agenthost_tests::peers::Peer;
use agenthost_tests::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Allowed to publish only where echo does not: every invocation logs a denial inside its span.
const DENIED: &str = r#"
name = "denied"
version = "0.2.0"
component = "{plugins}/echo.wasm"

[[subscribe]]
topic = "denied.in.v1"

[delivery]
max_attempts = 1

[capabilities]
publish = ["elsewhere.v1"]
config = { out = "demo.out.v1" }
"#;

#[test]
fn invocations_are_exported_over_otlp_and_named_on_json_log_lines() {
    let (s, _receiver) = exporting_scenario("service_name = \"agenthost-test\"\n");
    s.manifest("echo", ECHO);
    s.manifest("denied", DENIED);
    let host = s.start_with_env(&[("AGENTHOST_LOG_FORMAT", "json")]);
    publish(
        &host.url,
        "demo.in.v1",
        Some("k"),
        "hello",
        Some("otlp-cid-1"),
    )
    .unwrap();
    publish(&host.url, "denied.in.v1", None, "hello", Some("otlp-cid-2")).unwrap();

    let span = wait_for_span(&s, &host, "for otlp-cid-1", |s| {
        s["attributes"]["correlation_id"] == "otlp-cid-1"
    });
    assert_eq!(span["service"], "agenthost-test");
    assert_eq!(span["name"], "invocation");
    assert_eq!(span["attributes"]["agent"], "echo");
    assert_eq!(span["attributes"]["version"], "1.0.0");
    assert_eq!(span["attributes"]["kind"], "event");
    assert_eq!(span["attributes"]["outcome"], "ok");
    assert_eq!(span["trace_id"].as_str().unwrap().len(), 32);

    // The JSON log: the denial inside the second invocation names its span and correlation id.
    let line = wait_for_log_line(
        &host,
        "JSON log line inside the denied invocation's span",
        |l| {
            serde_json::from_str::<Value>(l).ok().filter(|l| {
                l["span"]["name"] == "invocation"
                    && l["span"]["correlation_id"] == "otlp-cid-2"
                    && l["fields"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("denied"))
            })
        },
    );
    assert_eq!(line["span"]["agent"], "denied");
    assert_eq!(line["span"]["version"], "0.2.0");
}

/// Where [`exporting_scenario`]'s receiver writes the spans it decodes, one JSON line each.
const SPANS: &str = "spans.jsonl";

/// A scenario whose host exports its spans over OTLP/HTTP to a receiver (returned with it),
/// which writes them to the scenario's [`SPANS`]; `telemetry` adds to the `[telemetry]` table.
fn exporting_scenario(telemetry: &str) -> (Scenario, Peer) {
    let port = free_port();
    let s = Scenario::new(&format!(
        "[telemetry]\notlp_endpoint = \"http://127.0.0.1:{port}\"\n{telemetry}"
    ));
    let receiver = Peer::otlp_receiver(port, &s.path().join(SPANS));
    (s, receiver)
}

/// The first span `s`'s receiver wrote that `matches`, waiting up to 60 s (the batch exporter
/// sends within seconds); fails naming `what`.
fn wait_for_span(
    s: &Scenario,
    host: &HostProcess,
    what: &str,
    matches: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(s.path().join(SPANS)).unwrap_or_default();
        let found = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(&matches);
        if let Some(span) = found {
            return span;
        }
        assert!(
            Instant::now() < deadline,
            "no span {what} reached the receiver; it got:\n{text}\nhost log:\n{}",
            host.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A batch is one invocation: one span naming how many events it carried and how many of them
/// failed (the correlation id is the first event's).
#[test]
fn a_batch_is_one_span_counting_its_events_and_those_that_failed() {
    let (s, _receiver) = exporting_scenario("");
    let host = s.start();
    // A backlog before the agent is deployed, one record per key, so batches fill up; one
    // record asks to be rejected.
    for i in 0..40 {
        let payload = if i == 17 {
            "reject".to_owned()
        } else {
            format!("event-{i}")
        };
        publish(
            &host.url,
            "faulty.in.v1",
            Some(&format!("k{i}")),
            &payload,
            Some(&format!("span-{i}")),
        )
        .unwrap();
    }
    let manifest = s.manifest(
        "faulty",
        &FAULTY
            .replace("[delivery]\n", "[delivery]\nbatch = 16\n")
            .replace("max_attempts = 3", "max_attempts = 1"),
    );
    let deployed = s.cli(&["deploy", manifest.to_str().unwrap()]);
    assert!(deployed.status.success(), "{}", describe(&deployed));

    let span = wait_for_span(&s, &host, "of a batch with a failure", |s| {
        s["attributes"]["kind"] == "events" && s["attributes"]["failed"] == 1
    });
    assert_eq!(span["attributes"]["agent"], "faulty");
    assert_eq!(span["attributes"]["outcome"], "reject", "{span:#}");
    assert!(
        span["attributes"]["events"].as_i64().is_some_and(|n| n > 1),
        "the rejected record came in a batch of one: {span:#}"
    );
    let first = span["attributes"]["correlation_id"]
        .as_str()
        .unwrap_or_default();
    assert!(first.starts_with("span-"), "{span:#}");
    // A batch that went well says so too.
    let ok = wait_for_span(&s, &host, "of a batch that went well", |s| {
        s["attributes"]["kind"] == "events" && s["attributes"]["failed"] == 0
    });
    assert_eq!(ok["attributes"]["outcome"], "ok", "{ok:#}");
}

/// The first line of `host`'s log that `find` turns into something, waiting up to 30 s for it;
/// fails naming `what` and showing the log.
fn wait_for_log_line<T>(host: &HostProcess, what: &str, find: impl Fn(&str) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = host.log_text();
        if let Some(found) = log.lines().find_map(&find) {
            return found;
        }
        assert!(Instant::now() < deadline, "no {what}:\n{log}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The text log, written to a file as operators and log shippers get it: plain text without
/// terminal colour codes, and a line logged inside an invocation names the invocation's span.
#[test]
fn the_text_log_in_a_file_is_plain_and_names_the_invocation() {
    let s = Scenario::new("");
    s.manifest("denied", DENIED);
    let host = s.start();
    publish(&host.url, "denied.in.v1", None, "hello", Some("text-cid-1")).unwrap();

    let line = wait_for_log_line(&host, "log line inside the denied invocation", |l| {
        (l.contains("text-cid-1") && l.contains("denied")).then(|| l.to_owned())
    });
    assert!(
        line.contains("invocation{agent=\"denied\" version=\"0.2.0\" kind=\"event\" correlation_id=\"text-cid-1\""),
        "the line does not name its span: {line}"
    );
    let log = host.log_text();
    assert!(
        !log.contains('\u{1b}'),
        "the log written to a file has terminal escape codes:\n{log}"
    );
}
