//! The Kafka bus, on rdkafka (librdkafka): consumer groups with per-partition queues, an
//! idempotent producer shared by every publish and dead letter, topics created on first use.
//!
//! Delivery semantics live in `crate::delivery` and are the same as on the local bus; this module
//! maps the [`Bus`] trait onto Kafka:
//!
//! - every assigned partition gets its own queue (split before the assignment takes effect, so
//!   no record ever reaches the shared queue and per-partition order holds);
//! - `commit` stores the next offset in librdkafka, which commits stored offsets every
//!   `auto.commit.interval.ms` and synchronously when a partition is revoked or the group is
//!   left — only offsets of finished records are ever stored;
//! - a revoke waits (bounded) for the delivery engine to finish the partitions' in-flight records
//!   before they are released to another member.

mod group;
mod reader;
mod txn;

use super::{
    Bus, BusError, Enqueued, Outgoing, Receipt, StartAt, Subscription, TopicReader, validate_topic,
};
use crate::config::KafkaConfig;
use crate::metrics::Metrics;
use async_trait::async_trait;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a publish may wait for the broker's acknowledgement before it fails.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct KafkaBus {
    inner: Arc<Inner>,
}

struct Inner {
    config: KafkaConfig,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    /// Topics known to exist: creation is attempted once per topic and process.
    known_topics: Mutex<HashSet<String>>,
    /// (group, topic) pairs with a live member in this process (see [`BusError::GroupBusy`]).
    claims: super::GroupClaims,
    metrics: Arc<Metrics>,
    /// The broker's answer to the transaction probe, once it gave a definitive one.
    transactions: tokio::sync::Mutex<Option<Result<(), String>>>,
}

impl KafkaBus {
    /// Creates the producer and admin clients. librdkafka connects in the background and keeps
    /// reconnecting, so an unreachable broker is logged here, not fatal: the host starts and
    /// catches up when the broker appears.
    pub async fn connect(config: &KafkaConfig, metrics: Arc<Metrics>) -> Result<Self, BusError> {
        let producer: FutureProducer = client_config(
            config,
            ClientKind::Producer,
            &[
                // Idempotence: retries never duplicate or reorder a partition's records.
                ("enable.idempotence", "true"),
                ("acks", "all"),
                // librdkafka's default of 300 s would make a publish hang through an outage.
                ("message.timeout.ms", "30000"),
                // No wait for a batch to fill: an event's copy leaves at once, and whatever
                // accumulates while a request is in flight is still batched. librdkafka's 5 ms
                // measured (S2/S3, tansu, defaults): +20% records/s at 100 B, +3% at 1 KB, and
                // +4 ms p50 at 1k events/s; `[bus.kafka.producer]` sets it where that pays.
                ("linger.ms", "0"),
            ],
        )
        .create()
        .map_err(|e| BusError::Unavailable(format!("cannot create the Kafka producer: {e}")))?;
        let admin: AdminClient<DefaultClientContext> =
            client_config(config, ClientKind::Admin, &[])
                .create()
                .map_err(|e| {
                    BusError::Unavailable(format!("cannot create the Kafka admin client: {e}"))
                })?;
        let bus = Self {
            inner: Arc::new(Inner {
                config: config.clone(),
                producer,
                admin,
                known_topics: Mutex::new(HashSet::new()),
                claims: super::GroupClaims::default(),
                metrics,
                transactions: tokio::sync::Mutex::new(None),
            }),
        };
        let probe = bus.inner.producer.clone();
        let reachable = tokio::task::spawn_blocking(move || {
            use rdkafka::producer::Producer as _;
            probe
                .client()
                .fetch_metadata(None, Duration::from_secs(5))
                .map(|_| ())
        })
        .await;
        match reachable {
            Ok(Ok(())) => tracing::info!(brokers = config.brokers, "connected to Kafka"),
            Ok(Err(e)) => {
                tracing::warn!(brokers = config.brokers, error = %e, "Kafka not reachable yet; will keep trying")
            }
            Err(e) => tracing::warn!(error = %e, "Kafka probe aborted"),
        }
        Ok(bus)
    }
}

