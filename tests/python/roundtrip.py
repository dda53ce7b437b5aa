"""An independent Kafka client (confluent-kafka) drives agenthost from outside.

Produces N events with `correlation-id` headers to the input topic, then consumes the output
topic until every correlation id came back, checking the payload and the host's provenance
headers. Exits 0 on success, 1 with a reason on stderr otherwise.

usage: roundtrip.py BROKERS IN_TOPIC OUT_TOPIC COUNT AGENT VERSION [TIMEOUT_S]
"""

import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer


def main() -> int:
    brokers, in_topic, out_topic, count, agent, version = sys.argv[1:7]
    count = int(count)
    timeout = float(sys.argv[7]) if len(sys.argv) > 7 else 60.0
    run = uuid.uuid4().hex[:8]

    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
    expected = {}
    for i in range(count):
        cid = f"py-{run}-{i}"
        payload = f'{{"n": {i}, "run": "{run}"}}'
        expected[cid] = payload
        producer.produce(
            in_topic,
            key=f"key-{i % 5}".encode(),
            value=payload.encode(),
            headers=[("correlation-id", cid.encode())],
        )
    if producer.flush(30) != 0:
        print("not every event was acknowledged by the broker", file=sys.stderr)
        return 1

    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": f"roundtrip-{run}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            # The host creates the output topic when it first publishes, which may be after
            # this consumer subscribed: notice it quickly.
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    consumer.subscribe([out_topic])
    seen = {}
    deadline = time.monotonic() + timeout
    try:
        while len(seen) < count and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    continue  # not created yet
                raise KafkaException(message.error())
            headers = {k: (v or b"").decode() for k, v in (message.headers() or [])}
            cid = headers.get("correlation-id", "")
            if cid not in expected:
                continue  # another run's output
            problems = []
            if message.value().decode() != expected[cid]:
                problems.append(f"payload {message.value()!r} != {expected[cid]!r}")
            if headers.get("agenthost-agent") != agent:
                problems.append(f"agenthost-agent {headers.get('agenthost-agent')!r} != {agent!r}")
            if headers.get("agenthost-agent-version") != version:
                problems.append(f"agenthost-agent-version {headers.get('agenthost-agent-version')!r} != {version!r}")
            if problems:
                print(f"{cid}: " + "; ".join(problems), file=sys.stderr)
                return 1
            seen[cid] = True
    finally:
        consumer.close()

    missing = [cid for cid in expected if cid not in seen]
    if missing:
        print(f"{len(missing)} of {count} events produced no output within {timeout}s, e.g. {missing[:5]}", file=sys.stderr)
        return 1
    print(f"{count} events round-tripped with their correlation ids and provenance headers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
