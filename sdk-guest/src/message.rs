//! Helpers on [`Message`] and [`Reply`].

use crate::{Artifact, Message, Part, Reply, Role, TaskState};

impl Message {
    /// A message with one text part. `message-id` is left empty (the host assigns ids to the
    /// messages it sends on an agent's behalf); task and context ids are unset.
    pub fn from_text(role: Role, text: impl Into<String>) -> Self {
        Message {
            message_id: String::new(),
            role,
            parts: vec![Part::Text(text.into())],
            task_id: None,
            context_id: None,
        }
    }

    /// The text parts, concatenated in order (data and file parts are skipped).
    pub fn text(&self) -> String {
        self.parts
            .iter()
            .filter_map(|part| match part {
                Part::Text(text) => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The data parts: serialized JSON values, in order.
    pub fn data(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Data(json) => Some(json.as_str()),
            _ => None,
        })
    }
}

impl Reply {
    /// A completed task whose answer is one agent message with one text part.
    pub fn text(text: impl Into<String>) -> Self {
        Reply {
            message: Some(Message::from_text(Role::Agent, text)),
            artifacts: Vec::new(),
            state: TaskState::Completed,
        }
    }

    /// A reply in `state` with no message and no artifacts.
    pub fn empty(state: TaskState) -> Self {
        Reply {
            message: None,
            artifacts: Vec::new(),
            state,
        }
    }

    /// Set the task state.
    pub fn with_state(mut self, state: TaskState) -> Self {
        self.state = state;
        self
    }

    /// Add an artifact.
    pub fn artifact(mut self, artifact: Artifact) -> Self {
        self.artifacts.push(artifact);
        self
    }
}