impl Inner {
    /// Creates `topic` if it does not exist (some brokers, tansu among them, never create
    /// topics on first use).
    async fn ensure_topic(&self, topic: &str) -> Result<(), BusError> {
        validate_topic(topic)?;
        if self
            .known_topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(topic)
        {
            return Ok(());
        }
        let config = &self.config;
        let partitions = i32::try_from(config.partitions).unwrap_or(i32::MAX);
        let new_topic = NewTopic::new(
            topic,
            partitions,
            TopicReplication::Fixed(config.replication_factor),
        );
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = self
            .admin
            .create_topics([&new_topic], &options)
            .await
            .map_err(|e| BusError::Unavailable(format!("cannot create topic {topic:?}: {e}")))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(BusError::Unavailable(format!(
                        "cannot create topic {name:?}: {code}"
                    )));
                }
            }
        }
        self.known_topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.to_owned());
        Ok(())
    }
}

/// What a librdkafka client is for: it decides which of the user's property tables apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientKind {
    Producer,
    Consumer,
    Admin,
}

/// The host's defaults for every client, then `extra` for this kind of client, then the user's
/// `[bus.kafka.properties]`, then `[bus.kafka.producer]` or `[bus.kafka.consumer]` for this
/// kind, which win.
fn client_config(config: &KafkaConfig, kind: ClientKind, extra: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("client.id", "agenthost");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    let own = match kind {
        ClientKind::Producer => Some(&config.producer),
        ClientKind::Consumer => Some(&config.consumer),
        ClientKind::Admin => None,
    };
    for (k, v) in config.properties.iter().chain(own.into_iter().flatten()) {
        c.set(k, v);
    }
    c
}

#[async_trait]
impl Bus for KafkaBus {
    fn kind(&self) -> &'static str {
        "kafka"
    }

    async fn publish(&self, record: Outgoing) -> Result<Receipt, BusError> {
        send(&self.inner, &self.inner.producer, record).await
    }

    /// Into librdkafka's queue now (so records keep their order), acknowledged later; a topic
    /// not known to exist yet, or a full queue, needs waiting: `Busy`.
    fn enqueue(&self, record: Outgoing) -> Enqueued {
        let known = self
            .inner
            .known_topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&record.topic);
        if !known {
            return Enqueued::Busy(record);
        }
        let delivery = match self.inner.producer.send_result(future_record(&record)) {
            Ok(delivery) => delivery,
            Err(_) => return Enqueued::Busy(record),
        };
        let metrics = self.inner.metrics.clone();
        Enqueued::Queued(Box::pin(async move {
            let outcome = match delivery.await {
                Ok(outcome) => outcome,
                Err(_) => {
                    return Err(BusError::Unavailable(format!(
                        "publish to {:?} failed: the producer shut down",
                        record.topic
                    )));
                }
            };
            acknowledged(&metrics, record.topic, outcome.map_err(|(e, _)| e))
        }))
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[String],
    ) -> Result<Box<dyn Subscription>, BusError> {
        for topic in topics {
            self.inner.ensure_topic(topic).await?;
        }
        group::subscribe(self.inner.clone(), group, topics).await
    }

    async fn read(&self, topic: &str, start: StartAt) -> Result<Box<dyn TopicReader>, BusError> {
        self.inner.ensure_topic(topic).await?;
        reader::open(&self.inner.config, topic, start).await
    }

    /// Probes the broker once with a real transaction; a definitive answer (supported, or
    /// refused as unsupported) is remembered, an unreachable broker is asked again next time.
    async fn check_transactions(&self, topic: &str) -> Result<(), BusError> {
        let mut known = self.inner.transactions.lock().await;
        if let Some(answer) = known.as_ref() {
            return answer.clone().map_err(BusError::Unsupported);
        }
        self.inner.ensure_topic(topic).await?;
        let answer = txn::probe(&self.inner, topic).await;
        match &answer {
            Ok(()) => *known = Some(Ok(())),
            Err(BusError::Unsupported(why)) => *known = Some(Err(why.clone())),
            Err(_) => {}
        }
        answer
    }
}

