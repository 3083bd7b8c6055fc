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

from ground.settings import Settings
from scenarios import ScheduledEvent, generate
from scenarios.replay import LoopClock, replay, topic_map
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


class StepClock:
    """A pacing clock whose time passes only when the replay waits on it, by exactly what
    it asked for: what the test sees is the replay's schedule, whatever the machine's load."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def time(self) -> float:
        return self.now

    async def wait_until(self, due: float, stop: asyncio.Event | None) -> None:
        self.waits.append(due)
        await asyncio.sleep(0)
        if stop is None or not stop.is_set():
            self.now = max(self.now, due)


async def test_paced_replay_keeps_time(topics: Settings, producer: AIOKafkaProducer) -> None:
    template = generate("razor-clam-festival")[0]
    # Scenario seconds 0..60 at 60x: one message every 1/6 s, the last due 1 s after the start.
    events = [replace(template, at=float(s)) for s in range(0, 61, 10)]
    clock = StepClock()
    start = clock.now
    reports: list[tuple[int, float]] = []
    sent = await replay(events, producer, topic_map(topics), speed=60.0, clock=clock,
                        progress=lambda n, total: reports.append((n, clock.now - start)))  # fmt: skip
    assert sent == len(events)
    # it waited for each later message's due time, and for nothing else
    assert clock.waits == pytest.approx([start + s / 60 for s in range(10, 61, 10)])
    # reported before each pause (k sent by (k-1)/6 s: none early) and at the end, 1 s in
    assert [n for n, _ in reports] == [1, 2, 3, 4, 5, 6, 7]
    assert [t for _, t in reports] == pytest.approx([0.0, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1.0])
    assert len(await read_back(topics, len(events))) == len(events)


async def test_the_loop_clock_waits_until_the_due_time_or_the_stop() -> None:
    """The default clock of the paced replay above: the event loop's. Only lower bounds on
    the time (less the loop's clock resolution): a loaded machine may wake it late, not early."""
    clock = LoopClock()
    loop = asyncio.get_running_loop()
    due = clock.time() + 0.2
    await clock.wait_until(due, None)
    assert loop.time() >= due - 0.001
    stop = asyncio.Event()
    due = clock.time() + 0.2
    await clock.wait_until(due, stop)
    assert loop.time() >= due - 0.001
    stop.set()
    await asyncio.wait_for(clock.wait_until(clock.time() + 3600, stop), 30)  # not an hour


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
