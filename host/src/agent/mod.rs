//! A deployed agent version: its manifest, its pre-instantiated component, its grants, and how
//! one invocation runs inside its limits: deploying and reading its card here, invoking it in
//! `invoke.rs`, its instances and their limits in `instance.rs`, what it leaves to wait for in
//! `acks.rs`.

mod acks;
mod instance;
mod invoke;
pub mod skill_input;
pub mod tools;

pub use acks::Acks;
pub use skill_input::SkillInput;

use crate::capabilities::{Grants, HostServices};
use crate::manifest::Manifest;
use crate::metrics::VersionMetrics;
use crate::runtime::{Compiled, LoadError, Runtime, StoreData};
use crate::wit::{AgentPluginIndices, AgentPluginPre, agent, events, types};
use instance::{Begin, WarmInstance};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::Semaphore;

/// What an agent says about itself, taken from its `card()` export at deploy.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CardInfo {
    pub name: String,
    pub description: String,
    pub version: String,
    pub skills: Vec<SkillInfo>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct SkillInfo {
    pub id: String,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub examples: Vec<String>,
    /// The JSON Schema of what it takes, if the card declares one (see `skill_input.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<SkillInput>,
}

pub struct AgentVersion {
    pub manifest: Arc<Manifest>,
    pub name: Arc<str>,
    pub version: Arc<str>,
    pub digest: String,
    pub card: CardInfo,
    pub deployed_at: SystemTime,
    pre: AgentPluginPre<StoreData>,
    /// Where `agent` is in the component, to load it from an instance.
    indices: AgentPluginIndices,
    /// Where `events` is, if the component exports it.
    events: Option<events::GuestIndices>,
    grants: Grants,
    instances: Semaphore,
    /// The instance pool's slots, shared by every agent (see `Runtime::slots`).
    slots: Arc<Semaphore>,
    /// Idle instances kept for reuse; empty unless `limits.reuse_instances`.
    warm: std::sync::Mutex<Vec<WarmInstance>>,
    /// This version's invocation metrics, looked up once.
    metrics: VersionMetrics,
    /// `runtime.max_wasm_stack`, for naming the limit when recursion exhausts it.
    max_wasm_stack: u64,
    /// The checks the engine performs, so a store is set up for exactly those.
    sandbox: crate::runtime::Sandbox,
}

