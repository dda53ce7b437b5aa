//! Exactly-once delivery on Kafka: one transactional producer per assigned partition.
//!
//! The classic zombie-fencing layout: the transactional id is derived from (group, topic,
//! partition), so when a partition moves to another host, the new owner's `init_transactions`
//! fences the old owner's producer and aborts whatever it left open. Per partition rather than
//! per consumer, so partitions keep being handled concurrently (a producer has one open
//! transaction at a time).
//!
//! Per record: begin → the invocation's publishes (and a dead letter, if it comes to that) →
//! `send_offsets_to_transaction(offset + 1)` with the consumer's group metadata → commit.
//! librdkafka consumers read committed by default, so nothing of an aborted attempt is seen.

use super::{ClientKind, Inner, client_config, send};
use crate::bus::{BusError, Outgoing, Receipt, TopicPartition, TxnPublisher};
use async_trait::async_trait;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::Duration;

/// Bound on each blocking transaction call (init, offsets, commit, abort).
const TXN_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the deploy-time probe may take before the broker counts as not answering.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// The consumer group the deploy-time probe commits a harmless offset for.
const PROBE_GROUP: &str = "agenthost.txn-probe";

/// The transactional id of a partition's producer: stable across restarts and hosts, so a new
/// owner fences the previous one.
pub(super) fn transactional_id(group: &str, tp: &TopicPartition) -> String {
    format!("agenthost.{group}.{}.{}", tp.topic, tp.partition)
}

fn producer_config(inner: &Inner, transactional_id: &str) -> rdkafka::ClientConfig {
    client_config(
        &inner.config,
        ClientKind::Producer,
        &[
            ("transactional.id", transactional_id),
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("message.timeout.ms", "30000"),
            ("linger.ms", "0"),
            // Longer than any invocation's retries, shorter than the broker's default maximum.
            ("transaction.timeout.ms", "120000"),
        ],
    )
}

/// Runs a blocking librdkafka transaction call off the async workers.
async fn blocking<T: Send + 'static>(
    what: &'static str,
    call: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, KafkaError> {
    tokio::task::spawn_blocking(call).await.unwrap_or_else(|e| {
        tracing::error!(what, error = %e, "transaction call did not complete");
        Err(KafkaError::Canceled)
    })
}

/// The transactional producer of one assigned partition.
pub(super) struct PartitionTxn {
    producer: FutureProducer,
    inner: Arc<Inner>,
    tp: TopicPartition,
    open: bool,
}

impl PartitionTxn {
    /// Creates the partition's producer and registers its transactional id with the broker
    /// (fencing any earlier producer with the same id).
    pub(super) async fn start(
        inner: Arc<Inner>,
        group: &str,
        tp: &TopicPartition,
    ) -> Result<Self, BusError> {
        let id = transactional_id(group, tp);
        let producer: FutureProducer = producer_config(&inner, &id).create().map_err(|e| {
            BusError::Unavailable(format!("cannot create transactional producer {id:?}: {e}"))
        })?;
        let init = producer.clone();
        blocking("init_transactions", move || {
            init.init_transactions(TXN_CALL_TIMEOUT)
        })
        .await
        .map_err(|e| BusError::Unavailable(format!("{tp}: init_transactions ({id}): {e}")))?;
        tracing::debug!(transactional_id = id, "transactional producer ready");
        Ok(Self {
            producer,
            inner,
            tp: tp.clone(),
            open: false,
        })
    }

    pub(super) fn begin(&mut self) -> Result<Arc<dyn TxnPublisher>, BusError> {
        self.producer
            .begin_transaction()
            .map_err(|e| BusError::Unavailable(format!("{}: begin_transaction: {e}", self.tp)))?;
        self.open = true;
        Ok(Arc::new(TxnSink {
            inner: self.inner.clone(),
            producer: self.producer.clone(),
        }))
    }

    /// Sends `next_offset` into the transaction and commits it. On failure the transaction is
    /// aborted when librdkafka says it must be; `Err(fatal = true)` means the producer is
    /// unusable (fenced by a newer owner, or a fatal error) and must be replaced.
    pub(super) async fn commit(
        &mut self,
        metadata: ConsumerGroupMetadata,
        next_offset: u64,
    ) -> Result<(), (BusError, bool)> {
        let offset = i64::try_from(next_offset).map_err(|_| {
            (
                BusError::Storage(format!("offset {next_offset} out of range")),
                false,
            )
        })?;
        let mut offsets = TopicPartitionList::with_capacity(1);
        offsets
            .add_partition_offset(
                &self.tp.topic,
                self.tp.partition as i32,
                Offset::Offset(offset),
            )
            .map_err(|e| (BusError::Unavailable(e.to_string()), false))?;
        let producer = self.producer.clone();
        let result = blocking("commit_transaction", move || {
            producer.send_offsets_to_transaction(&offsets, &metadata, TXN_CALL_TIMEOUT)?;
            producer.commit_transaction(TXN_CALL_TIMEOUT)
        })
        .await;
        match result {
            Ok(()) => {
                self.open = false;
                Ok(())
            }
            Err(err) => {
                // A retriable failure could be retried, but the outcome of a commit that timed
                // out is unknown; aborting settles it either way, and the record is handled
                // again in a new transaction. A producer that cannot abort is replaced.
                let fatal = is_fatal(&err) || !self.abort().await;
                Err((
                    BusError::Unavailable(format!("{}: transaction commit: {err}", self.tp)),
                    fatal,
                ))
            }
        }
    }

