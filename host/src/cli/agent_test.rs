//! `agenthost test [DIR]`: the agent's sample events (and A2A messages) through its component
//! on a host in this process — embedded bus, a data directory of its own that is deleted
//! afterwards — printing for each what the agent published, stored, called, logged and was
//! denied, and how its handler ended. Exits non-zero when a handler failed or a use was
//! denied, so it serves as the project's test in any language.
//!
//! Each event is handed to the agent's `on-event` once (attempt 1), as the delivery would hand
//! it; a failure is reported, not retried or dead-lettered. What the agent publishes is stored
//! on the embedded bus and read back to show its payload.

use crate::agent::event_target;
use crate::audit::{AuditEntry, AuditQuery, Outcome};
use crate::deployments::Origin;
use crate::host::{Approval, Host};
use crate::manifest::Manifest;
use crate::text::escape_control;
use crate::wit::{agent, types};
use anyhow::{Context as _, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct TestArgs<'a> {
    pub dir: &'a Path,
    pub manifest: Option<&'a Path>,
    pub events: Option<&'a Path>,
    /// A host config for what the agent needs of the host (its MCP servers, A2A peers); its
    /// data directory, listener, bus and agents are replaced.
    pub config: Option<&'a Path>,
}

/// One line of the events file: a bus record (the format of `agenthost publish --file`, with
/// an optional topic) or an A2A message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    topic: Option<String>,
    key: Option<String>,
    payload: Option<String>,
    payload_base64: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    message: Option<String>,
}

enum Case {
    Event {
        topic: String,
        key: Option<String>,
        payload: Vec<u8>,
        headers: BTreeMap<String, String>,
    },
    Message(String),
}

/// What the run came to.
#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    denied: usize,
}

pub async fn run(args: TestArgs<'_>) -> anyhow::Result<()> {
    let manifest_path = args
        .manifest
        .map_or_else(|| args.dir.join("agent.toml"), Path::to_owned);
    let manifest = Manifest::load(&manifest_path)?;
    if !manifest.component.is_file() {
        bail!(
            "{} is not built yet ({} names it): run agenthost build first",
            manifest.component.display(),
            manifest_path.display()
        );
    }
    let events_path = args
        .events
        .map_or_else(|| args.dir.join("events.jsonl"), Path::to_owned);
    let cases = read_cases(&events_path, &manifest)?;

    let data_dir = std::env::temp_dir().join(format!(
        "agenthost-test-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let logs = LogCapture::install();
    let outcome = run_cases(&args, &manifest_path, &manifest, &cases, &data_dir, &logs).await;
    let _ = std::fs::remove_dir_all(&data_dir);
    let tally = outcome?;
    println!(
        "{} passed, {} failed, {} denied use{}",
        tally.passed,
        tally.failed,
        tally.denied,
        if tally.denied == 1 { "" } else { "s" }
    );
    if tally.failed > 0 || tally.denied > 0 {
        bail!("{} did not pass", events_path.display());
    }
    Ok(())
}

fn read_cases(path: &Path, manifest: &Manifest) -> anyhow::Result<Vec<Case>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {}: agenthost test feeds the agent the records in it, one JSON object a line",
            path.display()
        )
    })?;
    let subscribed = manifest.subscribe.first().map(|s| s.topic.clone());
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{}:{}", path.display(), i + 1);
        let line: Line = serde_json::from_str(line).with_context(|| {
            format!(
                "{at}: expected {{\"payload\": \"…\" (or \"payload_base64\"), \"key\": \"…\", \"headers\": {{…}}, \"topic\": \"…\"}} or {{\"message\": \"…\"}}"
            )
        })?;
        let payload = match (line.payload, line.payload_base64) {
            (Some(text), None) => Some(text.into_bytes()),
            (None, Some(b64)) => Some(
                crate::http::wire::decode_b64("payload_base64", &b64)
                    .map_err(|e| anyhow::anyhow!("{at}: {e}"))?,
            ),
            (None, None) => None,
            (Some(_), Some(_)) => {
                bail!("{at}: give one of \"payload\" (text) and \"payload_base64\" (bytes)")
            }
        };
        let case = match (payload, line.message) {
            (Some(payload), None) => {
                let topic = line.topic.or_else(|| subscribed.clone()).with_context(|| {
                    format!("{at}: the manifest subscribes to no topic: say which with \"topic\"")
                })?;
                Case::Event {
                    topic,
                    key: line.key,
                    payload,
                    headers: line.headers,
                }
            }
            (None, Some(message)) if line.topic.is_none() && line.key.is_none() => {
                Case::Message(message)
            }
            (None, Some(_)) => bail!("{at}: a message has no topic or key"),
            _ => bail!(
                "{at}: give exactly one of \"payload\" (a bus record) and \"message\" (an A2A message)"
            ),
        };
        cases.push(case);
    }
    if cases.is_empty() {
        bail!("{} has no records", path.display());
    }
    Ok(cases)
}

