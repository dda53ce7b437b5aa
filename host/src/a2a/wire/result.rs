//! Reading results: what a remote agent answered to a call this host made (`SendMessage`), into
//! the host's model.

use super::Dialect;
use super::request::*;
use crate::a2a::model::{Artifact, Task, TaskState, TaskStatus};
use serde_json::Value;

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
                timestamp_ms: crate::a2a::model::now_ms(),
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
            timestamp_ms: crate::a2a::model::now_ms(),
        },
        history,
        artifacts,
        created_ms: 0,
        correlation_id: String::new(),
        owner: String::new(),
    })
}
