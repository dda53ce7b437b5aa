//! Where an agent's `a2a` call goes once its grant allowed it: an A2A URL over HTTP, a skill the
//! operator serves over the bus, a local agent in-process (by name, `agent/skill`, or the skill
//! it owns), else a remote peer whose card lists the skill. The capability
//! (`capabilities::a2a`) checks and audits; this finds the peer and carries the message.

use super::A2a;
use super::model::{Message, Role, Task};
use crate::capabilities::a2a::A2aRouter;
use crate::wit::{a2a as wit, types};

#[async_trait::async_trait]
impl A2aRouter for A2a {
    async fn send(
        &self,
        from: &str,
        peer: &str,
        message: types::Message,
        correlation_id: &str,
    ) -> Result<wit::Response, String> {
        let mut message = Message::from(message);
        message.role = Role::User;
        self.route(from, peer, message, correlation_id)
            .await
            .map(response)
    }
}

impl A2a {
    async fn route(
        &self,
        from: &str,
        peer: &str,
        message: Message,
        correlation_id: &str,
    ) -> Result<Task, String> {
        let failed = |e: String| format!("A2A call to {peer:?} failed: {e}");
        if is_url(peer) {
            return self
                .remote
                .send(peer, &message, correlation_id)
                .await
                .map_err(failed);
        }
        if self.bus.serves(peer) {
            // The operator chose the bus for this skill: workers in any host share the load.
            return self
                .bus
                .send(peer, &message, correlation_id, self.timeout)
                .await
                .map_err(failed);
        }
        if let Some(agent) = self.local_agent(peer) {
            let depth = super::service::current_depth() + 1;
            return self
                .service
                .send_and_wait(
                    &agent,
                    message,
                    correlation_id,
                    depth,
                    // In-process calls are the calling agent's, invisible to clients.
                    &format!("agent:{from}"),
                )
                .await
                .map_err(|e| failed(e.message));
        }
        let url = self.remote_with_skill(peer).await.ok_or_else(|| {
            format!(
                "no agent or skill named {peer:?} is known: not a local agent, no local agent advertises it, and no card of [[a2a.peers]] lists it"
            )
        })?;
        self.remote
            .send(&url, &message, correlation_id)
            .await
            .map_err(failed)
    }

    /// The local agent `peer` names: an agent's name; `agent/skill`, an agent advertising that
    /// skill; or a bare skill id, the agent that owns it (never merely one advertising it).
    fn local_agent(&self, peer: &str) -> Option<String> {
        let registry = self.service.registry();
        if registry.get(peer).is_some() {
            return Some(peer.to_owned());
        }
        if let Some((agent, skill)) = peer.split_once('/') {
            let advertises = registry
                .get(agent)
                .is_some_and(|cell| cell.current().card.skills.iter().any(|s| s.id == skill));
            return advertises.then(|| agent.to_owned());
        }
        self.service
            .skill_owner(peer)
            .filter(|owner| registry.get(owner).is_some())
    }

    /// The configured remote peer whose card lists skill `skill`.
    async fn remote_with_skill(&self, skill: &str) -> Option<String> {
        for url in self.remote.peers() {
            match self.remote.card(url).await {
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

fn is_url(peer: &str) -> bool {
    peer.starts_with("http://") || peer.starts_with("https://")
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