async fn run_cases(
    args: &TestArgs<'_>,
    manifest_path: &Path,
    manifest: &Manifest,
    cases: &[Case],
    data_dir: &Path,
    logs: &LogCapture,
) -> anyhow::Result<Tally> {
    let config =
        super::project::host_config(args.config, args.dir, data_dir, ([127, 0, 0, 1], 0).into())?;
    let host = Host::open(config).await?;
    let result = async {
        let report = host
            .deploy_path(manifest_path, Approval::Given, Origin::Api)
            .await
            .map_err(|e| anyhow::anyhow!("{} does not deploy: {e}", manifest_path.display()))?;
        println!(
            "{} {} ({}) on a test host\n",
            report.agent, report.version, report.digest
        );
        let version = host
            .registry
            .read()
            .get(manifest.name.as_str())
            .map(|running| running.cell.current())
            .context("the agent is not running after its deploy")?;
        let mut tally = Tally::default();
        for (i, case) in cases.iter().enumerate() {
            let correlation_id = format!("test-{}-{}", i + 1, uuid::Uuid::new_v4().simple());
            let (title, ended): (String, Result<Option<String>, String>) = match case {
                Case::Event {
                    topic,
                    key,
                    payload,
                    headers,
                } => {
                    let event = agent::Event {
                        topic: topic.clone(),
                        partition: 0,
                        offset: i as u64,
                        key: key.clone().map(String::into_bytes),
                        payload: payload.clone(),
                        headers: headers
                            .iter()
                            .map(|(k, v)| types::Header {
                                key: k.clone(),
                                value: v.clone().into_bytes(),
                            })
                            .collect(),
                        timestamp_ms: now_ms(),
                        correlation_id: correlation_id.clone(),
                        attempt: 1,
                    };
                    let title = format!(
                        "event {}: {}{}",
                        i + 1,
                        event_target(topic, 0, i as u64),
                        key.as_ref()
                            .map(|k| format!(" key {k}"))
                            .unwrap_or_default()
                    );
                    let ended = match version.on_event(event).await {
                        Ok(acks) => acks.wait().await.map(|()| None),
                        Err(e) => Err(e),
                    };
                    (title, ended.map_err(|e| e.to_string()))
                }
                Case::Message(text) => {
                    let message = types::Message {
                        message_id: uuid::Uuid::new_v4().to_string(),
                        role: types::Role::User,
                        parts: vec![types::Part::Text(text.clone())],
                        task_id: None,
                        context_id: None,
                    };
                    let task = format!("test-task-{}", i + 1);
                    let ended = version
                        .on_message(message, &correlation_id, &task)
                        .await
                        .map(|reply| Some(reply_text(&reply)))
                        .map_err(|e| e.to_string());
                    (format!("message {}: {text:?}", i + 1), ended)
                }
            };
            host.audit.flush();
            let entries = host
                .audit
                .query(&AuditQuery {
                    correlation_id: Some(correlation_id.clone()),
                    ..AuditQuery::default()
                })
                .map_err(|e| anyhow::anyhow!("cannot read the audit log: {e}"))?;
            println!("{title}");
            let denied = print_uses(&host, &entries).await;
            for (level, message) in logs.take(&correlation_id) {
                println!("  log {level:<5}  {}", escape_control(&message));
            }
            tally.denied += denied;
            match ended {
                Ok(reply) => {
                    if let Some(reply) = reply {
                        println!("  reply      {}", escape_control(&reply));
                    }
                    if denied == 0 {
                        tally.passed += 1;
                        println!("  ok\n");
                    } else {
                        tally.failed += 1;
                        println!("  ok, but denied {denied} use(s)\n");
                    }
                }
                Err(reason) => {
                    tally.failed += 1;
                    println!("  FAILED     {}\n", escape_control(&reason));
                }
            }
        }
        Ok(tally)
    }
    .await;
    host.shutdown(Duration::from_secs(5)).await;
    result
}

