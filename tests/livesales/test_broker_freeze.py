"""Broker frozen (SIGSTOP) while orders flow, then thawed: /readyz says so, and the counts
stay exact (issue 10 item 11).

The battery found the counting solid through a 60 s freeze by hand; this keeps it so. A
`livesales run` runtime (in process, its own Tansu, real chDB) ingests a stream with exact
redeliveries and webhook retries under new event ids while a producer keeps sending
through the freeze, resending whatever was not acknowledged (more redeliveries, as a real
webhook relay does). After the thaw: ready again, every order step and stream sample
stored once, no consumer dead, nothing dead-lettered.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from ground.settings import Settings
from ingest.producer import Producer
from ingest.topics import ensure_topics
from livesales.runtime import Runtime
from livesales.wiring import topics as topics_of
from localbroker import LocalBroker
from tests.conftest import wait_for
from tests.livesales.test_health import ready_status, readyz, running, unique
from tests.reference import distinct_counts, encode, generate, reference, stored_counts, stored_minutes

Message = tuple[str, bytes | None, bytes]


async def send_until_acked(producer: Producer, messages: list[Message], chunk: int = 50) -> int:
    """Send in chunks, resending each chunk's unacknowledged messages until all are acked
    (a producer that keeps trying through the freeze). Returns how many sends failed."""
    failed = 0
    for i in range(0, len(messages), chunk):
        pending = messages[i : i + chunk]
        while pending:
            errors = await producer.send_all(pending)
            pending = [m for m, e in zip(pending, errors, strict=True) if e is not None]
            failed += len(pending)
    return failed


async def dead_letters(settings: Settings) -> int:
    """Records on the DLQ topic (read from the start; Tansu's end offsets cannot be trusted)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic_dlq, p) for p in range(4)]
        consumer.assign(tps)
        n = 0
        while batch := await consumer.getmany(timeout_ms=1000):
            n += sum(len(records) for records in batch.values())
        return n
    finally:
        await consumer.stop()


async def freeze_while_ingesting(settings: Settings, tmp_path: Path, freeze_s: float) -> None:
    events = generate(n_orders=300, seed=29)
    random.Random(29).shuffle(events)  # the redeliveries and retries spread over all three phases
    with LocalBroker(log_path=tmp_path / "tansu.log") as broker:
        s = unique(settings, kafka_bootstrap=broker.bootstrap)
        messages: list[Message] = [(topics_of(s).for_schema(e["schema"]), None, encode(e)) for e in events]
        third = len(messages) // 3
        before, during, after = messages[:third], messages[third : 2 * third], messages[2 * third :]
        await ensure_topics(s.kafka_bootstrap, [*s.topics, s.topic_dlq], partitions=4)
        async with running(s) as runtime:
            producer = Producer(s.kafka_bootstrap)
            await producer.start()
            try:
                await send_until_acked(producer, before)

                async def some_stored() -> bool:
                    return (await stored_counts(runtime.store))[0] > 0

                await wait_for(some_stored, timeout=30, what="the first orders stored before the freeze")
                broker.freeze()
                frozen_at = time.monotonic()
                try:
                    sending = asyncio.create_task(send_until_acked(producer, during))
                    body = await wait_for(lambda: ready_status(runtime, 503), timeout=freeze_s,
                                          what="/readyz 503 while the broker is frozen")  # fmt: skip
                    not_ready_after = time.monotonic() - frozen_at
                    assert "broker unreachable" in body["error"]["message"], body
                    # the fault lasts freeze_s, whatever the waits above took
                    await asyncio.sleep(max(0.0, frozen_at + freeze_s - time.monotonic()))
                    assert not sending.done() or sending.exception() is None
                finally:
                    broker.thaw()
                thawed_at = time.monotonic()
                await wait_for(lambda: ready_status(runtime, 200), timeout=30, what="/readyz 200 after the thaw")
                ready_after = time.monotonic() - thawed_at
                resent = await asyncio.wait_for(sending, timeout=60)
                await send_until_acked(producer, after)
            finally:
                await producer.stop()
            await assert_exact(runtime, events)
            exact_after = time.monotonic() - thawed_at
            assert runtime.is_alive(), "a consumer's loop ended during the freeze"
            assert await dead_letters(s) == 0
            assert (await readyz(runtime))[0] == 200
    print(
        f"frozen {freeze_s:g} s: /readyz 503 after {not_ready_after:.1f} s, 200 again {ready_after:.1f} s after"
        f" the thaw; {resent} sends resent; {len(events)} messages, counts exact {exact_after:.1f} s after the thaw"
    )


async def assert_exact(runtime: Runtime, events: list[dict[str, Any]]) -> None:
    want = distinct_counts(events)

    async def all_stored() -> tuple[int, int] | None:
        got = await stored_counts(runtime.store)
        assert got[0] <= want[0] and got[1] <= want[1], f"counted twice: {got} stored, {want} distinct"
        return got if got == want else None

    await wait_for(all_stored, timeout=60, interval=0.25, what=f"{want} order steps and stream samples stored")
    stored = {k: {m: v for m, v in c.items() if v} for k, c in (await stored_minutes(runtime.store)).items()}
    expect = {k: {m: v for m, v in c.items() if v} for k, c in reference(events).items()}
    assert stored == expect


async def test_broker_frozen_8s_counts_exact(settings: Settings, tmp_path: Path) -> None:
    await freeze_while_ingesting(settings, tmp_path, freeze_s=8.0)


@pytest.mark.slow
async def test_broker_frozen_30s_counts_exact(settings: Settings, tmp_path: Path) -> None:
    await freeze_while_ingesting(settings, tmp_path, freeze_s=30.0)
