"""Messages not keyed by their routing key go through ``<topic>.routed`` (ingest.routing);
keyed ones are stored where they are. Real broker (Tansu), real chDB."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ground.settings import Settings
from ingest.producer import Producer
from ingest.routing import routed_topic
from ingest.topics import ensure_topics
from livesales.runtime import Runtime
from livesales.wiring import topics as topics_of
from tests.conftest import wait_for
from tests.ingest.test_pipeline import assert_exact, wait_counted
from tests.livesales.test_startup_errors import livesales
from tests.reference import encode, generate
from tests.support.offsets import all_committed
from tests.support.process import ClickHouseHTTPProcess
from tests.support.settings import tuned


def routing_key(event: dict[str, Any]) -> bytes:
    return str(event.get("order_id") or event["channel_id"]).encode()


async def send(producer: Producer, settings: Settings, events: list[dict[str, Any]], keyed: bool) -> None:
    await producer.send_all_or_raise([
        (topics_of(settings).for_schema(e["schema"]), routing_key(e) if keyed else None, encode(e)) for e in events
    ])  # fmt: skip


async def test_keyed_messages_stay_put_and_unkeyed_ones_count_once(
    topics: Settings, producer: Producer, chhttp: ClickHouseHTTPProcess
) -> None:
    """Over a ClickHouse server (other processes may write beside this one): unkeyed
    messages cross to ``.routed``, and every step counts once."""
    events = generate(n_orders=150, seed=31)
    half = len(events) // 2
    runtime = Runtime(tuned(topics, clickhouse_dsn=chhttp.dsn))
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


async def test_the_sole_writer_stores_unkeyed_messages_where_they_are(topics: Settings, producer: Producer) -> None:
    """Embedded chDB: one process, one writer lock deciding every copy in turn, so nothing
    needs a second trip through the broker (docs/DESIGN.md, "The sole writer routes
    nothing"); two consumers in the process, copies on every partition, counted once."""
    events = generate(n_orders=150, seed=32)
    runtime = Runtime(topics, consumers=2)
    await runtime.start(api=False)
    try:
        await send(producer, topics, events, keyed=False)
        await send(producer, topics, events, keyed=False)  # every one again, on other partitions
        await send(producer, topics, events, keyed=True)
        await wait_counted(runtime, events)
        await wait_for(lambda: all_committed(topics), timeout=30, what="offsets committed")
        await assert_exact(runtime, events)
        assert sum(c.forwarded for c in runtime.consumers) == 0
    finally:
        await runtime.stop()


async def test_a_routed_topic_with_another_partition_count_is_refused(settings: Settings, tmp_path: Path) -> None:
    """Partition p of the two would go to two members: `livesales consume` exits 2, one line."""
    orders = settings.topic_orders
    await ensure_topics(settings.kafka_bootstrap, [*settings.topics, settings.topic_dlq], partitions=4)
    await ensure_topics(settings.kafka_bootstrap, [routed_topic(orders)], partitions=2)
    env = {
        "LIVESALES_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "LIVESALES_CONSUMER_GROUP": settings.consumer_group,
        "LIVESALES_TOPIC_ORDERS": orders, "LIVESALES_TOPIC_ONBOARDING": settings.topic_onboarding,
        "LIVESALES_TOPIC_STREAM_STATS": settings.topic_stream_stats, "LIVESALES_TOPIC_CHANNELS": settings.topic_channels,
        "LIVESALES_TOPIC_DLQ": settings.topic_dlq, "LIVESALES_CLICKHOUSE_DSN": settings.clickhouse_dsn,
        "LIVESALES_HEALTH_PORT": "0", "LIVESALES_VALIDATION_PROCESSES": "0",
    }  # fmt: skip
    done = await asyncio.to_thread(livesales, env, "consume", cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        f"livesales: topic {orders}.routed: has 2 partitions but {orders} has 4; they must be equal "
        "(add partitions to the smaller one: deploy/README.md)"
    )
