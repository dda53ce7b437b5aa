//! Messages to other agents through the host (the `a2a` import).
//!
//! A peer is an agent name (another agent on this host, called in-process), a skill id (the
//! agent advertising it, on this host or among the host's configured remote peers), or an A2A
//! URL. The manifest's `capabilities.a2a` must list it: anything else is
//! [`HostError::Denied`]. A peer that cannot be reached, or a call that times out, is
//! [`HostError::Failed`]. A peer that answered is a [`Response`], whatever its task's state.
//!
//! ```no_run
//! # fn demo() -> Result<(), agenthost_sdk::Failure> {
//! use agenthost_sdk::{TaskState, a2a};
//!
//! let answer = a2a::send_text("order-update", "sku-1: hold")?;
//! if answer.state != TaskState::Completed {
//!     return Err(agenthost_sdk::Failure::retry(format!("order-update: {:?}", answer.state)));
//! }
//! let text = answer.text();
//! # Ok(())
//! # }
//! ```

#[cfg(target_arch = "wasm32")]
use crate::bindings::agenthost::agent::a2a as raw;
// Outside a component (unit tests): the fake host of `testing`.
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::a2a as raw;
use crate::{HostError, Message, Part, Role};

pub use raw::Response;

/// Send `message` to `peer` and wait for its answer.
pub fn send(peer: &str, message: &Message) -> Result<Response, HostError> {
    raw::send_message(peer, message)
}

/// Send one text part to `peer` and wait for its answer.
pub fn send_text(peer: &str, text: &str) -> Result<Response, HostError> {
    raw::send_message(peer, &Message::from_text(Role::User, text))
}

impl Response {
    /// The text of the peer's message and of its artifacts, joined by newlines.
    pub fn text(&self) -> String {
        let message = self.message.iter().map(Message::text);
        let artifacts = self.artifacts.iter().map(|a| {
            a.parts
                .iter()
                .filter_map(|p| match p {
                    Part::Text(t) => Some(t.as_str()),
                    _ => None,
                })
                .collect::<String>()
        });
        message
            .chain(artifacts)
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
