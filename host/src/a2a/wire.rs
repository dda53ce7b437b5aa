//! The two JSON dialects of A2A's JSON-RPC binding, translated to and from the host's model.
//!
//! - **v1.0** (methods `SendMessage`, `GetTask`, …): ProtoJSON of `a2a.v1` — no `kind`
//!   discriminators, parts are `{"text"}` / `{"data"}` / `{"url"}` / `{"raw"}`, enums like
//!   `ROLE_USER` and `TASK_STATE_COMPLETED`, SendMessage results wrapped in `{"task": …}`.
//! - **v0.3** (methods `message/send`, `tasks/get`, …): `kind` on every object
//!   (`message`, `task`, `status-update`, `artifact-update`; parts `text` / `data` / `file`),
//!   lowercase states (`input-required`), roles `user` / `agent`, bare results.
//!
//! Parsing is strict about what the protocol requires and lenient about the rest (unknown
//! fields and unknown enum strings in filters are ignored, as the reference SDKs do), and every
//! error names the field.

use super::model::{Artifact, Message, Part, Role, StreamEvent, Task, TaskState, TaskStatus};
use base64::Engine;
use serde_json::{Map, Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    V1,
    V03,
}

/// A JSON-RPC error as A2A defines them.
#[derive(Clone, Debug, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    /// Machine-readable details, e.g. the offending field.
    pub detail: Option<Value>,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
        }
    }
    pub fn parse_error(message: impl Into<String>) -> Self {
        Self::new(-32700, message)
    }
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(-32600, message)
    }
    pub fn method_not_found(method: &str) -> Self {
        Self::new(-32601, format!("Method not found: {method}"))
    }
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(-32602, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(-32603, message)
    }
    pub fn task_not_found(id: &str) -> Self {
        Self::new(-32001, format!("Task not found: {id}"))
    }
    pub fn task_not_cancelable(id: &str, state: TaskState) -> Self {
        Self::new(
            -32002,
            format!("Task cannot be canceled: {id} is {}", state.as_str()),
        )
    }
    pub fn push_not_supported() -> Self {
        Self::new(-32003, "Push notifications are not supported by this agent")
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(-32004, message)
    }
    pub fn version_not_supported(version: &str) -> Self {
        Self::new(
            -32009,
            format!("A2A version {version:?} is not supported: this host speaks 1.0 and 0.3"),
        )
    }

    fn reason(&self) -> &'static str {
        match self.code {
            -32700 => "PARSE_ERROR",
            -32600 => "INVALID_REQUEST",
            -32601 => "METHOD_NOT_FOUND",
            -32602 => "INVALID_PARAMS",
            -32001 => "TASK_NOT_FOUND",
            -32002 => "TASK_NOT_CANCELABLE",
            -32003 => "PUSH_NOTIFICATION_NOT_SUPPORTED",
            -32004 => "UNSUPPORTED_OPERATION",
            -32009 => "VERSION_NOT_SUPPORTED",
            _ => "INTERNAL_ERROR",
        }
    }

    /// The `error` member of a response in `dialect`: v1.0 carries a google.rpc `ErrorInfo`,
    /// v0.3 a plain detail (or null).
    pub fn to_json(&self, dialect: Dialect) -> Value {
        let data = match dialect {
            Dialect::V1 => json!([{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": self.reason(),
                "domain": "a2a-protocol.org",
                "metadata": match &self.detail {
                    Some(Value::Object(m)) => Value::Object(m.clone()),
                    Some(other) => json!({ "detail": other.to_string() }),
                    None => json!({}),
                },
            }]),
            Dialect::V03 => self.detail.clone().unwrap_or(Value::Null),
        };
        json!({ "code": self.code, "message": self.message, "data": data })
    }
}

/// A response envelope: `{"jsonrpc": "2.0", "id": …, "result": …}`.
pub fn response(id: &Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

pub fn error_response(id: &Value, error: &RpcError, dialect: Dialect) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": error.to_json(dialect) })
}

// ---- reading ----

type Obj = Map<String, Value>;

fn as_object<'a>(value: &'a Value, what: &str) -> Result<&'a Obj, RpcError> {
    value
        .as_object()
        .ok_or_else(|| RpcError::invalid_params(format!("{what} must be an object")))
}

