//! `a2a`: an agent sends a message to a peer its manifest's `capabilities.a2a` lists — an
//! agent name (in-process, no HTTP hop), `agent/skill` (that agent, which must advertise the
//! skill), a skill id (the local agent that owns it, see [`crate::a2a::skills`], else a remote
//! agent from the host's `[[a2a.peers]]` whose card lists it), or an A2A URL (card fetched and
//! cached, call over HTTP). Every call is checked and audited.

use super::caller::Caller;
use crate::audit::AuditLog;
use crate::wit::{a2a as wit, types};
use std::sync::Arc;
use wasmtime::component::{HasData, Linker};

pub const CAPABILITY: super::capability::Capability = super::capability::Capability {
    key: Some("capabilities.a2a"),
    interfaces: &["agenthost:agent/a2a"],
    required: Some(super::capability::Requirement {
        granted: |c| !c.a2a.is_empty(),
        missing: "peers: list agent names, skill ids or A2A URLs in `capabilities.a2a`",
    }),
    validate: |c| match c.a2a.iter().position(String::is_empty) {
        Some(i) => Err(format!("`capabilities.a2a[{i}]` must not be empty")),
        None => Ok(()),
    },
    grants: |c| c.a2a.iter().map(|p| format!("a2a {p}")).collect(),
};

/// `capabilities.a2a`: the peers the agent may message — agent names, skill ids or A2A URLs.
pub type Section = Vec<String>;

/// Where the capability's calls go: the host's A2A (`crate::a2a::A2a`), which finds what a
/// granted peer name reaches — a local agent, a skill served over the bus, a remote agent — and
/// carries the message. The capability decides whether the call may be made and audits it.
#[async_trait::async_trait]
pub trait A2aRouter: Send + Sync {
    /// Sends `message` from agent `from` to `peer` and waits for the task it starts: what the
    /// calling agent gets back, or the reason it is given.
    async fn send(
        &self,
        from: &str,
        peer: &str,
        message: types::Message,
        correlation_id: &str,
    ) -> Result<wit::Response, String>;
}

pub struct A2aGrant {
    /// Granted peers, URLs without a trailing slash.
    peers: Vec<String>,
    router: Arc<dyn A2aRouter>,
    audit: Arc<AuditLog>,
}

impl A2aGrant {
    pub fn new(section: &Section, router: Arc<dyn A2aRouter>, audit: Arc<AuditLog>) -> Self {
        Self {
            peers: section.iter().map(|p| normalize(p).to_owned()).collect(),
            router,
            audit,
        }
    }

    fn allows(&self, peer: &str) -> bool {
        let peer = normalize(peer);
        self.peers.iter().any(|p| p == peer)
    }
}

/// The most an agent's A2A message may carry (its parts' text, data and bytes), as much as an
/// A2A client may send this host: the host copies and parses it outside `limits.memory`.
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// A peer as granted and as called: an A2A URL without its trailing slash.
pub fn normalize(peer: &str) -> &str {
    peer.trim_end_matches('/')
}

/// The bytes of a message's parts.
fn message_size(message: &types::Message) -> usize {
    message
        .parts
        .iter()
        .map(|part| match part {
            types::Part::Text(text) | types::Part::Data(text) => text.len(),
            types::Part::File(file) => {
                file.bytes.as_ref().map_or(0, Vec::len)
                    + file.uri.as_ref().map_or(0, String::len)
                    + file.name.as_ref().map_or(0, String::len)
            }
        })
        .sum()
}

pub struct A2aInstance {
    grant: Arc<A2aGrant>,
    caller: Caller,
}

impl A2aInstance {
    pub fn new(grant: Arc<A2aGrant>, caller: Caller) -> Self {
        Self { grant, caller }
    }

    async fn send_message(
        &self,
        peer: &str,
        message: types::Message,
    ) -> Result<wit::Response, types::Error> {
        let result = self.checked_send(peer, message).await;
        let target: String = peer.chars().take(200).collect();
        self.caller
            .audit_result(&self.grant.audit, "a2a.send-message", &target, &result);
        result
    }

    async fn checked_send(
        &self,
        peer: &str,
        message: types::Message,
    ) -> Result<wit::Response, types::Error> {
        if !self.grant.allows(peer) {
            return Err(types::Error::Denied(format!(
                "agent {:?} may not send to {:?}: capabilities.a2a grants {:?}",
                &*self.caller.agent,
                peer.chars().take(200).collect::<String>(),
                self.grant.peers
            )));
        }
        if message.parts.is_empty() {
            return Err(types::Error::Failed(
                "a message needs at least one part".into(),
            ));
        }
        let size = message_size(&message);
        if size > MAX_MESSAGE {
            return Err(types::Error::Failed(format!(
                "a message of {size} bytes exceeds the {MAX_MESSAGE} bytes an A2A call may carry"
            )));
        }
        let correlation_id = self.caller.correlation_id();
        self.grant
            .router
            .send(&self.caller.agent, peer, message, &correlation_id)
            .await
            .map_err(types::Error::Failed)
    }
}

impl wit::Host for A2aInstance {
    async fn send_message(
        &mut self,
        peer: String,
        message: types::Message,
    ) -> Result<wit::Response, types::Error> {
        A2aInstance::send_message(self, &peer, message).await
    }
}

struct HasA2a;
impl HasData for HasA2a {
    type Data<'a> = &'a mut A2aInstance;
}

pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut A2aInstance,
) -> anyhow::Result<()> {
    wit::add_to_linker::<T, HasA2a>(linker, get)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_measured_by_all_it_carries() {
        let message = types::Message {
            message_id: "m".into(),
            role: types::Role::User,
            parts: vec![
                types::Part::Text("abc".into()),
                types::Part::Data("[1]".into()),
                types::Part::File(types::FilePart {
                    name: Some("f".into()),
                    media_type: None,
                    bytes: Some(vec![0; 10]),
                    uri: None,
                }),
            ],
            task_id: None,
            context_id: None,
        };
        assert_eq!(message_size(&message), 3 + 3 + 1 + 10);
    }
}
