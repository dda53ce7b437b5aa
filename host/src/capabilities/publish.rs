//! `bus.publish`: an agent publishes only to topics matching its `capabilities.publish` patterns.
//! The host stamps every record with the correlation id and its provenance, which an agent
//! cannot forge.

use super::caller::Caller;
use crate::audit::{AuditLog, Outcome};
use crate::bus::{self, Bus, Outgoing, headers, set_header};
use crate::config::TopicPattern;
use crate::metrics::Metrics;
use crate::wit::{bus as wit, types};
use std::sync::Arc;
use wasmtime::component::{HasData, Linker};

/// `capabilities.publish`: the topic patterns the agent may publish to.
pub type Section = Vec<TopicPattern>;

pub const CAPABILITY: super::capability::Capability = super::capability::Capability {
    key: Some("capabilities.publish"),
    interfaces: &["agenthost:agent/bus"],
    required: Some(super::capability::Requirement {
        granted: |c| !c.publish.is_empty(),
        missing: "topics: add them to `capabilities.publish`",
    }),
    validate: super::capability::nothing_to_validate,
    grants: |c| c.publish.iter().map(|p| format!("publish {p}")).collect(),
};

/// The `[limits]` the publish capability enforces.
#[derive(Clone, Copy, Debug)]
pub struct PublishLimits {
    /// `limits.publish_size`, in bytes.
    pub max_size: u64,
    /// `limits.publishes`: records per invocation.
    pub max_count: u32,
    /// `limits.topics`: distinct topics reached through wildcard patterns.
    pub wildcard_topics: u32,
}

pub struct PublishGrant {
    patterns: Vec<TopicPattern>,
    /// `limits.publish_size`, in bytes.
    max_size: u64,
    /// `limits.publishes`: records per invocation.
    max_count: u32,
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
    audit: Arc<AuditLog>,
    wildcard_topics: WildcardTopics,
}

/// The topics an agent reached through wildcard patterns (`limits.topics`), kept in sled so
/// versions and restarts share the count.
struct WildcardTopics {
    reached: sled::Tree,
    max: u32,
}

impl WildcardTopics {
    fn open(db: &sled::Db, agent: &str, max: u32) -> sled::Result<Self> {
        Ok(Self {
            reached: db.open_tree(format!("publish/wildcard-topics/{agent}"))?,
            max,
        })
    }

    /// Records `topic`, reached through a wildcard, unless it is one more than `max`.
    fn admit(&self, topic: &str) -> Result<(), String> {
        let storage = |e: sled::Error| format!("publish topic bookkeeping: {e}");
        if self.reached.contains_key(topic).map_err(storage)? {
            return Ok(());
        }
        let reached = self.reached.len();
        if reached >= self.max as usize {
            return Err(format!(
                "{topic:?} would be topic {} reached through wildcard patterns; limits.topics allows {}",
                reached + 1,
                self.max
            ));
        }
        self.reached.insert(topic, &[]).map_err(storage)?;
        Ok(())
    }
}

impl PublishGrant {
    pub fn new(
        agent: &str,
        section: &Section,
        limits: PublishLimits,
        bus: Arc<dyn Bus>,
        metrics: Arc<Metrics>,
        audit: Arc<AuditLog>,
        db: &sled::Db,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            patterns: section.clone(),
            max_size: limits.max_size,
            max_count: limits.max_count,
            bus,
            metrics,
            audit,
            wildcard_topics: WildcardTopics::open(db, agent, limits.wildcard_topics)?,
        })
    }

    /// Refuses a topic allowed only by a wildcard pattern once `limits.topics` others were.
    fn beyond_wildcard_topics(&self, topic: &str) -> Result<(), String> {
        if self.patterns.iter().any(|p| p.as_str() == topic) {
            return Ok(());
        }
        self.wildcard_topics.admit(topic)
    }

    pub fn allows(&self, topic: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(topic))
    }
}

pub struct PublishInstance {
    grant: Arc<PublishGrant>,
    caller: Caller,
}

impl PublishInstance {
    pub fn new(grant: Arc<PublishGrant>, caller: Caller) -> Self {
        Self { grant, caller }
    }

    /// Publishes if the grant allows it; every attempt is counted and audited once, a stored
    /// record by its place (`topic[partition]@offset`, as its deliveries are), so a trace ties
    /// the publish to the events it causes.
    async fn publish(&self, record: wit::Outgoing) -> Result<wit::Receipt, types::Error> {
        let topic = record.topic.clone();
        let result = match self.checked(record) {
            Ok(outgoing) => self.deliver(outgoing).await,
            Err(refused) => Err(refused),
        };
        let target = match &result {
            Ok(receipt) => bus::position(&receipt.topic, receipt.partition, receipt.offset),
            Err(_) => topic,
        };
        self.account(&target, &result);
        result
    }

