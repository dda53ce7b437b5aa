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
    let port = free_port();
    let scratch = tempfile::tempdir().unwrap();
    let spans_file = scratch.path().join("spans.jsonl");
    let _receiver = Peer::otlp_receiver(port, &spans_file);
    let s = Scenario::new(&format!(
        "[telemetry]\notlp_endpoint = \"http://127.0.0.1:{port}\"\nservice_name = \"agenthost-test\"\n"
    ));
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

    // The batch exporter sends within seconds.
    let deadline = Instant::now() + Duration::from_secs(60);
    let span = loop {
        let text = std::fs::read_to_string(&spans_file).unwrap_or_default();
        let found = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|s| s["attributes"]["correlation_id"] == "otlp-cid-1");
        if let Some(span) = found {
            break span;
        }
        assert!(
            Instant::now() < deadline,
            "no span for otlp-cid-1 reached the receiver; it got:\n{text}\nhost log:\n{}",
            host.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
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
