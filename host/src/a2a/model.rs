//! The host's own model of A2A tasks and messages: one shape, stored in sled and translated at
//! the edges — to the WIT types agents see, and to the two JSON dialects clients speak
//! (`wire`: A2A v1.0 and v0.3).

use crate::wit::types as wit;
use serde::{Deserialize, Serialize};

/// The most one A2A message may carry, in bytes: the request body limit of the JSON-RPC
/// endpoint, and the bound on what an agent may send another (the host copies and parses it
/// outside the agent's `limits.memory`).
pub const MAX_BODY: usize = crate::capabilities::a2a::MAX_MESSAGE;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    User,
    Agent,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Part {
    Text {
        text: String,
        media_type: Option<String>,
    },
    Data {
        data: serde_json::Value,
    },
    File {
        name: Option<String>,
        media_type: Option<String>,
        bytes: Option<Vec<u8>>,
        uri: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub message_id: String,
    pub role: Role,
    pub parts: Vec<Part>,
    pub task_id: Option<String>,
    pub context_id: Option<String>,
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

impl Message {
    /// An agent's message with one text part.
    pub fn agent_text(text: impl Into<String>) -> Self {
        Self {
            message_id: uuid::Uuid::new_v4().to_string(),
            role: Role::Agent,
            parts: vec![Part::Text {
                text: text.into(),
                media_type: None,
            }],
            task_id: None,
            context_id: None,
            metadata: None,
        }
    }

    /// The text parts, joined by newlines.
    pub fn text(&self) -> String {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Text { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    pub artifact_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub parts: Vec<Part>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    Submitted,
    Working,
    InputRequired,
    AuthRequired,
    Completed,
    Failed,
    Canceled,
    Rejected,
}

impl TaskState {
    /// No further message changes a task in a terminal state.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Completed | TaskState::Failed | TaskState::Canceled | TaskState::Rejected
        )
    }

    /// Interrupted: the task waits for the client.
    pub fn is_interrupted(self) -> bool {
        matches!(self, TaskState::InputRequired | TaskState::AuthRequired)
    }

    /// The v0.3 spelling (`input-required`), also used in logs and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Submitted => "submitted",
            TaskState::Working => "working",
            TaskState::InputRequired => "input-required",
            TaskState::AuthRequired => "auth-required",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
            TaskState::Canceled => "canceled",
            TaskState::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "submitted" => TaskState::Submitted,
            "working" => TaskState::Working,
            "input-required" => TaskState::InputRequired,
            "auth-required" => TaskState::AuthRequired,
            "completed" => TaskState::Completed,
            "failed" => TaskState::Failed,
            "canceled" => TaskState::Canceled,
            "rejected" => TaskState::Rejected,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub state: TaskState,
    pub message: Option<Message>,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub context_id: String,
    /// The agent serving it.
    pub agent: String,
    pub status: TaskStatus,
    pub history: Vec<Message>,
    pub artifacts: Vec<Artifact>,
    pub created_ms: u64,
    pub correlation_id: String,
    /// Who created it, and so who may read, list, continue, subscribe to and cancel it: a
    /// client of the HTTP port by the scheme it authenticated with (`client:NAME`, or
    /// `client:anonymous` for an agent served with `security = []`), an agent calling in
    /// process (`agent:NAME`), or a bus request (`bus:SKILL`). Empty for tasks stored by
    /// earlier versions, which any client of the agent may still read.
    #[serde(default)]
    pub owner: String,
}

/// Whether a task owned by `owner` is visible to `principal` (see [`Task::owner`]).
pub fn visible_to(owner: &str, principal: &str) -> bool {
    owner == principal || (owner.is_empty() && principal.starts_with("client:"))
}

/// What a streaming client receives, in order: the task, then status and artifact updates;
/// the last status update is `final`. A reply without a task is a single message.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    Task(Task),
    Message(Message),
    Status {
        task_id: String,
        context_id: String,
        status: TaskStatus,
        last: bool,
    },
    Artifact {
        task_id: String,
        context_id: String,
        artifact: Artifact,
    },
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

// ---- WIT ↔ model ----

impl From<&Part> for wit::Part {
    fn from(part: &Part) -> Self {
        match part {
            Part::Text { text, .. } => wit::Part::Text(text.clone()),
            Part::Data { data } => wit::Part::Data(data.to_string()),
            Part::File {
                name,
                media_type,
                bytes,
                uri,
            } => wit::Part::File(wit::FilePart {
                name: name.clone(),
                media_type: media_type.clone(),
                bytes: bytes.clone(),
                uri: uri.clone(),
            }),
        }
    }
}

impl From<wit::Part> for Part {
    fn from(part: wit::Part) -> Self {
        match part {
            wit::Part::Text(text) => Part::Text {
                text,
                media_type: None,
            },
            // An agent's data part that is not JSON is kept as a JSON string rather than lost.
            wit::Part::Data(json) => Part::Data {
                data: serde_json::from_str(&json).unwrap_or(serde_json::Value::String(json)),
            },
            wit::Part::File(f) => Part::File {
                name: f.name,
                media_type: f.media_type,
                bytes: f.bytes,
                uri: f.uri,
            },
        }
    }
}

impl From<&Message> for wit::Message {
    fn from(m: &Message) -> Self {
        wit::Message {
            message_id: m.message_id.clone(),
            role: match m.role {
                Role::User => wit::Role::User,
                Role::Agent => wit::Role::Agent,
            },
            parts: m.parts.iter().map(Into::into).collect(),
            task_id: m.task_id.clone(),
            context_id: m.context_id.clone(),
        }
    }
}

impl From<wit::Message> for Message {
    fn from(m: wit::Message) -> Self {
        Message {
            message_id: if m.message_id.is_empty() {
                uuid::Uuid::new_v4().to_string()
            } else {
                m.message_id
            },
            role: match m.role {
                wit::Role::User => Role::User,
                wit::Role::Agent => Role::Agent,
            },
            parts: m.parts.into_iter().map(Into::into).collect(),
            task_id: m.task_id,
            context_id: m.context_id,
            metadata: None,
        }
    }
}

impl From<wit::Artifact> for Artifact {
    fn from(a: wit::Artifact) -> Self {
        Artifact {
            artifact_id: if a.artifact_id.is_empty() {
                uuid::Uuid::new_v4().to_string()
            } else {
                a.artifact_id
            },
            name: a.name,
            description: a.description,
            parts: a.parts.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<&Artifact> for wit::Artifact {
    fn from(a: &Artifact) -> Self {
        wit::Artifact {
            artifact_id: a.artifact_id.clone(),
            name: a.name.clone(),
            description: a.description.clone(),
            parts: a.parts.iter().map(Into::into).collect(),
        }
    }
}

impl From<wit::TaskState> for TaskState {
    fn from(s: wit::TaskState) -> Self {
        match s {
            wit::TaskState::Submitted => TaskState::Submitted,
            wit::TaskState::Working => TaskState::Working,
            wit::TaskState::InputRequired => TaskState::InputRequired,
            wit::TaskState::AuthRequired => TaskState::AuthRequired,
            wit::TaskState::Completed => TaskState::Completed,
            wit::TaskState::Failed => TaskState::Failed,
            wit::TaskState::Canceled => TaskState::Canceled,
            wit::TaskState::Rejected => TaskState::Rejected,
        }
    }
}

impl From<TaskState> for wit::TaskState {
    fn from(s: TaskState) -> Self {
        match s {
            TaskState::Submitted => wit::TaskState::Submitted,
            TaskState::Working => wit::TaskState::Working,
            TaskState::InputRequired => wit::TaskState::InputRequired,
            TaskState::AuthRequired => wit::TaskState::AuthRequired,
            TaskState::Completed => wit::TaskState::Completed,
            TaskState::Failed => wit::TaskState::Failed,
            TaskState::Canceled => wit::TaskState::Canceled,
            TaskState::Rejected => wit::TaskState::Rejected,
        }
    }
}
