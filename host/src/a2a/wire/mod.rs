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
//! error names the field. Requests are read in `request.rs`, answers written in `render.rs`,
//! and remote agents' answers read in `result.rs`.

mod render;
mod request;
mod result;

pub use render::{View, message_json, send_result, stream_event_json, task_json};
pub use request::{
    ListParams, SendParams, parse_list, parse_message, parse_send, parse_state, parse_task_query,
};
pub use result::parse_send_result;

use super::model::TaskState;
use serde_json::{Value, json};

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

#[cfg(test)]
mod tests {
    use super::render::*;
    use super::request::*;
    use super::*;
    use crate::a2a::model::{Message, Part, Role, StreamEvent, Task, TaskState, TaskStatus};

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

    /// Proto field names (`history_length`) are read like their lowerCamelCase JSON names, as
    /// proto3 JSON parsers do; the JSON name wins when both are given.
    #[test]
    fn proto_field_names_are_accepted() {
        let params = json!({
            "message": {
                "message_id": "m-1",
                "role": "ROLE_USER",
                "parts": [{ "text": "hi" }],
                "context_id": "ctx",
                "task_id": "t-1"
            },
            "configuration": { "history_length": 2, "return_immediately": true }
        });
        let send = parse_send(&params, Dialect::V1).unwrap();
        assert_eq!(send.message.message_id, "m-1");
        assert_eq!(send.message.context_id.as_deref(), Some("ctx"));
        assert_eq!(send.message.task_id.as_deref(), Some("t-1"));
        assert_eq!(send.history_length, Some(2));
        assert!(send.return_immediately);
        let (id, history) = parse_task_query(
            &json!({"id": "T", "history_length": 1, "historyLength": 3}),
            Dialect::V1,
        )
        .unwrap();
        assert_eq!((id.as_str(), history), ("T", Some(3)));
        let list = parse_list(
            &json!({"context_id": "ctx", "page_size": 5, "include_artifacts": true}),
            Dialect::V1,
        )
        .unwrap();
        assert_eq!(list.context_id.as_deref(), Some("ctx"));
        assert_eq!((list.page_size, list.include_artifacts), (5, true));
        let pushed = parse_send(
            &json!({"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "x"}]},
                    "configuration": {"push_notification_config": {"url": "http://x"}}}),
            Dialect::V1,
        );
        assert!(
            pushed.is_err(),
            "a push config under its proto name is seen too"
        );
    }
}