fn opt_str(obj: &Obj, field: &str, what: &str) -> Result<Option<String>, RpcError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        // Empty strings are how ProtoJSON writers print "unset".
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(RpcError::invalid_params(format!(
            "{what}.{field} must be a string"
        ))),
    }
}

fn req_str(obj: &Obj, field: &str, what: &str) -> Result<String, RpcError> {
    opt_str(obj, field, what)?
        .ok_or_else(|| RpcError::invalid_params(format!("{what}.{field} is required")))
}

fn opt_int(obj: &Obj, field: &str, what: &str) -> Result<Option<i64>, RpcError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| RpcError::invalid_params(format!("{what}.{field} must be an integer"))),
        // ProtoJSON allows 64-bit integers as strings.
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| RpcError::invalid_params(format!("{what}.{field} must be an integer"))),
        Some(_) => Err(RpcError::invalid_params(format!(
            "{what}.{field} must be an integer"
        ))),
    }
}

fn opt_bool(obj: &Obj, field: &str, what: &str) -> Result<Option<bool>, RpcError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(RpcError::invalid_params(format!(
            "{what}.{field} must be a boolean"
        ))),
    }
}

fn parse_role(text: &str, dialect: Dialect, what: &str) -> Result<Role, RpcError> {
    match (dialect, text) {
        (Dialect::V1, "ROLE_USER") | (Dialect::V03, "user") => Ok(Role::User),
        (Dialect::V1, "ROLE_AGENT") | (Dialect::V03, "agent") => Ok(Role::Agent),
        _ => Err(RpcError::invalid_params(format!(
            "{what}.role {text:?} is not a role of A2A {}: expected {}",
            match dialect {
                Dialect::V1 => "1.0",
                Dialect::V03 => "0.3",
            },
            match dialect {
                Dialect::V1 => "ROLE_USER or ROLE_AGENT",
                Dialect::V03 => "user or agent",
            }
        ))),
    }
}

fn decode_b64(text: &str, what: &str) -> Result<Vec<u8>, RpcError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
        .map_err(|e| RpcError::invalid_params(format!("{what} is not valid base64: {e}")))
}

fn parse_part(value: &Value, dialect: Dialect, what: &str) -> Result<Part, RpcError> {
    let obj = as_object(value, what)?;
    let media_type = opt_str(obj, "mediaType", what)?;
    match dialect {
        Dialect::V1 => {
            if let Some(text) = obj.get("text") {
                let text = text.as_str().ok_or_else(|| {
                    RpcError::invalid_params(format!("{what}.text must be a string"))
                })?;
                return Ok(Part::Text {
                    text: text.to_owned(),
                    media_type,
                });
            }
            if let Some(data) = obj.get("data") {
                return Ok(Part::Data { data: data.clone() });
            }
            let name = opt_str(obj, "filename", what)?;
            if let Some(url) = opt_str(obj, "url", what)? {
                return Ok(Part::File {
                    name,
                    media_type,
                    bytes: None,
                    uri: Some(url),
                });
            }
            if let Some(raw) = obj.get("raw") {
                let raw = raw.as_str().ok_or_else(|| {
                    RpcError::invalid_params(format!("{what}.raw must be base64 text"))
                })?;
                return Ok(Part::File {
                    name,
                    media_type,
                    bytes: Some(decode_b64(raw, &format!("{what}.raw"))?),
                    uri: None,
                });
            }
            Err(RpcError::invalid_params(format!(
                "{what} has none of text, data, url or raw"
            )))
        }
        Dialect::V03 => match obj.get("kind").and_then(Value::as_str) {
            Some("text") => Ok(Part::Text {
                text: req_str(obj, "text", what)?,
                media_type,
            }),
            Some("data") => Ok(Part::Data {
                data: obj
                    .get("data")
                    .cloned()
                    .ok_or_else(|| RpcError::invalid_params(format!("{what}.data is required")))?,
            }),
            Some("file") => {
                let file = obj
                    .get("file")
                    .ok_or_else(|| RpcError::invalid_params(format!("{what}.file is required")))?;
                let file = as_object(file, &format!("{what}.file"))?;
                let what = format!("{what}.file");
                let bytes = match opt_str(file, "bytes", &what)? {
                    Some(b) => Some(decode_b64(&b, &format!("{what}.bytes"))?),
                    None => None,
                };
                let uri = opt_str(file, "uri", &what)?;
                if bytes.is_none() && uri.is_none() {
                    return Err(RpcError::invalid_params(format!(
                        "{what} needs bytes or uri"
                    )));
                }
                Ok(Part::File {
                    name: opt_str(file, "name", &what)?,
                    media_type: opt_str(file, "mimeType", &what)?,
                    bytes,
                    uri,
                })
            }
            Some(other) => Err(RpcError::invalid_params(format!(
                "{what}.kind {other:?} is not text, data or file"
            ))),
            None => Err(RpcError::invalid_params(format!("{what}.kind is required"))),
        },
    }
}

