//! `agenthost send AGENT TEXT [--stream]`: an A2A 1.0 client of the host's own endpoint, so an
//! operator can talk to an exposed agent without another tool.

use super::{Format, HostArgs};
use crate::a2a::model::{Message, Part, Role, StreamEvent, Task, TaskState};
use crate::a2a::wire::{self, Dialect};
use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use serde_json::{Value, json};
use std::time::Duration;

pub struct SendArgs<'a> {
    pub agent: &'a str,
    pub text: &'a str,
    pub stream: bool,
    /// Extra headers (credentials), `KEY=VALUE`.
    pub headers: &'a [String],
    pub bearer: Option<&'a str>,
    pub format: Format,
}

pub async fn run(host: &HostArgs, args: SendArgs<'_>) -> anyhow::Result<()> {
    let endpoint = format!("{}/agents/{}", host.host.trim_end_matches('/'), args.agent);
    let message = Message {
        message_id: uuid::Uuid::new_v4().to_string(),
        role: Role::User,
        parts: vec![Part::Text {
            text: args.text.to_owned(),
            media_type: None,
        }],
        task_id: None,
        context_id: None,
        metadata: None,
    };
    let body = json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": if args.stream { "SendStreamingMessage" } else { "SendMessage" },
        "params": { "message": wire::message_json(&message, Dialect::V1) },
    });
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let mut request = http
        .post(&endpoint)
        .header("A2A-Version", "1.0")
        .json(&body);
    if let Some(token) = args.bearer {
        request = request.bearer_auth(token);
    }
    for header in args.headers {
        let (k, v) = header
            .split_once('=')
            .with_context(|| format!("--header {header:?} is not KEY=VALUE"))?;
        request = request.header(k, v);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach {endpoint}"))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        let reason = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .or_else(|| v.get("error"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or(text);
        bail!("{reason} (HTTP {})", status.as_u16());
    }
    let is_sse = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        let value: Value = response.json().await.context("the answer is not JSON")?;
        let result = rpc_result(&value)?;
        if args.format == Format::Json {
            println!("{}", serde_json::to_string_pretty(result)?);
        }
        let task = wire::parse_send_result(result).map_err(anyhow::Error::msg)?;
        return finish(&task, args.format);
    }
    // SSE: `data:` lines, each a JSON-RPC response; the last status update ends the task.
    let mut bytes = response.bytes_stream();
    let mut buffer = String::new();
    let mut last: Option<Task> = None;
    while let Some(chunk) = bytes.next().await {
        buffer.push_str(&String::from_utf8_lossy(
            &chunk.context("the stream broke")?,
        ));
        while let Some(end) = buffer.find('\n') {
            let line = buffer[..end].trim_end_matches('\r').to_owned();
            buffer.drain(..=end);
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let value: Value = serde_json::from_str(data.trim()).context("an event is not JSON")?;
            let result = rpc_result(&value)?;
            if args.format == Format::Json {
                println!("{}", serde_json::to_string(result)?);
            }
            match parse_event(result) {
                Some(StreamEvent::Task(task)) => {
                    if args.format == Format::Text {
                        println!("[{}] task {}", task.status.state.as_str(), task.id);
                    }
                    last = Some(task);
                }
                Some(StreamEvent::Status { status, .. }) => {
                    if let Some(task) = last.as_mut() {
                        if args.format == Format::Text && !status.state.is_terminal() {
                            println!("[{}]", status.state.as_str());
                        }
                        task.status = status;
                    }
                }
                Some(StreamEvent::Artifact { artifact, .. }) => {
                    if let Some(task) = last.as_mut() {
                        task.artifacts.push(artifact);
                    }
                }
                Some(StreamEvent::Message(message)) if args.format == Format::Text => {
                    println!("{}", message.text());
                }
                Some(StreamEvent::Message(_)) | None => {}
            }
        }
    }
    match last {
        Some(task) => finish(&task, args.format),
        None => Ok(()),
    }
}

fn rpc_result(value: &Value) -> anyhow::Result<&Value> {
    if let Some(error) = value.get("error") {
        bail!(
            "the agent answered error {}: {}",
            error.get("code").unwrap_or(&Value::Null),
            error.get("message").and_then(Value::as_str).unwrap_or("")
        );
    }
    value.get("result").context("the answer has no result")
}

fn parse_event(result: &Value) -> Option<StreamEvent> {
    if result.get("task").is_some() {
        return wire::parse_send_result(result).ok().map(StreamEvent::Task);
    }
    if let Some(update) = result.get("statusUpdate") {
        let task = wire::parse_send_result(&json!({ "task": {
            "id": update.get("taskId")?, "contextId": update.get("contextId")?, "status": update.get("status")?
        }}))
        .ok()?;
        return Some(StreamEvent::Status {
            task_id: task.id,
            context_id: task.context_id,
            status: task.status,
            last: false,
        });
    }
    if let Some(update) = result.get("artifactUpdate") {
        let task = wire::parse_send_result(&json!({ "task": {
            "id": update.get("taskId")?, "status": {"state": "TASK_STATE_WORKING"}, "artifacts": [update.get("artifact")?]
        }}))
        .ok()?;
        return task
            .artifacts
            .into_iter()
            .next()
            .map(|artifact| StreamEvent::Artifact {
                task_id: task.id,
                context_id: String::new(),
                artifact,
            });
    }
    if result.get("message").is_some() {
        return wire::parse_send_result(result)
            .ok()
            .and_then(|t| t.status.message)
            .map(StreamEvent::Message);
    }
    None
}

/// Prints the answer and the final state; a task that did not complete is exit code 1.
fn finish(task: &Task, format: Format) -> anyhow::Result<()> {
    let answer: Vec<String> = task
        .status
        .message
        .iter()
        .map(Message::text)
        .chain(task.artifacts.iter().map(|a| {
            a.parts
                .iter()
                .filter_map(|p| match p {
                    Part::Text { text, .. } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<String>()
        }))
        .filter(|t| !t.is_empty())
        .collect();
    if format == Format::Text {
        for line in &answer {
            println!("{line}");
        }
        println!("[{}] task {}", task.status.state.as_str(), task.id);
    }
    match task.status.state {
        TaskState::Completed | TaskState::InputRequired | TaskState::AuthRequired => Ok(()),
        state => bail!("the task ended {}: {}", state.as_str(), answer.join(" ")),
    }
}
