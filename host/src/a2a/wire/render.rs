//! Writing: the host's tasks, messages and stream events as either dialect's JSON.

use super::Dialect;
use super::request::Obj;
use crate::a2a::model::{Artifact, Message, Part, Role, StreamEvent, Task, TaskState, TaskStatus};
use base64::Engine;
use serde_json::{Value, json};

fn state_json(state: TaskState, dialect: Dialect) -> Value {
    match dialect {
        Dialect::V1 => Value::String(format!(
            "TASK_STATE_{}",
            state.as_str().to_ascii_uppercase().replace('-', "_")
        )),
        Dialect::V03 => Value::String(state.as_str().to_owned()),
    }
}

fn timestamp(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}

fn part_json(part: &Part, dialect: Dialect) -> Value {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    match (dialect, part) {
        (Dialect::V1, Part::Text { text, media_type }) => {
            let mut v = json!({ "text": text });
            if let Some(m) = media_type {
                v["mediaType"] = json!(m);
            }
            v
        }
        (Dialect::V1, Part::Data { data }) => json!({ "data": data }),
        (
            Dialect::V1,
            Part::File {
                name,
                media_type,
                bytes,
                uri,
            },
        ) => {
            let mut v = match (uri, bytes) {
                (Some(uri), _) => json!({ "url": uri }),
                (None, Some(bytes)) => json!({ "raw": b64(bytes) }),
                (None, None) => json!({ "raw": "" }),
            };
            if let Some(n) = name {
                v["filename"] = json!(n);
            }
            if let Some(m) = media_type {
                v["mediaType"] = json!(m);
            }
            v
        }
        (Dialect::V03, Part::Text { text, .. }) => json!({ "kind": "text", "text": text }),
        (Dialect::V03, Part::Data { data }) => {
            // v0.3 data parts are objects; other JSON values are wrapped as the SDKs do.
            if data.is_object() {
                json!({ "kind": "data", "data": data })
            } else {
                json!({ "kind": "data", "data": { "value": data }, "metadata": { "data_part_compat": true } })
            }
        }
        (
            Dialect::V03,
            Part::File {
                name,
                media_type,
                bytes,
                uri,
            },
        ) => {
            let mut file = Obj::new();
            match (uri, bytes) {
                (Some(uri), _) => {
                    file.insert("uri".into(), json!(uri));
                }
                (None, Some(bytes)) => {
                    file.insert("bytes".into(), json!(b64(bytes)));
                }
                (None, None) => {
                    file.insert("bytes".into(), json!(""));
                }
            }
            if let Some(n) = name {
                file.insert("name".into(), json!(n));
            }
            if let Some(m) = media_type {
                file.insert("mimeType".into(), json!(m));
            }
            json!({ "kind": "file", "file": file })
        }
    }
}

pub fn message_json(m: &Message, dialect: Dialect) -> Value {
    let mut v = json!({
        "messageId": m.message_id,
        "role": match (dialect, m.role) {
            (Dialect::V1, Role::User) => "ROLE_USER",
            (Dialect::V1, Role::Agent) => "ROLE_AGENT",
            (Dialect::V03, Role::User) => "user",
            (Dialect::V03, Role::Agent) => "agent",
        },
        "parts": m.parts.iter().map(|p| part_json(p, dialect)).collect::<Vec<_>>(),
    });
    if let Some(t) = &m.task_id {
        v["taskId"] = json!(t);
    }
    if let Some(c) = &m.context_id {
        v["contextId"] = json!(c);
    }
    if let Some(meta) = &m.metadata {
        v["metadata"] = meta.clone();
    }
    if dialect == Dialect::V03 {
        v["kind"] = json!("message");
    }
    v
}

fn artifact_json(a: &Artifact, dialect: Dialect) -> Value {
    let mut v = json!({
        "artifactId": a.artifact_id,
        "parts": a.parts.iter().map(|p| part_json(p, dialect)).collect::<Vec<_>>(),
    });
    if let Some(n) = &a.name {
        v["name"] = json!(n);
    }
    if let Some(d) = &a.description {
        v["description"] = json!(d);
    }
    v
}

fn status_json(s: &TaskStatus, dialect: Dialect) -> Value {
    let mut v = json!({
        "state": state_json(s.state, dialect),
        "timestamp": timestamp(s.timestamp_ms),
    });
    if let Some(m) = &s.message {
        v["message"] = message_json(m, dialect);
    }
    v
}

/// How much of a task to show.
#[derive(Clone, Copy, Debug, Default)]
pub struct View {
    /// The last N messages of the history; `None` = all.
    pub history_length: Option<usize>,
    pub artifacts: bool,
}

impl View {
    pub fn full(history_length: Option<usize>) -> Self {
        Self {
            history_length,
            artifacts: true,
        }
    }
}

pub fn task_json(t: &Task, dialect: Dialect, view: View) -> Value {
    let mut v = json!({
        "id": t.id,
        "contextId": t.context_id,
        "status": status_json(&t.status, dialect),
    });
    let history = match view.history_length {
        None => &t.history[..],
        Some(n) => &t.history[t.history.len().saturating_sub(n)..],
    };
    if !history.is_empty() {
        v["history"] = Value::Array(history.iter().map(|m| message_json(m, dialect)).collect());
    }
    if view.artifacts && !t.artifacts.is_empty() {
        v["artifacts"] = Value::Array(
            t.artifacts
                .iter()
                .map(|a| artifact_json(a, dialect))
                .collect(),
        );
    }
    if dialect == Dialect::V03 {
        v["kind"] = json!("task");
    }
    v
}

/// The result of `SendMessage` (`{"task": …}`) / `message/send` (the bare task).
pub fn send_result(t: &Task, dialect: Dialect, view: View) -> Value {
    match dialect {
        Dialect::V1 => json!({ "task": task_json(t, dialect, view) }),
        Dialect::V03 => task_json(t, dialect, view),
    }
}

/// One streamed event's `result`.
pub fn stream_event_json(event: &StreamEvent, dialect: Dialect) -> Value {
    match (dialect, event) {
        (Dialect::V1, StreamEvent::Task(t)) => {
            json!({ "task": task_json(t, dialect, View::full(None)) })
        }
        (Dialect::V03, StreamEvent::Task(t)) => task_json(t, dialect, View::full(None)),
        (Dialect::V1, StreamEvent::Message(m)) => json!({ "message": message_json(m, dialect) }),
        (Dialect::V03, StreamEvent::Message(m)) => message_json(m, dialect),
        (
            _,
            StreamEvent::Status {
                task_id,
                context_id,
                status,
                last,
            },
        ) => {
            let body = json!({
                "taskId": task_id,
                "contextId": context_id,
                "status": status_json(status, dialect),
            });
            match dialect {
                Dialect::V1 => json!({ "statusUpdate": body }),
                Dialect::V03 => {
                    let mut body = body;
                    body["kind"] = json!("status-update");
                    // v0.3 marks only terminal states final (not interrupted ones).
                    body["final"] = json!(*last && status.state.is_terminal());
                    body
                }
            }
        }
        (
            _,
            StreamEvent::Artifact {
                task_id,
                context_id,
                artifact,
            },
        ) => {
            let body = json!({
                "taskId": task_id,
                "contextId": context_id,
                "artifact": artifact_json(artifact, dialect),
                "lastChunk": true,
            });
            match dialect {
                Dialect::V1 => json!({ "artifactUpdate": body }),
                Dialect::V03 => {
                    let mut body = body;
                    body["kind"] = json!("artifact-update");
                    body["append"] = json!(false);
                    body
                }
            }
        }
    }
}