pub fn parse_message(value: &Value, dialect: Dialect, what: &str) -> Result<Message, RpcError> {
    let obj = as_object(value, what)?;
    let role = parse_role(&req_str(obj, "role", what)?, dialect, what)?;
    let parts = match obj.get("parts") {
        Some(Value::Array(parts)) if !parts.is_empty() => parts
            .iter()
            .enumerate()
            .map(|(i, p)| parse_part(p, dialect, &format!("{what}.parts[{i}]")))
            .collect::<Result<Vec<_>, _>>()?,
        Some(Value::Array(_)) => {
            return Err(RpcError::invalid_params(format!(
                "{what}.parts must not be empty"
            )));
        }
        Some(_) => {
            return Err(RpcError::invalid_params(format!(
                "{what}.parts must be an array"
            )));
        }
        None => {
            return Err(RpcError::invalid_params(format!(
                "{what}.parts is required"
            )));
        }
    };
    Ok(Message {
        message_id: req_str(obj, "messageId", what)?,
        role,
        parts,
        task_id: opt_str(obj, "taskId", what)?,
        context_id: opt_str(obj, "contextId", what)?,
        metadata: obj.get("metadata").filter(|m| m.is_object()).cloned(),
    })
}

/// `SendMessage` / `message/send` params.
#[derive(Debug)]
pub struct SendParams {
    pub message: Message,
    /// Answer at once with the submitted task instead of waiting for the agent.
    pub return_immediately: bool,
    pub history_length: Option<usize>,
}

pub fn parse_send(params: &Value, dialect: Dialect) -> Result<SendParams, RpcError> {
    let obj = as_object(params, "params")?;
    let message = parse_message(
        obj.get("message")
            .ok_or_else(|| RpcError::invalid_params("params.message is required"))?,
        dialect,
        "params.message",
    )?;
    let config = match obj.get("configuration") {
        None | Some(Value::Null) => Obj::new(),
        Some(c) => as_object(c, "params.configuration")?.clone(),
    };
    let what = "params.configuration";
    if config
        .get("pushNotificationConfig")
        .or_else(|| config.get("taskPushNotificationConfig"))
        .is_some_and(|v| !v.is_null())
    {
        return Err(RpcError::push_not_supported());
    }
    let return_immediately = match dialect {
        Dialect::V1 => opt_bool(&config, "returnImmediately", what)?.unwrap_or(false),
        Dialect::V03 => !opt_bool(&config, "blocking", what)?.unwrap_or(true),
    };
    Ok(SendParams {
        message,
        return_immediately,
        history_length: history_length(&config, dialect, what)?,
    })
}

/// `historyLength`: v1.0 `0` = no history; v0.3 `0` = unlimited (as the SDKs treat it).
fn history_length(obj: &Obj, dialect: Dialect, what: &str) -> Result<Option<usize>, RpcError> {
    match opt_int(obj, "historyLength", what)? {
        None => Ok(None),
        Some(n) if n < 0 => Err(RpcError::invalid_params(format!(
            "{what}.historyLength must not be negative"
        ))),
        Some(0) if dialect == Dialect::V03 => Ok(None),
        Some(n) => Ok(Some(n as usize)),
    }
}

