//! What the invocation in progress was asked for beyond its message (the `invocation`
//! import, always granted).
//!
//! An agent that offers several card skills as MCP tools learns which one was called:
//!
//! ```no_run
//! use agenthost_sdk::{Failure, Message, Reply, invocation};
//!
//! fn on_message(message: Message) -> Result<Reply, Failure> {
//!     match invocation::skill().as_deref() {
//!         Some("lookup") => Ok(Reply::text("found it")),
//!         Some("summarise") => Ok(Reply::text("in short: …")),
//!         // Bus records and A2A messages address the agent, not a skill.
//!         _ => Ok(Reply::text(message.text())),
//!     }
//! }
//! ```

#[cfg(target_arch = "wasm32")]
use crate::bindings::agenthost::agent::invocation as raw;
// Outside a component (unit tests): the fake host of `testing`.
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::invocation as raw;

/// The id of the card skill the caller addressed: the skill behind an MCP tool call. `None`
/// for bus records and A2A messages.
pub fn skill() -> Option<String> {
    raw::skill()
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use crate::testing::TestHost;
    use crate::{Agent, Card, Failure, Message, Reply};

    struct Tools;
    impl Agent for Tools {
        fn card() -> Card {
            Card::new("tools", "1.0.0")
        }
        fn on_message(_: Message) -> Result<Reply, Failure> {
            Ok(Reply::text(
                super::skill().unwrap_or_else(|| "no skill".into()),
            ))
        }
    }

    #[test]
    fn a_tool_call_names_its_skill_and_a_message_names_none() {
        let host = TestHost::new();
        let reply = host
            .on_tool_call::<Tools>("lookup", Message::from_text(crate::Role::User, "x"))
            .unwrap();
        assert_eq!(reply.message.unwrap().text(), "lookup");
        let reply = host
            .on_message::<Tools>(Message::from_text(crate::Role::User, "x"))
            .unwrap();
        assert_eq!(reply.message.unwrap().text(), "no skill");
    }
}