/// Prints what the agent did on one correlation id (its invocation's own entry left out); the
/// number of denials.
async fn print_uses(host: &Host, entries: &[AuditEntry]) -> usize {
    let mut denied = 0;
    for e in entries {
        if matches!(e.capability.as_str(), "event" | "a2a.message") {
            continue;
        }
        if let Some(line) = use_line(host, e, 10).await {
            println!("  {line}");
        }
        if e.outcome == Outcome::Denied {
            denied += 1;
        }
    }
    denied
}

/// One audit entry as `test` and `dev` show it: capability (padded to `width`), target,
/// outcome, detail, and the payload of what was published, read back from the bus. `None`
/// for a config read that was allowed: every invocation makes several.
pub(super) async fn use_line(host: &Host, e: &AuditEntry, width: usize) -> Option<String> {
    if e.capability == "config" && e.outcome == Outcome::Allowed {
        return None;
    }
    let (outcome, detail) = super::trace::outcome_and_detail(e);
    let payload = if e.capability == "publish" && e.outcome == Outcome::Allowed {
        published(host, &e.target)
            .await
            .map(|p| format!("  {}", escape_control(&p)))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Some(format!(
        "{:<width$} {}{outcome}{detail}{payload}{}",
        e.capability,
        escape_control(&e.target),
        super::trace::repeats(e.repeated)
    ))
}

/// The payload (and key) of the record at `topic[partition]@offset`, read back from the bus.
pub(super) async fn published(host: &Host, target: &str) -> Option<String> {
    let (topic, rest) = target.split_once('[')?;
    let (partition, offset) = rest.split_once("]@")?;
    let (partition, offset): (u32, u64) = (partition.parse().ok()?, offset.parse().ok()?);
    let mut reader = host
        .bus
        .read(topic, crate::bus::StartAt::Beginning)
        .await
        .ok()?;
    let find = async {
        loop {
            let record = reader.next().await.ok()?;
            if record.partition == partition && record.offset == offset {
                let key = record
                    .key
                    .as_deref()
                    .map(|k| format!("key {} ", String::from_utf8_lossy(k)))
                    .unwrap_or_default();
                return Some(format!("{key}{}", String::from_utf8_lossy(&record.payload)));
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(2), find)
        .await
        .ok()
        .flatten()
}

/// The text of a reply: its message's text parts, else its artifacts', and its state.
fn reply_text(reply: &types::Reply) -> String {
    let text = |parts: &[types::Part]| -> Vec<String> {
        parts
            .iter()
            .filter_map(|p| match p {
                types::Part::Text(t) => Some(t.clone()),
                types::Part::Data(d) => Some(d.clone()),
                types::Part::File(_) => None,
            })
            .collect()
    };
    let mut lines = reply
        .message
        .as_ref()
        .map(|m| text(&m.parts))
        .unwrap_or_default();
    for artifact in &reply.artifacts {
        lines.extend(text(&artifact.parts));
    }
    format!("{} ({:?})", lines.join(" / "), reply.state).replace("TaskState::", "")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The host's own warnings and errors, on stderr, for the commands that run a host in the
/// process for one agent (`test`, `dev`): what the agent logs is theirs to show.
pub(super) fn host_warnings<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::{Layer as _, filter};
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_filter(filter::filter_fn(|m| {
            m.target() != "agent" && *m.level() <= tracing::Level::WARN
        }))
}

/// The agents' log lines (target `agent`), kept by correlation id until printed; the host's
/// own warnings and errors go to stderr.
#[derive(Clone, Default)]
struct LogCapture {
    lines: Arc<Mutex<Vec<(String, String, String)>>>,
}

impl LogCapture {
    fn install() -> Self {
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::{Layer as _, filter};
        let capture = Self::default();
        let host_log = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_filter(filter::filter_fn(|m| {
                m.target() != "agent" && *m.level() <= tracing::Level::WARN
            }));
        let subscriber = tracing_subscriber::registry()
            .with(
                capture
                    .clone()
                    .with_filter(filter::filter_fn(|m| m.target() == "agent")),
            )
            .with(host_log);
        // Only fails when a subscriber is set already (a second run in one process): the
        // first one's capture then sees nothing, which loses log lines, not correctness.
        let _ = tracing::subscriber::set_global_default(subscriber);
        capture
    }

    /// The lines logged under `correlation_id`, in order, removed from the capture.
    fn take(&self, correlation_id: &str) -> Vec<(String, String)> {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let (mine, rest): (Vec<_>, Vec<_>) = lines
            .drain(..)
            .partition(|(cid, _, _)| cid == correlation_id);
        *lines = rest;
        mine.into_iter().map(|(_, l, m)| (l, m)).collect()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogCapture {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        #[derive(Default)]
        struct Fields {
            correlation_id: String,
            message: String,
        }
        impl tracing::field::Visit for Fields {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                match field.name() {
                    "correlation_id" => self.correlation_id = value.to_owned(),
                    "message" => self.message = value.to_owned(),
                    _ => {}
                }
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                match field.name() {
                    "correlation_id" => self.correlation_id = format!("{value:?}"),
                    "message" => self.message = format!("{value:?}"),
                    _ => {}
                }
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).push((
            fields.correlation_id,
            level,
            fields.message,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cases(manifest_extra: &str, lines: &str) -> anyhow::Result<Vec<Case>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, lines).unwrap();
        let manifest = Manifest::parse(
            Path::new("agent.toml"),
            &format!("name = \"t\"\nversion = \"0.1.0\"\ncomponent = \"t.wasm\"\n{manifest_extra}"),
        )
        .unwrap();
        read_cases(&path, &manifest)
    }

    #[test]
    fn records_default_to_the_first_subscription_and_messages_are_told_apart() {
        let read = cases(
            "[[subscribe]]\ntopic = \"t.in.v1\"\n",
            "{\"payload\": \"a\", \"key\": \"k\"}\n\n{\"payload_base64\": \"AAE=\", \"topic\": \"o.x.v1\"}\n{\"message\": \"hi\"}\n",
        )
        .unwrap();
        assert!(
            matches!(&read[0], Case::Event { topic, key: Some(k), payload, .. }
            if topic == "t.in.v1" && k == "k" && payload == b"a")
        );
        assert!(matches!(&read[1], Case::Event { topic, payload, .. }
            if topic == "o.x.v1" && payload == &[0u8, 1]));
        assert!(matches!(&read[2], Case::Message(text) if text == "hi"));
    }

    #[test]
    fn a_bad_line_is_refused_naming_its_file_and_line() {
        let subscribed = "[[subscribe]]\ntopic = \"t.in.v1\"\n";
        let error = |manifest: &str, lines: &str| {
            format!("{:#}", cases(manifest, lines).err().expect("refused"))
        };
        let both = error(
            subscribed,
            "{\"payload\": \"a\"}\n{\"payload\": \"a\", \"message\": \"b\"}\n",
        );
        assert!(
            both.contains("events.jsonl:2") && both.contains("exactly one of"),
            "{both}"
        );
        let unknown = error(subscribed, "{\"paylod\": \"a\"}\n");
        assert!(
            unknown.contains("events.jsonl:1") && unknown.contains("paylod"),
            "{unknown}"
        );
        let no_topic = error("", "{\"payload\": \"a\"}\n");
        assert!(no_topic.contains("subscribes to no topic"), "{no_topic}");
        let empty = error(subscribed, "\n");
        assert!(empty.contains("has no records"), "{empty}");
        let bad_b64 = error(subscribed, "{\"payload_base64\": \"%%\"}\n");
        assert!(bad_b64.contains("payload_base64"), "{bad_b64}");
    }
}