/// `GetTask` / `tasks/get`, `CancelTask`, `SubscribeToTask`: the task id and history length.
pub fn parse_task_query(
    params: &Value,
    dialect: Dialect,
) -> Result<(String, Option<usize>), RpcError> {
    let obj = as_object(params, "params")?;
    Ok((
        req_str(obj, "id", "params")?,
        history_length(obj, dialect, "params")?,
    ))
}

#[derive(Debug)]
pub struct ListParams {
    pub context_id: Option<String>,
    pub state: Option<TaskState>,
    pub page_size: usize,
    pub page_token: String,
    pub history_length: Option<usize>,
    pub include_artifacts: bool,
    pub status_after_ms: Option<u64>,
}

pub fn parse_list(params: &Value, dialect: Dialect) -> Result<ListParams, RpcError> {
    let empty = Obj::new();
    let obj = match params {
        Value::Null => &empty,
        p => as_object(p, "params")?,
    };
    let what = "params";
    let page_size = match opt_int(obj, "pageSize", what)? {
        None => 50,
        Some(n) if !(1..=100).contains(&n) => {
            return Err(RpcError::invalid_params(
                "params.pageSize must be between 1 and 100",
            ));
        }
        Some(n) => n as usize,
    };
    // Unknown state names filter nothing (a JS client sends "UNRECOGNIZED" for "any").
    let state = opt_str(obj, "status", what)?.and_then(|s| parse_state(&s));
    let status_after_ms = match opt_str(obj, "statusTimestampAfter", what)? {
        None => None,
        Some(t) => Some(
            humantime::parse_rfc3339_weak(&t)
                .map_err(|e| {
                    RpcError::invalid_params(format!(
                        "params.statusTimestampAfter {t:?} is not an RFC 3339 time: {e}"
                    ))
                })?
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        ),
    };
    Ok(ListParams {
        context_id: opt_str(obj, "contextId", what)?,
        state,
        page_size,
        page_token: opt_str(obj, "pageToken", what)?.unwrap_or_default(),
        history_length: history_length(obj, dialect, what)?,
        include_artifacts: opt_bool(obj, "includeArtifacts", what)?.unwrap_or(false),
        status_after_ms,
    })
}

/// A state in either spelling (`TASK_STATE_COMPLETED` or `completed`).
pub fn parse_state(text: &str) -> Option<TaskState> {
    let lower = text
        .strip_prefix("TASK_STATE_")
        .map(|s| s.to_ascii_lowercase().replace('_', "-"))
        .unwrap_or_else(|| text.to_owned());
    TaskState::parse(&lower)
}

// ---- writing ----

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

// ---- reading results (the client side: remote agents) ----

/// A `Task` (or a bare `Message` answer) from a v1.0 `SendMessage` result.
pub fn parse_send_result(result: &Value) -> Result<Task, String> {
    let obj = result.as_object().ok_or("the result is not an object")?;
    if let Some(task) = obj.get("task") {
        return parse_task(task);
    }
    if let Some(message) = obj.get("message") {
        let message =
            parse_message(message, Dialect::V1, "result.message").map_err(|e| e.message)?;
        return Ok(Task {
            id: message.task_id.clone().unwrap_or_default(),
            context_id: message.context_id.clone().unwrap_or_default(),
            agent: String::new(),
            status: TaskStatus {
                state: TaskState::Completed,
                message: Some(message),
                timestamp_ms: super::model::now_ms(),
            },
            history: Vec::new(),
            artifacts: Vec::new(),
            created_ms: 0,
            correlation_id: String::new(),
            owner: String::new(),
        });
    }
    Err("the result has neither a task nor a message".into())
}

