"""The Python baseline of the S2/S3 benchmarks: a confluent-kafka worker copying every record of
one topic to another, with at-least-once offsets (an offset is stored only after the copies of
every record up to it are acknowledged by the broker).

It is written the way a Python team would write it: consume a batch, produce every record of
it, flush (wait for the acknowledgements), then store the batch's offsets, which the consumer
commits in the background.

usage: kafka_copy_worker.py BROKERS GROUP INPUT_TOPIC OUTPUT_TOPIC
Runs until killed.
"""

import sys

from confluent_kafka import Consumer, Producer, TopicPartition


def main() -> None:
    brokers, group, source, sink = sys.argv[1:5]
    common = {"bootstrap.servers": brokers, "broker.address.family": "v4"}
    consumer = Consumer(
        {
            **common,
            "group.id": group,
            "enable.auto.commit": True,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            # tansu holds a fetch for the whole wait even with records waiting (see the bench).
            "fetch.wait.max.ms": 10,
        }
    )
    producer = Producer({**common, "enable.idempotence": True, "acks": "all", "linger.ms": 2})
    consumer.subscribe([source])
    while True:
        batch = consumer.consume(num_messages=500, timeout=0.1)
        records = [m for m in batch if m.error() is None]
        for m in records:
            producer.produce(sink, value=m.value(), key=m.key(), headers=m.headers())
        if not records:
            continue
        producer.flush()
        consumer.store_offsets(
            offsets=[TopicPartition(m.topic(), m.partition(), m.offset() + 1) for m in records]
        )


if __name__ == "__main__":
    main()
