//! Reading requests: a client's JSON-RPC params in either dialect, into the host's model. Strict
//! about what the protocol requires, lenient about the rest; every error names the field.

use super::Dialect;
use super::RpcError;
use crate::a2a::model::{Message, Part, Role, TaskState};
use base64::Engine;
use serde_json::{Map, Value};

pub(super) type Obj = Map<String, Value>;

pub(super) fn as_object<'a>(value: &'a Value, what: &str) -> Result<&'a Obj, RpcError> {
    value
        .as_object()
        .ok_or_else(|| RpcError::invalid_params(format!("{what} must be an object")))
}

/// The value of `field` (lowerCamelCase, as the protocol names it) or of its proto field name
/// (`historyLength` or `history_length`): proto3 JSON parsers accept both, and several clients
/// send the proto names.
pub(super) fn field<'a>(obj: &'a Obj, field: &str) -> Option<&'a Value> {
    obj.get(field).or_else(|| {
        field
            .contains(|c: char| c.is_ascii_uppercase())
            .then(|| obj.get(&proto_name(field)))
            .flatten()
    })
}

/// `historyLength` → `history_length`.
fn proto_name(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

pub(super) fn opt_str(obj: &Obj, field: &str, what: &str) -> Result<Option<String>, RpcError> {
    match self::field(obj, field) {
        None | Some(Value::Null) => Ok(None),
        // Empty strings are how ProtoJSON writers print "unset".
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(RpcError::invalid_params(format!(
            "{what}.{field} must be a string"
        ))),
    }
}

pub(super) fn req_str(obj: &Obj, field: &str, what: &str) -> Result<String, RpcError> {
    opt_str(obj, field, what)?
        .ok_or_else(|| RpcError::invalid_params(format!("{what}.{field} is required")))
}

pub(super) fn opt_int(obj: &Obj, field: &str, what: &str) -> Result<Option<i64>, RpcError> {
    match self::field(obj, field) {
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

pub(super) fn opt_bool(obj: &Obj, field: &str, what: &str) -> Result<Option<bool>, RpcError> {
    match self::field(obj, field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(RpcError::invalid_params(format!(
            "{what}.{field} must be a boolean"
        ))),
    }
}

pub(super) fn parse_role(text: &str, dialect: Dialect, what: &str) -> Result<Role, RpcError> {
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

pub(super) fn decode_b64(text: &str, what: &str) -> Result<Vec<u8>, RpcError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
        .map_err(|e| RpcError::invalid_params(format!("{what} is not valid base64: {e}")))
}

pub(super) fn parse_part(value: &Value, dialect: Dialect, what: &str) -> Result<Part, RpcError> {
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
    if field(&config, "pushNotificationConfig")
        .or_else(|| field(&config, "taskPushNotificationConfig"))
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
