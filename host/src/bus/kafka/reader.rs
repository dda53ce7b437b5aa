//! Reading a topic outside any consumer group (`agenthost consume`): every partition assigned
//! explicitly, nothing committed.

use super::group::to_record;
use super::{ClientKind, client_config};
use crate::bus::{BusError, Record, StartAt, TopicReader};
use crate::config::KafkaConfig;
use async_trait::async_trait;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};
use std::time::Duration;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn open(
    config: &KafkaConfig,
    topic: &str,
    start: StartAt,
) -> Result<Box<dyn TopicReader>, BusError> {
    // librdkafka wants a group.id even to assign partitions by hand; this one never joins.
    let group = format!("agenthost-read-{}", uuid::Uuid::new_v4());
    let consumer: StreamConsumer = client_config(
        config,
        ClientKind::Consumer,
        &[
            ("group.id", &group),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
        ],
    )
    .create()
    .map_err(|e| BusError::Unavailable(format!("cannot create a Kafka reader: {e}")))?;
    let topic = topic.to_owned();
    let consumer = tokio::task::spawn_blocking(move || -> Result<StreamConsumer, KafkaError> {
        let metadata = consumer.fetch_metadata(Some(&topic), METADATA_TIMEOUT)?;
        let described = metadata.topics().iter().find(|t| t.name() == topic).ok_or(
            KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition),
        )?;
        if let Some(err) = described.error() {
            return Err(KafkaError::MetadataFetch(err.into()));
        }
        let mut list = TopicPartitionList::with_capacity(described.partitions().len());
        for p in described.partitions() {
            let offset = match start {
                StartAt::Beginning => Offset::Beginning,
                // The current end, resolved now: `Offset::End` would be resolved only when
                // fetching starts and could skip records published in between.
                StartAt::End => Offset::Offset(
                    consumer
                        .fetch_watermarks(&topic, p.id(), METADATA_TIMEOUT)?
                        .1,
                ),
            };
            list.add_partition_offset(&topic, p.id(), offset)?;
        }
        consumer.assign(&list)?;
        Ok(consumer)
    })
    .await
    .map_err(|e| BusError::Unavailable(e.to_string()))?
    .map_err(|e| BusError::Unavailable(format!("cannot read the topic: {e}")))?;
    Ok(Box::new(KafkaTopicReader { consumer }))
}

struct KafkaTopicReader {
    consumer: StreamConsumer,
}

#[async_trait]
impl TopicReader for KafkaTopicReader {
    async fn next(&mut self) -> Result<Record, BusError> {
        loop {
            match self.consumer.recv().await {
                Ok(m) => return Ok(to_record(&m)),
                Err(KafkaError::PartitionEOF(_)) => continue,
                Err(e) => return Err(BusError::Unavailable(e.to_string())),
            }
        }
    }
}
