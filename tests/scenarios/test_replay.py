"""The replayer against the real (Tansu) broker: everything arrives, intact and paced."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from livesales.settings import Settings
from scenarios import ScheduledEvent, generate
from scenarios.replay import replay, topic_map
from tests.conftest import wait_for


@pytest.fixture
async def producer(topics: Settings) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=topics.kafka_bootstrap, acks="all", linger_ms=5)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def read_back(settings: Settings, n: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        *settings.topics, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[Any] = []
    try:

        async def more() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            records.extend(r for recs in batch.values() for r in recs)
            return len(records) >= n

        await wait_for(more, timeout=30, what=f"{n} replayed messages")
        extra = await consumer.getmany(timeout_ms=500)  # nothing beyond what was sent
        records.extend(r for recs in extra.values() for r in recs)
    finally:
        await consumer.stop()
    return records


def test_topic_map_follows_settings(settings: Settings) -> None:
    assert topic_map(settings) == {
        "orders": settings.topic_orders,
        "onboarding": settings.topic_onboarding,
        "stream_stats": settings.topic_stream_stats,
        "channels": settings.topic_channels,
    }


@pytest.mark.parametrize("speed", [math.inf, 0.0])
async def test_unpaced_replay_round_trips(topics: Settings, producer: AIOKafkaProducer, speed: float) -> None:
    events = generate("razor-clam-festival")[:200] + generate("export-onboarding")[:50]
    seen: list[tuple[int, int]] = []
    sent = await replay(
        events, producer, topic_map(topics), speed=speed, progress=lambda a, b: seen.append((a, b))
    )
    assert sent == len(events) == 250
    assert seen[-1] == (250, 250)

    records = await read_back(topics, len(events))
    assert len(records) == len(events)
    names = topic_map(topics)
    got = sorted((r.topic, r.key.decode(), r.value) for r in records)
    want = sorted(
        (names[e.topic_kind], e.key, json.dumps(e.event, ensure_ascii=False, separators=(",", ":")).encode())
        for e in events
    )
    assert got == want
    assert any("长街镇".encode() in r.value for r in records)  # UTF-8, not \\u escapes


async def test_paced_replay_keeps_time(topics: Settings, producer: AIOKafkaProducer) -> None:
    template = generate("razor-clam-festival")[0]
    # Scenario seconds 0..60 at 60x: the last message is due 1 s after the start.
    events = [replace(template, at=float(s)) for s in range(0, 61, 10)]
    loop = asyncio.get_running_loop()
    sent_at: list[float] = []
    started = loop.time()
    sent = await replay(events, producer, topic_map(topics), speed=60.0,
                        progress=lambda n, total: sent_at.append(loop.time() - started))  # fmt: skip
    elapsed = loop.time() - started
    assert sent == len(events)
    assert 0.95 <= elapsed < 3.0
    # Reported before each pause: the first report comes after the at=0 message,
    # each later one roughly 10/60 s after the previous.
    assert sent_at[0] < 0.5 and sent_at[-1] >= 0.95
    assert len(await read_back(topics, len(events))) == len(events)


async def test_stop_ends_a_paced_replay_early(topics: Settings, producer: AIOKafkaProducer) -> None:
    template = generate("razor-clam-festival")[0]
    events = [replace(template, at=0.0), replace(template, at=3600.0)]  # second one due after 60 s
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    started = loop.time()
    loop.call_later(0.3, stop.set)
    sent = await replay(events, producer, topic_map(topics), speed=60.0, stop=stop)
    assert sent == 1
    assert loop.time() - started < 5.0


async def test_bad_arguments_are_refused(topics: Settings, producer: AIOKafkaProducer) -> None:
    events: list[ScheduledEvent] = generate("razor-clam-festival")[:1]
    with pytest.raises(ValueError, match="speed"):
        await replay(events, producer, topic_map(topics), speed=-1.0)
    with pytest.raises(ValueError, match="no topic"):
        await replay(events, producer, {"onboarding": topics.topic_onboarding})
