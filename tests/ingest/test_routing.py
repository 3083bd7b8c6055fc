"""Messages not keyed by their routing key go through ``<topic>.routed`` (ingest.routing);
keyed ones are stored where they are. Real broker (Tansu), real chDB."""

from __future__ import annotations

from typing import Any

import pytest

from ingest.producer import Producer
from ingest.routing import routed_topic
from ingest.topics import ensure_topics
from livesales.config_errors import ConfigError
from livesales.runtime import Runtime
from livesales.settings import Settings
from tests.conftest import wait_for
from tests.ingest.test_crash import all_committed
from tests.ingest.test_pipeline import assert_exact, wait_counted
from tests.reference import encode, generate


def routing_key(event: dict[str, Any]) -> bytes:
    return str(event.get("order_id") or event["channel_id"]).encode()


async def send(producer: Producer, settings: Settings, events: list[dict[str, Any]], keyed: bool) -> None:
    await producer.send_all_or_raise([
        (settings.topic_for_schema(e["schema"]), routing_key(e) if keyed else None, encode(e)) for e in events
    ])  # fmt: skip


async def test_keyed_messages_stay_put_and_unkeyed_ones_count_once(topics: Settings, producer: Producer) -> None:
    events = generate(n_orders=150, seed=31)
    half = len(events) // 2
    runtime = Runtime(topics)
    await runtime.start(api=False)
    consumer = runtime.consumers[0]
    try:
        await send(producer, topics, events[:half], keyed=True)  # the default partitioner: in place
        await wait_counted(runtime, events[:half])
        assert consumer.forwarded == 0
        await send(producer, topics, events[half:], keyed=False)
        await send(producer, topics, events, keyed=False)  # every one redelivered, unkeyed
        await wait_counted(runtime, events)
        await wait_for(lambda: all_committed(topics), timeout=30, what="source and .routed offsets committed")
        await assert_exact(runtime, events)
        assert consumer.forwarded >= len(events) - half + len(events)  # more only if a batch was re-read
    finally:
        await runtime.stop()


async def test_a_routed_topic_with_another_partition_count_is_refused(settings: Settings) -> None:
    orders = settings.topic_orders
    await ensure_topics(settings.kafka_bootstrap, [orders], partitions=4)
    await ensure_topics(settings.kafka_bootstrap, [routed_topic(orders)], partitions=2)
    with pytest.raises(ConfigError) as refused:
        await ensure_topics(settings.kafka_bootstrap, [orders], routed_from=[orders])
    assert refused.value.line == (
        f"livesales: topic {orders}.routed: has 2 partitions but {orders} has 4; they must be equal "
        "(add partitions to the smaller one: deploy/README.md)"
    )