    /// `send`: checked and handed to the bus in order now; acknowledged later, awaited by
    /// whoever finishes the request (the delivery engine before it commits the event's offset).
    /// Audited when handed over, by its topic: its place is not known yet.
    /// Where the bus cannot take a record without waiting, or the record belongs to a
    /// transaction, it is published as `publish` would.
    async fn send(&self, record: wit::Outgoing) -> Result<(), types::Error> {
        let topic = record.topic.clone();
        let result = match self.checked(record) {
            Ok(outgoing) if self.caller.txn().is_none() => match self.grant.bus.enqueue(outgoing) {
                crate::bus::Enqueued::Queued(pending) => {
                    self.caller.add_sent(pending);
                    Ok(())
                }
                crate::bus::Enqueued::Busy(outgoing) => self.deliver(outgoing).await.map(drop),
            },
            Ok(outgoing) => self.deliver(outgoing).await.map(drop),
            Err(refused) => Err(refused),
        };
        self.account(&topic, &result);
        result
    }

    /// Counts and audits one publish or send.
    fn account<T>(&self, topic: &str, result: &Result<T, types::Error>) {
        let c = &self.caller;
        let outcome = c.audit_result(&self.grant.audit, "publish", topic, result);
        let metric = match outcome {
            Outcome::Allowed => "ok",
            other => other.as_str(),
        };
        self.grant.metrics.record_publish(&c.agent, metric);
    }

    /// The record as the bus gets it — stamped with the correlation id and provenance — if
    /// the grant, the size limit and the invocation's publish count allow it.
    fn checked(&self, record: wit::Outgoing) -> Result<Outgoing, types::Error> {
        let c = &self.caller;
        // Every attempt takes one of the invocation's publishes, a denied one too: a loop of
        // refused publishes ends at the limit like any other.
        if !c.take_publish(self.grant.max_count) {
            return Err(types::Error::Denied(format!(
                "this invocation already tried to publish {} records, the most limits.publishes allows (denied attempts count too)",
                self.grant.max_count
            )));
        }
        bus::validate_topic(&record.topic).map_err(|e| types::Error::Failed(e.to_string()))?;
        if !self.grant.allows(&record.topic) {
            let granted: Vec<&str> = self
                .grant
                .patterns
                .iter()
                .map(TopicPattern::as_str)
                .collect();
            return Err(types::Error::Denied(format!(
                "agent {:?} may not publish to {:?}: it matches none of capabilities.publish {:?}",
                &*c.agent, record.topic, granted
            )));
        }
        self.grant
            .beyond_wildcard_topics(&record.topic)
            .map_err(types::Error::Denied)?;
        let mut headers: Vec<bus::Header> = record
            .headers
            .into_iter()
            .filter(|h| !headers::is_reserved(&h.key))
            .map(|h| bus::Header {
                key: h.key,
                value: h.value,
            })
            .collect();
        set_header(
            &mut headers,
            headers::CORRELATION_ID,
            c.correlation_id().as_bytes(),
        );
        set_header(&mut headers, headers::AGENT, c.agent.as_bytes());
        set_header(&mut headers, headers::AGENT_VERSION, c.version.as_bytes());
        let size = record.key.as_ref().map_or(0, Vec::len)
            + record.payload.len()
            + headers
                .iter()
                .map(|h| h.key.len() + h.value.len())
                .sum::<usize>();
        if size as u64 > self.grant.max_size {
            return Err(types::Error::Denied(format!(
                "a record of {size} bytes exceeds limits.publish_size ({})",
                bytesize::ByteSize::b(self.grant.max_size)
            )));
        }
        Ok(Outgoing {
            topic: record.topic,
            key: record.key,
            payload: record.payload,
            headers,
        })
    }

    /// Publishes a checked record and waits for the bus to accept it.
    async fn deliver(&self, outgoing: Outgoing) -> Result<wit::Receipt, types::Error> {
        let c = &self.caller;
        // Exactly-once: into the record's transaction, committed with its offset.
        let published = match c.txn() {
            Some(txn) => txn.publish(outgoing).await,
            None => self.grant.bus.publish(outgoing).await,
        };
        let receipt =
            published.map_err(|e| types::Error::Failed(format!("publish failed: {e}")))?;
        Ok(wit::Receipt {
            topic: receipt.topic,
            partition: receipt.partition,
            offset: receipt.offset,
        })
    }
}

impl wit::Host for PublishInstance {
    async fn publish(&mut self, record: wit::Outgoing) -> Result<wit::Receipt, types::Error> {
        PublishInstance::publish(self, record).await
    }

    async fn send(&mut self, record: wit::Outgoing) -> Result<(), types::Error> {
        PublishInstance::send(self, record).await
    }
}

struct HasPublish;
impl HasData for HasPublish {
    type Data<'a> = &'a mut PublishInstance;
}

pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut PublishInstance,
) -> anyhow::Result<()> {
    wit::add_to_linker::<T, HasPublish>(linker, get)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_grants_reach_a_bounded_number_of_topics_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let topics = WildcardTopics::open(&db, "a", 2).unwrap();
        topics.admit("results.1").unwrap();
        topics.admit("results.2").unwrap();
        topics.admit("results.1").unwrap();
        let err = topics.admit("results.3").unwrap_err();
        assert!(err.contains("limits.topics allows 2"), "{err}");
        // A new version (or a restart) shares the count.
        let again = WildcardTopics::open(&db, "a", 2).unwrap();
        assert!(again.admit("results.4").is_err());
        again.admit("results.2").unwrap();
        // Another agent has its own.
        WildcardTopics::open(&db, "b", 2)
            .unwrap()
            .admit("results.3")
            .unwrap();
    }
}