impl AgentVersion {
    /// Validates a compiled component against its manifest, builds its grants and reads its
    /// card. Nothing here touches the running version of the same agent.
    pub async fn deploy(
        runtime: &Runtime,
        services: &HostServices,
        manifest: Manifest,
        compiled: &Compiled,
    ) -> Result<Self, LoadError> {
        runtime.check_limits(&manifest)?;
        let pre = runtime.prepare(compiled, &manifest)?;
        let indices = AgentPluginIndices::new(pre.instance_pre())
            .map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let events = events::GuestIndices::new(pre.instance_pre()).ok();
        let grants = Grants::new(&manifest.grant_request(), services)
            .map_err(|e| LoadError::Import(format!("{e:#}")))?;
        let mut agent = Self {
            name: manifest.name.as_str().into(),
            version: manifest.version.to_string().into(),
            digest: compiled.digest.clone(),
            card: CardInfo {
                name: String::new(),
                description: String::new(),
                version: String::new(),
                skills: vec![],
            },
            deployed_at: SystemTime::now(),
            instances: Semaphore::new(manifest.limits.instances as usize),
            slots: runtime.slots(),
            warm: std::sync::Mutex::new(Vec::new()),
            metrics: services
                .metrics
                .version(manifest.name.as_str(), &manifest.version.to_string()),
            manifest: Arc::new(manifest),
            pre,
            indices,
            events,
            grants,
            max_wasm_stack: runtime.max_wasm_stack(),
            sandbox: runtime.sandbox(),
        };
        agent.card = agent.read_card().await?;
        Ok(agent)
    }
    async fn read_card(&self) -> Result<CardInfo, LoadError> {
        // `card` must not use imports, so there is nothing sent to wait for.
        let (card, _nothing_sent) = self
            .run(
                Begin::One {
                    correlation_id: "deploy",
                    txn: None,
                    skill: None,
                },
                |exports, store| {
                    Box::pin(async move {
                        exports
                            .plugin
                            .agenthost_agent_agent()
                            .call_card(store)
                            .await
                    })
                },
            )
            .await
            .map_err(|e| LoadError::WrongWorld(format!("card() failed: {e}")))?;
        let mut skills = Vec::with_capacity(card.skills.len());
        for s in card.skills {
            let (tags, input) = skill_input::split_tags(s.tags)
                .map_err(|why| LoadError::Card(format!("skill {:?}: {why}", s.id)))?;
            skills.push(SkillInfo {
                id: s.id,
                name: s.name,
                description: s.description,
                tags,
                examples: s.examples,
                input,
            });
        }
        Ok(CardInfo {
            name: card.name,
            description: card.description,
            version: card.version,
            skills,
        })
    }
    /// Records what the host did for this agent version (a delivery, a dead letter) in the
    /// audit log; capability uses inside the guest are audited by the capabilities themselves.
    pub fn audit(
        &self,
        correlation_id: &str,
        capability: &str,
        target: &str,
        outcome: crate::audit::Outcome,
        detail: &str,
    ) {
        self.grants.audit.record(
            crate::audit::AuditEntry::new(
                &*self.name,
                &*self.version,
                correlation_id,
                capability,
                target,
                outcome,
            )
            .detail(detail),
        );
    }
    /// Whether the component exports `on-events` and the manifest asks for batches
    /// (`delivery.batch` above 1).
    pub fn takes_batches(&self) -> bool {
        self.events.is_some() && self.manifest.delivery.batch > 1
    }
}

/// How an event's position reads in logs and the audit trail: `topic[partition]@offset`.
pub fn event_target(topic: &str, partition: u32, offset: u64) -> String {
    crate::bus::position(topic, partition, offset)
}

impl AgentVersion {
    /// Bytes of state this agent holds, when it is granted state.
    pub fn state_used(&self) -> Option<u64> {
        self.grants.state.as_ref().map(|s| s.used())
    }
}

/// The `event` an agent sees for a bus record.
pub fn to_event(record: &crate::bus::Record, correlation_id: &str, attempt: u32) -> agent::Event {
    agent::Event {
        topic: record.topic.clone(),
        partition: record.partition,
        offset: record.offset,
        key: record.key.clone(),
        payload: record.payload.clone(),
        headers: record
            .headers
            .iter()
            .map(|h| types::Header {
                key: h.key.clone(),
                value: h.value.clone(),
            })
            .collect(),
        timestamp_ms: record.timestamp_ms,
        correlation_id: correlation_id.to_owned(),
        attempt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_becomes_the_event_the_agent_sees() {
        let record = crate::bus::Record {
            topic: "orders.received.v1".into(),
            partition: 2,
            offset: 40,
            key: Some(b"sku-1".to_vec()),
            payload: b"{}".to_vec(),
            headers: vec![crate::bus::Header::new("content-type", "application/json")],
            timestamp_ms: 7,
        };
        let event = to_event(&record, "c-1", 3);
        assert_eq!(
            (event.topic.as_str(), event.partition, event.offset),
            ("orders.received.v1", 2, 40)
        );
        assert_eq!(event.key.as_deref(), Some(&b"sku-1"[..]));
        assert_eq!(event.headers.len(), 1);
        assert_eq!(event.headers[0].key, "content-type");
        assert_eq!((event.correlation_id.as_str(), event.attempt), ("c-1", 3));
        assert_eq!(
            event_target(&event.topic, event.partition, event.offset),
            "orders.received.v1[2]@40"
        );
    }
}
