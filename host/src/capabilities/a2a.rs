//! `a2a`: an agent sends a message to a peer its manifest's `capabilities.a2a` lists — an
//! agent name (in-process, no HTTP hop), `agent/skill` (that agent, which must advertise the
//! skill), a skill id (the local agent that owns it, see [`crate::a2a::skills`], else a remote
//! agent from the host's `[[a2a.peers]]` whose card lists it), or an A2A URL (card fetched and
//! cached, call over HTTP). Every call is checked and audited.

use super::{Caller, HostServices};
use crate::a2a::A2a;
use crate::a2a::client::normalize;
use crate::a2a::model::{Message, Role, Task};
use crate::audit::AuditLog;
use crate::config::Manifest;
use crate::runtime::StoreData;
use crate::wit::{a2a as wit, types};
use std::sync::Arc;
use wasmtime::component::{HasData, Linker};

pub struct A2aGrant {
    /// Granted peers, URLs without a trailing slash.
    peers: Vec<String>,
    a2a: Arc<A2a>,
    audit: Arc<AuditLog>,
}

impl A2aGrant {
    pub fn new(manifest: &Manifest, services: &HostServices) -> anyhow::Result<Self> {
        for name in manifest.a2a.schemes() {
            if !services.a2a.schemes.contains_key(name) {
                let configured: Vec<&String> = services.a2a.schemes.keys().collect();
                anyhow::bail!(
                    "a2a.security names scheme {name:?}, which this host does not configure (its [a2a.security] are {configured:?})"
                );
            }
        }
        Ok(Self {
            peers: manifest
                .capabilities
                .a2a
                .iter()
                .map(|p| normalize(p).to_owned())
                .collect(),
            a2a: services.a2a.clone(),
            audit: services.audit.clone(),
        })
    }

    fn allows(&self, peer: &str) -> bool {
        let peer = normalize(peer);
        self.peers.iter().any(|p| p == peer)
    }
}

/// The most an agent's A2A message may carry (its parts' text, data and bytes), as much as an
/// A2A client may send this host: the host copies and parses it outside `limits.memory`.
pub const MAX_MESSAGE: usize = crate::a2a::server::MAX_BODY;

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

fn is_url(peer: &str) -> bool {
    peer.starts_with("http://") || peer.starts_with("https://")
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
        let mut message = Message::from(message);
        message.role = Role::User;
        let correlation_id = self.caller.correlation_id();
        let a2a = &self.grant.a2a;
        let failed = |e: String| types::Error::Failed(format!("A2A call to {peer:?} failed: {e}"));
        let task = if is_url(peer) {
            a2a.remote
                .send(peer, &message, &correlation_id)
                .await
                .map_err(failed)?
        } else if a2a.bus.serves(peer) {
            // The operator chose the bus for this skill: workers in any host share the load.
            a2a.bus
                .send(peer, &message, &correlation_id, a2a.timeout)
                .await
                .map_err(failed)?
        } else {
            match self.local_agent(peer) {
                Some(agent) => {
                    let depth = crate::a2a::service::current_depth() + 1;
                    a2a.service
                        .send_and_wait(
                            &agent,
                            message,
                            &correlation_id,
                            depth,
                            // In-process calls are the calling agent's, invisible to clients.
                            &format!("agent:{}", self.caller.agent),
                        )
                        .await
                        .map_err(|e| failed(e.message))?
                }
                None => {
                    let url = self.remote_with_skill(peer).await.ok_or_else(|| {
                        types::Error::Failed(format!(
                            "no agent or skill named {peer:?} is known: not a local agent, no local agent advertises it, and no card of [[a2a.peers]] lists it"
                        ))
                    })?;
                    a2a.remote
                        .send(&url, &message, &correlation_id)
                        .await
                        .map_err(failed)?
                }
            }
        };
        Ok(response(task))
    }

    /// The local agent `peer` names: an agent's name; `agent/skill`, an agent advertising that
    /// skill; or a bare skill id, the agent that owns it (never merely one advertising it).
    fn local_agent(&self, peer: &str) -> Option<String> {
        let service = &self.grant.a2a.service;
        let registry = service.registry();
        if registry.get(peer).is_some() {
            return Some(peer.to_owned());
        }
        if let Some((agent, skill)) = peer.split_once('/') {
            let advertises = registry
                .get(agent)
                .is_some_and(|cell| cell.current().card.skills.iter().any(|s| s.id == skill));
            return advertises.then(|| agent.to_owned());
        }
        service
            .skill_owner(peer)
            .filter(|owner| registry.get(owner).is_some())
    }

    /// The configured remote peer whose card lists skill `skill`.
    async fn remote_with_skill(&self, skill: &str) -> Option<String> {
        let remote = &self.grant.a2a.remote;
        for url in remote.peers() {
            match remote.card(url).await {
                Ok(card) if card.skills.iter().any(|s| s == skill) => return Some(url.to_owned()),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(peer = url, error, "cannot read a peer's agent card");
                }
            }
        }
        None
    }
}

/// What the calling agent gets back: the task's state, the agent's last word, the artifacts.
fn response(task: Task) -> wit::Response {
    let message = task.status.message.clone().or_else(|| {
        task.history
            .iter()
            .rev()
            .find(|m| m.role == Role::Agent)
            .cloned()
    });
    wit::Response {
        task_id: Some(task.id).filter(|s| !s.is_empty()),
        context_id: Some(task.context_id).filter(|s| !s.is_empty()),
        state: task.status.state.into(),
        message: message.as_ref().map(Into::into),
        artifacts: task.artifacts.iter().map(Into::into).collect(),
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

pub fn add_to_linker(linker: &mut Linker<StoreData>) -> anyhow::Result<()> {
    wit::add_to_linker::<StoreData, HasA2a>(linker, |s| &mut s.caps.a2a)?;
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