    /// Aborts the open transaction, if any; false if the producer could not.
    pub(super) async fn abort(&mut self) -> bool {
        if !std::mem::take(&mut self.open) {
            return true;
        }
        let producer = self.producer.clone();
        match blocking("abort_transaction", move || {
            producer.abort_transaction(TXN_CALL_TIMEOUT)
        })
        .await
        {
            Ok(()) => true,
            Err(err) => {
                // The broker aborts it by itself after transaction.timeout.ms; a new owner's
                // init_transactions aborts it at once.
                tracing::warn!(partition = %self.tp, error = %err, "transaction abort failed");
                false
            }
        }
    }
}

fn rdkafka_error(err: &KafkaError) -> Option<&rdkafka::error::RDKafkaError> {
    match err {
        KafkaError::Transaction(e) => Some(e),
        _ => None,
    }
}

fn is_fatal(err: &KafkaError) -> bool {
    rdkafka_error(err).is_some_and(|e| e.is_fatal())
}

/// Publishes into a partition's open transaction.
struct TxnSink {
    inner: Arc<Inner>,
    producer: FutureProducer,
}

#[async_trait]
impl TxnPublisher for TxnSink {
    async fn publish(&self, record: Outgoing) -> Result<Receipt, BusError> {
        send(&self.inner, &self.producer, record).await
    }
}

/// Runs one transaction end to end — register, begin, commit an offset for [`PROBE_GROUP`]
/// on `topic`'s partition 0, commit — to learn whether the broker supports transactions at
/// all. librdkafka commits an empty transaction locally, so the probe adds an offset to make
/// the broker see every transactional request (EndTxn included). The offset it commits is 0
/// for a group nobody consumes with: harmless.
pub(super) async fn probe(inner: &Inner, topic: &str) -> Result<(), BusError> {
    let id = format!("agenthost.probe.{}", uuid::Uuid::new_v4());
    let producer: FutureProducer = producer_config(inner, &id).create().map_err(|e| {
        BusError::Unavailable(format!("cannot create a transactional producer: {e}"))
    })?;
    let consumer: BaseConsumer = client_config(
        &inner.config,
        ClientKind::Consumer,
        &[("group.id", PROBE_GROUP)],
    )
    .create()
    .map_err(|e| BusError::Unavailable(format!("cannot create a Kafka consumer: {e}")))?;
    let metadata = consumer.group_metadata().ok_or_else(|| {
        BusError::Unavailable("the Kafka consumer has no group metadata".to_owned())
    })?;
    let mut offsets = TopicPartitionList::with_capacity(1);
    offsets
        .add_partition_offset(topic, 0, Offset::Offset(0))
        .map_err(|e| BusError::Unavailable(e.to_string()))?;
    let result = blocking("probe", move || {
        producer.init_transactions(PROBE_TIMEOUT)?;
        producer.begin_transaction()?;
        producer.send_offsets_to_transaction(&offsets, &metadata, PROBE_TIMEOUT)?;
        let committed = producer.commit_transaction(PROBE_TIMEOUT);
        if committed.is_err() {
            let _ = producer.abort_transaction(PROBE_TIMEOUT);
        }
        drop(consumer);
        committed
    })
    .await;
    match result {
        Ok(()) => Ok(()),
        Err(err) if err.rdkafka_error_code() == Some(RDKafkaErrorCode::UnsupportedFeature) => {
            Err(BusError::Unsupported(format!(
                "delivery.mode = \"exactly-once\" needs Kafka transactions, which the broker at {} does not support ({err}); \
                 use mode = \"at-least-once\" or a broker with transactions (Apache Kafka, Redpanda)",
                inner.config.brokers
            )))
        }
        Err(err) => Err(BusError::Unavailable(format!(
            "cannot verify that the broker at {} supports transactions: {err}",
            inner.config.brokers
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactional_ids_are_stable_per_group_and_partition() {
        let tp = TopicPartition {
            topic: "ecommerce.price-changed.v1".into(),
            partition: 3,
        };
        assert_eq!(
            transactional_id("price-analysis", &tp),
            "agenthost.price-analysis.ecommerce.price-changed.v1.3"
        );
        let other = TopicPartition {
            partition: 4,
            ..tp.clone()
        };
        assert_ne!(
            transactional_id("price-analysis", &tp),
            transactional_id("price-analysis", &other)
        );
    }
}
