//! Unit tests of an agent without a host: run its handlers natively (`cargo test`) against
//! in-memory fakes of the imports, granted what its manifest grants.
//!
//! Built for every target but `wasm32` (inside a component the real imports are used).
//! A [`TestHost`] is the host for the thread that made it (each `#[test]` runs on a thread of
//! its own): while it lives, the SDK's import modules — [`bus`](crate::bus),
//! [`state`](crate::state), [`config`](crate::config), [`mcp`](crate::mcp), [`a2a`](crate::a2a)
//! and [`log`](crate::log) — talk to it. It checks uses as the host does: a topic, tool or peer
//! the grants do not name, or state without a quota, comes back as [`HostError::Denied`]
//! (and is listed in [`TestHost::denials`]).
//!
//! ```
//! use agenthost_sdk::testing::{TestEvent as _, TestHost, event};
//! use agenthost_sdk::{Agent, Card, Event, Failure, bus, config};
//!
//! struct Echo;
//!
//! impl Agent for Echo {
//!     fn card() -> Card {
//!         Card::new("echo", "0.1.0")
//!     }
//!     fn on_event(event: Event) -> Result<(), Failure> {
//!         bus::Record::forward(config::require("out")?, event).publish()?;
//!         Ok(())
//!     }
//! }
//!
//! let host = TestHost::from_manifest(
//!     r#"
//!     name = "echo"
//!     version = "0.1.0"
//!     component = "echo.wasm"
//!     [capabilities]
//!     publish = ["echo.out.v1"]
//!     config = { out = "echo.out.v1" }
//!     "#,
//! )
//! .unwrap();
//! host.on_event::<Echo>(event("echo.in.v1", "hello").key("a")).unwrap();
//! let published = host.published();
//! assert_eq!(published[0].topic, "echo.out.v1");
//! assert_eq!(published[0].payload, b"hello");
//! ```

mod fake;
mod grants;

pub(crate) use fake::{a2a, bus, config, invocation, log, mcp, state};

use crate::bindings::agenthost::agent::a2a::Response;
use crate::bindings::agenthost::agent::bus::Outgoing;
use crate::bindings::agenthost::agent::log::Level;
use crate::bindings::agenthost::agent::mcp::{Content, ToolResult};
use crate::{Agent, Event, Failure, Header, HostError, Message, Reply};
use fake::{Fake, with_current};
use std::collections::BTreeMap;

/// The fake host of the current thread. Dropping it uninstalls it.
pub struct TestHost {
    _not_send: std::marker::PhantomData<*const ()>,
}

/// A tool's fake: its answer to a call's arguments (serialized JSON).
pub type ToolFake = Box<dyn FnMut(&str) -> Result<ToolResult, HostError>>;
/// A peer's fake: its answer to a message.
pub type PeerFake = Box<dyn FnMut(&Message) -> Result<Response, HostError>>;

impl TestHost {
    /// A host that grants nothing: every use is denied until granted with the builders.
    pub fn new() -> Self {
        fake::install(Fake::default());
        Self {
            _not_send: std::marker::PhantomData,
        }
    }

    /// A host granting what the manifest's `[capabilities]` grants (publish patterns, state,
    /// config values, MCP tools, A2A peers). Pass the manifest's text, e.g.
    /// `include_str!("../agent.toml")`.
    pub fn from_manifest(manifest: &str) -> Result<Self, String> {
        let grants = grants::Grants::parse(manifest)?;
        let host = Self::new();
        with_current(|f| f.grants = grants);
        Ok(host)
    }

    /// Sets config value `key` (as `capabilities.config` would).
    pub fn config(self, key: &str, value: &str) -> Self {
        with_current(|f| {
            f.grants.config.insert(key.to_owned(), value.to_owned());
        });
        self
    }

    /// Grants publishing to topics matching `pattern` (`*` matches any run of characters).
    pub fn publish(self, pattern: &str) -> Self {
        with_current(|f| f.grants.publish.push(pattern.to_owned()));
        self
    }

    /// Grants state (as `capabilities.state` would).
    pub fn state(self) -> Self {
        with_current(|f| f.grants.state = true);
        self
    }

    /// Stores `value` under `key` before the test, as earlier events would have.
    pub fn with_state(self, key: &str, value: &[u8]) -> Self {
        with_current(|f| {
            f.state.insert(key.to_owned(), value.to_vec());
        });
        self
    }

