"""``Producer.send_keyed`` puts each message where aiokafka's default partitioner would: the
consumers take a message keyed by its routing key as in place (processors.placement), so a
connector's events sent as batches must land exactly where ``send`` would have put them.
Real broker (Tansu)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer

from ground.settings import Settings
from ingest.producer import Producer


async def read_partitions(bootstrap: str, topic: str, n: int) -> dict[bytes, int]:
    """Each key's partition, reading ``topic`` from the start until ``n`` messages."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        seen: dict[bytes, int] = {}
        for _ in range(100):
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                for r in records:
                    assert r.key is not None
                    seen[r.key] = tp.partition
            if len(seen) >= n:
                return seen
        raise AssertionError(f"read {len(seen)} of {n} messages from {topic}")
    finally:
        await consumer.stop()


async def test_send_keyed_picks_the_default_partitioner_s_partition(topics: Settings, producer: Producer) -> None:
    keys = [f"order-{i}".encode() for i in range(200)] + ["订单-9007199254740993".encode(), b"x"]
    await producer.send_keyed(topics.topic_orders, [(k, b"{}") for k in keys])
    await producer.send_all_or_raise([(topics.topic_stream_stats, k, b"{}") for k in keys])  # aiokafka's send
    batched = await read_partitions(topics.kafka_bootstrap, topics.topic_orders, len(keys))
    one_by_one = await read_partitions(topics.kafka_bootstrap, topics.topic_stream_stats, len(keys))
    assert batched == one_by_one
    assert len(set(batched.values())) == 4  # the keys spread over every partition: the check can fail