fn parse_task(value: &Value) -> Result<Task, String> {
    let obj = value.as_object().ok_or("task is not an object")?;
    let status = obj
        .get("status")
        .and_then(Value::as_object)
        .ok_or("task.status is missing")?;
    let state = status
        .get("state")
        .and_then(Value::as_str)
        .and_then(parse_state)
        .ok_or("task.status.state is missing or unknown")?;
    let message = match status.get("message") {
        Some(m) if !m.is_null() => {
            Some(parse_message(m, Dialect::V1, "task.status.message").map_err(|e| e.message)?)
        }
        _ => None,
    };
    let mut history = Vec::new();
    if let Some(Value::Array(items)) = obj.get("history") {
        for (i, m) in items.iter().enumerate() {
            history.push(
                parse_message(m, Dialect::V1, &format!("task.history[{i}]"))
                    .map_err(|e| e.message)?,
            );
        }
    }
    let mut artifacts = Vec::new();
    if let Some(Value::Array(items)) = obj.get("artifacts") {
        for (i, a) in items.iter().enumerate() {
            let what = format!("task.artifacts[{i}]");
            let a = a.as_object().ok_or(format!("{what} is not an object"))?;
            let parts = match a.get("parts") {
                Some(Value::Array(parts)) => parts
                    .iter()
                    .enumerate()
                    .map(|(j, p)| parse_part(p, Dialect::V1, &format!("{what}.parts[{j}]")))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.message)?,
                _ => Vec::new(),
            };
            artifacts.push(Artifact {
                artifact_id: opt_str(a, "artifactId", &what)
                    .map_err(|e| e.message)?
                    .unwrap_or_default(),
                name: opt_str(a, "name", &what).map_err(|e| e.message)?,
                description: opt_str(a, "description", &what).map_err(|e| e.message)?,
                parts,
            });
        }
    }
    Ok(Task {
        id: obj
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        context_id: obj
            .get("contextId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        agent: String::new(),
        status: TaskStatus {
            state,
            message,
            timestamp_ms: super::model::now_ms(),
        },
        history,
        artifacts,
        created_ms: 0,
        correlation_id: String::new(),
        owner: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_task() -> Task {
        Task {
            id: "T".into(),
            context_id: "C".into(),
            agent: "echo".into(),
            status: TaskStatus {
                state: TaskState::InputRequired,
                message: None,
                timestamp_ms: 1_767_225_600_000,
            },
            history: vec![Message {
                message_id: "M".into(),
                role: Role::User,
                parts: vec![
                    Part::Text {
                        text: "hi".into(),
                        media_type: None,
                    },
                    Part::Data { data: json!([1]) },
                    Part::File {
                        name: Some("a.bin".into()),
                        media_type: Some("application/octet-stream".into()),
                        bytes: Some(vec![1, 2]),
                        uri: None,
                    },
                ],
                task_id: Some("T".into()),
                context_id: Some("C".into()),
                metadata: None,
            }],
            artifacts: Vec::new(),
            created_ms: 0,
            correlation_id: "c".into(),
            owner: String::new(),
        }
    }

    #[test]
    fn v1_and_v03_spell_tasks_their_own_way() {
        let t = sample_task();
        let v1 = send_result(&t, Dialect::V1, View::full(None));
        assert_eq!(v1["task"]["status"]["state"], "TASK_STATE_INPUT_REQUIRED");
        assert_eq!(v1["task"]["history"][0]["role"], "ROLE_USER");
        assert_eq!(v1["task"]["history"][0]["parts"][2]["raw"], "AQI=");
        assert!(v1["task"].get("kind").is_none());
        let v03 = send_result(&t, Dialect::V03, View::full(None));
        assert_eq!(v03["kind"], "task");
        assert_eq!(v03["status"]["state"], "input-required");
        assert_eq!(v03["history"][0]["kind"], "message");
        assert_eq!(v03["history"][0]["parts"][0]["kind"], "text");
        assert_eq!(v03["history"][0]["parts"][1]["data"]["value"], json!([1]));
        assert_eq!(v03["history"][0]["parts"][2]["file"]["bytes"], "AQI=");
        assert_eq!(v03["status"]["timestamp"], "2026-01-01T00:00:00.000Z");
    }

    #[test]
    fn messages_parse_in_both_dialects_and_errors_name_the_field() {
        let v1 = json!({"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}, {"url": "http://x", "filename": "f"}]});
        let m = parse_message(&v1, Dialect::V1, "params.message").unwrap();
        assert_eq!(m.text(), "hi");
        assert!(matches!(&m.parts[1], Part::File { uri: Some(u), .. } if u == "http://x"));
        let v03 = json!({"kind": "message", "messageId": "m", "role": "user", "parts": [{"kind": "file", "file": {"bytes": "AQI=", "mimeType": "x/y"}}]});
        let m = parse_message(&v03, Dialect::V03, "params.message").unwrap();
        assert!(matches!(&m.parts[0], Part::File { bytes: Some(b), .. } if b == &[1, 2]));

        let err = parse_message(
            &json!({"messageId": "m", "role": "user", "parts": [{"text": "x"}]}),
            Dialect::V1,
            "params.message",
        )
        .unwrap_err();
        assert_eq!(err.code, -32602);
        assert!(
            err.message.contains("params.message.role"),
            "{}",
            err.message
        );
        let err = parse_message(
            &json!({"messageId": "m", "role": "ROLE_USER", "parts": []}),
            Dialect::V1,
            "params.message",
        )
        .unwrap_err();
        assert!(err.message.contains("parts must not be empty"));
        let err = parse_message(
            &json!({"role": "ROLE_USER", "parts": [{"text": "x"}]}),
            Dialect::V1,
            "params.message",
        )
        .unwrap_err();
        assert!(err.message.contains("params.message.messageId is required"));
        let err = parse_message(
            &json!({"messageId": "m", "role": "ROLE_USER", "parts": [{"nothing": 1}]}),
            Dialect::V1,
            "params.message",
        )
        .unwrap_err();
        assert!(err.message.contains("params.message.parts[0]"));
    }

    #[test]
    fn blocking_and_history_follow_each_dialect() {
        let msg = json!({"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "x"}]});
        let p = parse_send(&json!({"message": msg, "configuration": {"returnImmediately": true, "historyLength": 0}}), Dialect::V1).unwrap();
        assert!(p.return_immediately);
        assert_eq!(p.history_length, Some(0));
        let msg03 = json!({"kind": "message", "messageId": "m", "role": "user", "parts": [{"kind": "text", "text": "x"}]});
        let p = parse_send(
            &json!({"message": msg03, "configuration": {"blocking": false, "historyLength": 0}}),
            Dialect::V03,
        )
        .unwrap();
        assert!(p.return_immediately);
        assert_eq!(p.history_length, None);
        let err = parse_send(&json!({"message": msg, "configuration": {"taskPushNotificationConfig": {"url": "http://x"}}}), Dialect::V1).unwrap_err();
        assert_eq!(err.code, -32003);
    }

    #[test]
    fn list_params_are_checked_and_unknown_states_ignored() {
        let p = parse_list(
            &json!({"status": "UNRECOGNIZED", "pageSize": 5}),
            Dialect::V1,
        )
        .unwrap();
        assert_eq!(p.state, None);
        assert_eq!(p.page_size, 5);
        assert_eq!(
            parse_list(&json!({"status": "TASK_STATE_CANCELED"}), Dialect::V1)
                .unwrap()
                .state,
            Some(TaskState::Canceled)
        );
        assert_eq!(
            parse_list(&json!({"pageSize": 0}), Dialect::V1)
                .unwrap_err()
                .code,
            -32602
        );
        assert!(parse_list(&Value::Null, Dialect::V1).is_ok());
    }

    #[test]
    fn errors_carry_error_info_in_v1_only() {
        let e = RpcError::task_not_found("x");
        assert_eq!(
            e.to_json(Dialect::V1)["data"][0]["reason"],
            "TASK_NOT_FOUND"
        );
        assert_eq!(e.to_json(Dialect::V03)["data"], Value::Null);
        assert_eq!(e.to_json(Dialect::V1)["code"], -32001);
    }

    #[test]
    fn stream_events_mark_final_only_for_terminal_states_in_v03() {
        let status = |state| StreamEvent::Status {
            task_id: "T".into(),
            context_id: "C".into(),
            status: TaskStatus {
                state,
                message: None,
                timestamp_ms: 0,
            },
            last: true,
        };
        let done = stream_event_json(&status(TaskState::Completed), Dialect::V03);
        assert_eq!(done["final"], true);
        assert_eq!(done["kind"], "status-update");
        let interrupted = stream_event_json(&status(TaskState::InputRequired), Dialect::V03);
        assert_eq!(interrupted["final"], false);
        let v1 = stream_event_json(&status(TaskState::Completed), Dialect::V1);
        assert_eq!(
            v1["statusUpdate"]["status"]["state"],
            "TASK_STATE_COMPLETED"
        );
        assert!(v1["statusUpdate"].get("final").is_none());
    }
}