    /// Grants the MCP tool `server`/`tool` and answers its calls with `answer`.
    pub fn tool(
        self,
        server: &str,
        tool: &str,
        answer: impl FnMut(&str) -> Result<ToolResult, HostError> + 'static,
    ) -> Self {
        with_current(|f| {
            f.grants.grant_tool(server, tool);
            f.tools
                .insert((server.to_owned(), tool.to_owned()), Box::new(answer));
        });
        self
    }

    /// Grants messages to `peer` and answers them with `answer`.
    pub fn peer(
        self,
        peer: &str,
        answer: impl FnMut(&Message) -> Result<Response, HostError> + 'static,
    ) -> Self {
        with_current(|f| {
            f.grants.a2a.push(peer.to_owned());
            f.peers.insert(peer.to_owned(), Box::new(answer));
        });
        self
    }

    /// Hands `event` to the agent's `on_event`.
    pub fn on_event<A: Agent>(&self, event: Event) -> Result<(), Failure> {
        A::on_event(event)
    }

    /// Hands `message` to the agent's `on_message`.
    pub fn on_message<A: Agent>(&self, message: Message) -> Result<Reply, Failure> {
        with_current(|f| f.skill = None);
        A::on_message(message)
    }

    /// Hands `message` to the agent's `on_message` as a call of the MCP tool of card skill
    /// `skill` (what [`invocation::skill`](crate::invocation::skill) returns meanwhile).
    pub fn on_tool_call<A: Agent>(&self, skill: &str, message: Message) -> Result<Reply, Failure> {
        with_current(|f| f.skill = Some(skill.to_owned()));
        let reply = A::on_message(message);
        with_current(|f| f.skill = None);
        reply
    }

    /// The records published (or sent) so far, in order.
    pub fn published(&self) -> Vec<Outgoing> {
        with_current(|f| f.published.clone())
    }

    /// The payloads published to `topic` so far, as text (lossily).
    pub fn published_to(&self, topic: &str) -> Vec<String> {
        with_current(|f| {
            f.published
                .iter()
                .filter(|r| r.topic == topic)
                .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
                .collect()
        })
    }

    /// What is stored now.
    pub fn stored(&self) -> BTreeMap<String, Vec<u8>> {
        with_current(|f| f.state.clone())
    }

    /// The calls made to MCP tools: `(server, tool, arguments)`.
    pub fn tool_calls(&self) -> Vec<(String, String, String)> {
        with_current(|f| f.tool_calls.clone())
    }

    /// The lines logged, with their level.
    pub fn logs(&self) -> Vec<(Level, String)> {
        with_current(|f| f.logs.clone())
    }

    /// Why each denied use was denied, in order.
    pub fn denials(&self) -> Vec<String> {
        with_current(|f| f.denials.clone())
    }
}

impl Default for TestHost {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        fake::uninstall();
    }
}

/// A bus event for a test: partition 0, offset 0, attempt 1, no key or headers; refine it with
/// [`TestEvent`]'s builders.
pub fn event(topic: &str, payload: impl AsRef<[u8]>) -> Event {
    Event {
        topic: topic.to_owned(),
        partition: 0,
        offset: 0,
        key: None,
        payload: payload.as_ref().to_vec(),
        headers: Vec::new(),
        timestamp_ms: 0,
        correlation_id: "test".to_owned(),
        attempt: 1,
    }
}

/// Builders for a test [`Event`].
pub trait TestEvent {
    fn key(self, key: impl AsRef<[u8]>) -> Self;
    fn header(self, key: &str, value: impl AsRef<[u8]>) -> Self;
    fn offset(self, offset: u64) -> Self;
    fn attempt(self, attempt: u32) -> Self;
}

impl TestEvent for Event {
    fn key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.key = Some(key.as_ref().to_vec());
        self
    }
    fn header(mut self, key: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.push(Header {
            key: key.to_owned(),
            value: value.as_ref().to_vec(),
        });
        self
    }
    fn offset(mut self, offset: u64) -> Self {
        self.offset = offset;
        self
    }
    fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }
}

/// A tool result with one text item, for [`TestHost::tool`].
pub fn tool_text(text: &str) -> ToolResult {
    ToolResult {
        content: vec![Content::Text(text.to_owned())],
        structured_content: None,
        is_error: false,
    }
}