/// Publishes `record` through `producer` (the shared idempotent one, or a partition's
/// transactional one) and waits for the broker's acknowledgement.
async fn send(
    inner: &Inner,
    producer: &FutureProducer,
    record: Outgoing,
) -> Result<Receipt, BusError> {
    inner.ensure_topic(&record.topic).await?;
    let outcome = producer
        .send(future_record(&record), Timeout::After(PUBLISH_TIMEOUT))
        .await
        .map_err(|(e, _)| e);
    acknowledged(&inner.metrics, record.topic, outcome)
}

/// `record` as librdkafka takes it (borrowing the payload).
fn future_record(record: &Outgoing) -> FutureRecord<'_, [u8], [u8]> {
    let headers = record.headers.iter().fold(
        OwnedHeaders::new_with_capacity(record.headers.len()),
        |hs, h| {
            hs.insert(KafkaHeader {
                key: h.key.as_str(),
                value: Some(h.value.as_slice()),
            })
        },
    );
    let mut kafka_record = FutureRecord::<[u8], [u8]>::to(&record.topic)
        .payload(record.payload.as_slice())
        .headers(headers);
    if let Some(key) = record.key.as_deref() {
        kafka_record = kafka_record.key(key);
    }
    kafka_record
}

/// The receipt of an acknowledged record, or why it was not.
fn acknowledged(
    metrics: &Metrics,
    topic: String,
    outcome: Result<rdkafka::producer::future_producer::Delivery, rdkafka::error::KafkaError>,
) -> Result<Receipt, BusError> {
    match outcome {
        Ok(delivery) => Ok(Receipt {
            topic,
            partition: u32::try_from(delivery.partition).unwrap_or(0),
            // An idempotent retry the broker recognised as a duplicate is acknowledged
            // without an offset: the record is stored once, where is unknown.
            offset: u64::try_from(delivery.offset).unwrap_or(u64::MAX),
        }),
        Err(e) => {
            metrics.record_bus_error("publish");
            Err(BusError::Unavailable(format!(
                "publish to {topic:?} failed: {e}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> KafkaConfig {
        let text = r#"
            brokers = "127.0.0.1:1"
            properties = { "security.protocol" = "plaintext", "linger.ms" = "1" }
            producer = { "linger.ms" = "5" }
            consumer = { "fetch.wait.max.ms" = "10" }
        "#;
        toml::from_str(text).expect("a valid [bus.kafka] table")
    }

    #[test]
    fn a_client_gets_the_shared_properties_and_only_its_own_kinds_table() {
        let config = config();
        let producer = client_config(&config, ClientKind::Producer, &[("linger.ms", "0")]);
        assert_eq!(producer.get("security.protocol"), Some("plaintext"));
        assert_eq!(
            producer.get("linger.ms"),
            Some("5"),
            "the producer table wins"
        );
        assert_eq!(producer.get("fetch.wait.max.ms"), None);

        let consumer = client_config(&config, ClientKind::Consumer, &[("group.id", "g")]);
        assert_eq!(consumer.get("security.protocol"), Some("plaintext"));
        assert_eq!(consumer.get("fetch.wait.max.ms"), Some("10"));
        assert_eq!(consumer.get("group.id"), Some("g"));
        // A shared property still reaches every client, as the user wrote it.
        assert_eq!(consumer.get("linger.ms"), Some("1"));

        let admin = client_config(&config, ClientKind::Admin, &[]);
        assert_eq!(admin.get("fetch.wait.max.ms"), None);
        assert_eq!(admin.get("linger.ms"), Some("1"));
    }
}
