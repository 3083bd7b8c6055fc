"""A poison flood: half the messages bad, each dead-lettered once with its code, the rest counted."""

from __future__ import annotations

import json
import random
from typing import Any

from aiokafka import AIOKafkaConsumer

from benchmarks.common import BAD_KINDS, bad_payload, order_payload, poisoned
from ground.settings import Settings
from ingest.producer import Producer
from livesales.runtime import Runtime
from tests.conftest import wait_for
from tests.support.settings import tuned


async def read_all(settings: Settings, topic: str, n: int) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
                                group_id=None, enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    out: list[Any] = []
    try:

        async def enough() -> bool:
            for recs in (await consumer.getmany(timeout_ms=200)).values():
                out.extend(recs)
            return len(out) >= n

        await wait_for(enough, timeout=60, what=f"{n} messages on {topic}")
        for recs in (await consumer.getmany(timeout_ms=500)).values():  # nothing more than n
            out.extend(recs)
    finally:
        await consumer.stop()
    return out


async def test_every_bad_message_is_dead_lettered_with_its_code(topics: Settings) -> None:
    n = 2_000
    rnd = random.Random(7)
    payloads = [order_payload(i, "flood", rnd) for i in range(n)]
    bad = poisoned(n, 0.5)
    for k, i in enumerate(bad):
        payloads[i] = bad_payload(k, payloads[i])
    producer = Producer(topics.kafka_bootstrap)
    await producer.start()
    try:  # one partition, so offsets are positions in `payloads`
        await producer.send_all_or_raise([(topics.topic_orders, b"one-key", p) for p in payloads])
    finally:
        await producer.stop()

    runtime = Runtime(tuned(topics, **{"validation_processes": 1}))
    await runtime.start(api=False)
    try:
        async def counted() -> bool:
            rows = await runtime.store.query("SELECT count() AS n FROM order_steps")
            return rows[0]["n"] == n - len(bad)

        await wait_for(counted, timeout=60, what="the good half stored")
        letters = await read_all(topics, topics.topic_dlq, len(bad))
    finally:
        await runtime.stop()

    assert len(letters) == len(bad)  # each once
    by_offset = {}
    for rec in letters:
        doc = json.loads(rec.value)
        assert doc["source"]["topic"] == topics.topic_orders
        by_offset[doc["source"]["offset"]] = doc
    assert sorted(by_offset) == bad
    for k, i in enumerate(bad):
        doc = by_offset[i]
        assert doc["error"]["code"] == BAD_KINDS[k % len(BAD_KINDS)], doc
        assert doc["payload"] == payloads[i].decode()


async def test_send_values_spans_many_batches(topics: Settings) -> None:
    values = [json.dumps({"i": i, "pad": "蛏" * 400}, ensure_ascii=False).encode() for i in range(3_000)]  # ~3.6 MB
    producer = Producer(topics.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_values(topics.topic_dlq, values)
    finally:
        await producer.stop()
    got = await read_all(topics, topics.topic_dlq, len(values))
    assert sorted(json.loads(r.value)["i"] for r in got) == list(range(3_000))
    assert len({r.partition for r in got}) > 1  # spread over the partitions
