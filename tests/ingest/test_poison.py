"""A poison flood of the fault battery's mix: each bad message dead-lettered once with its code, the rest stored once."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from benchmarks.common import order_payload
from benchmarks.poison import KINDS, NEAR_LIMIT_KIND, OVERSIZED_KIND, bad_payload, kind_of, poisoned
from ground.settings import Settings
from ingest.producer import Producer
from livesales.runtime import Runtime
from processors.batch import DEAD_LETTER_MAX_BYTES
from processors.validate import (
    INVALID_JSON,
    MAX_VALUE_BYTES,
    OVERSIZED,
    SCHEMA_VIOLATION,
    TIMESTAMP_OUT_OF_RANGE,
    UNKNOWN_SCHEMA,
)
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


@pytest.mark.parametrize("joined", [False, True], ids=["as fetched", "small batches joined"])
async def test_every_bad_message_is_dead_lettered_with_its_code(topics: Settings, joined: bool) -> None:
    """The fault battery's mix (benchmarks.poison): half of 2,000 messages bad, all 27
    kinds, from tombstones to values twice the size limit; each bad one dead-lettered
    exactly once with its contract code and its bytes, each good one stored once.
    ``joined``: fetches of 100 records, inserts at most every 0.5 s, so the writer joins
    batches whose dead letters are already on their way (ingest.dead_letters)."""
    n = 2_000
    rnd = random.Random(7)
    good = [order_payload(i, "flood", rnd) for i in range(n)]
    payloads: list[bytes | None] = list(good)
    bad = poisoned(n, 0.5)
    for k, i in enumerate(bad):
        payloads[i] = bad_payload(k, good[i])
    kinds = [kind_of(k) for k in range(len(bad))]
    assert {kind.name for kind in kinds} == {kind.name for kind in KINDS} and len(KINDS) == 27
    assert {kind.code for kind in kinds} == {INVALID_JSON, UNKNOWN_SCHEMA, SCHEMA_VIOLATION, TIMESTAMP_OUT_OF_RANGE,
                                             OVERSIZED}  # fmt: skip
    sizes = [len(payloads[i] or b"") for i in bad]
    assert {0, MAX_VALUE_BYTES, MAX_VALUE_BYTES + 1} <= set(sizes) and max(sizes) > 1.9 * MAX_VALUE_BYTES
    assert all(s > MAX_VALUE_BYTES for s, kind in zip(sizes, kinds, strict=True) if kind is OVERSIZED_KIND)
    assert all(0.75 * MAX_VALUE_BYTES <= s <= MAX_VALUE_BYTES
               for s, kind in zip(sizes, kinds, strict=True) if kind is NEAR_LIMIT_KIND)  # fmt: skip
    await send_in_order(topics, payloads)

    joins: dict[str, Any] = {"batch_max_records": 100, "min_insert_interval_ms": 500} if joined else {}
    runtime = Runtime(tuned(topics, **{"validation_processes": 1}, **joins))
    await runtime.start(api=False)
    try:
        async def counted() -> bool:
            rows = await runtime.store.query("SELECT count() AS n FROM order_steps")
            return rows[0]["n"] == n - len(bad)

        await wait_for(counted, timeout=60, what="the good half stored")
        letters = await read_all(topics, topics.topic_dlq, len(bad))
        rows = await runtime.store.query("SELECT event_id, count() AS c FROM order_steps GROUP BY event_id")
    finally:
        await runtime.stop()

    bad_set = set(bad)
    assert {r["event_id"] for r in rows} == {f"flood-e{i}" for i in range(n) if i not in bad_set}
    assert {r["c"] for r in rows} == {1}  # each good one stored once
    assert len(letters) == len(bad)  # each bad one dead-lettered once
    by_offset = {}
    for rec in letters:
        doc = json.loads(rec.value)
        assert doc["source"]["topic"] == topics.topic_orders
        by_offset[doc["source"]["offset"]] = doc
    assert sorted(by_offset) == bad
    for k, i in enumerate(bad):
        doc, kind, value = by_offset[i], kinds[k], payloads[i]
        assert doc["error"]["code"] == kind.code, (kind.name, doc["error"])
        assert doc["error"]["message"]
        try:
            text = (value or b"").decode()
        except UnicodeDecodeError:
            assert doc["payload_b64"] == base64.b64encode(value or b"").decode() and "payload" not in doc
        else:
            assert doc["payload"] == text and "payload_b64" not in doc, kind.name
        if kind.name.startswith("not UTF-8"):
            assert "payload_b64" in doc


async def test_a_value_too_big_for_its_whole_dead_letter_does_not_stop_the_partition(topics: Settings) -> None:
    """A 1.2 MB value that is not UTF-8 (1.6 MB as base64) between two good orders: its
    dead letter, which Kafka's default broker limit would refuse whole, carries a prefix
    and the value's length; the orders after it are stored. (Tansu takes any size, so the
    bound is checked on the letter itself.)"""
    rnd = random.Random(3)
    huge = b"\xff" + bytes(range(256)) * 4_700
    payloads: list[bytes | None] = [order_payload(0, "huge", rnd), huge, order_payload(1, "huge", rnd)]
    await send_in_order(topics, payloads)
    runtime = Runtime(tuned(topics, **{"validation_processes": 1}))
    await runtime.start(api=False)
    try:
        async def counted() -> bool:
            rows = await runtime.store.query("SELECT count() AS n FROM order_steps")
            return rows[0]["n"] == 2

        await wait_for(counted, timeout=60, what="both orders stored")
        letters = await read_all(topics, topics.topic_dlq, 1)
    finally:
        await runtime.stop()
    assert len(letters) == 1 and len(letters[0].value) <= DEAD_LETTER_MAX_BYTES
    doc = json.loads(letters[0].value)
    assert doc["error"]["code"] == OVERSIZED and doc["source"]["offset"] == 1
    assert doc["payload_truncated"] is True and doc["payload_bytes"] == len(huge)
    assert huge.startswith(base64.b64decode(doc["payload_b64"]))


async def send_in_order(settings: Settings, payloads: list[bytes | None]) -> None:
    """All under one key, so offsets are positions in ``payloads`` (a tombstone needs one)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5,
                                max_request_size=4 << 20)  # fmt: skip
    await producer.start()
    try:
        futures = [await producer.send(settings.topic_orders, p, key=b"one-key") for p in payloads]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


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
