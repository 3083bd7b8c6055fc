"""End to end against a real broker (Tansu) and real embedded ClickHouse (chDB)."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from ground.settings import Settings
from ingest.producer import Producer
from livesales.runtime import Runtime
from livesales.wiring import topics as topics_of
from tests.conftest import wait_for
from tests.reference import distinct_counts, encode, generate, reference, stored_counts, stored_minutes
from tests.support.settings import tuned

pytestmark = pytest.mark.slow


def nonzero(d: dict[Any, dict[str, int]]) -> dict[Any, dict[str, int]]:
    return {k: {m: v for m, v in cells.items() if v} for k, cells in d.items()}


async def send(producer: Producer, settings: Settings, events: list[Any], keyed: bool = False) -> None:
    msgs = []
    for ev in events:
        value = ev if isinstance(ev, bytes) else encode(ev)
        topic = settings.topic_orders
        if isinstance(ev, dict) and ev.get("schema") in ("onboarding.v1", "stream_stats.v1"):
            topic = topics_of(settings).for_schema(ev["schema"])
        key = None
        if keyed and isinstance(ev, dict):  # contract §1's key: the default partitioner keeps it in place
            key = str(ev.get("order_id") or ev.get("firm_id") or ev["channel_id"]).encode()
        msgs.append((topic, key, value))
    await producer.send_all_or_raise(msgs)


async def wait_counted(runtime: Runtime, events: list[dict[str, Any]], timeout: float = 60) -> None:
    want = distinct_counts(events)

    async def done() -> bool:
        return await stored_counts(runtime.store) == want

    await wait_for(done, timeout=timeout, what=f"{want} distinct steps/stats stored")


async def assert_exact(runtime: Runtime, events: list[dict[str, Any]]) -> None:
    assert nonzero(await stored_minutes(runtime.store)) == nonzero(reference(events))


async def test_messy_stream_counts_exactly(topics: Settings, producer: Producer) -> None:
    events = generate(n_orders=400)
    runtime = Runtime(topics)
    await runtime.start(api=False)
    try:
        await send(producer, topics, events)
        await wait_counted(runtime, events)
        await assert_exact(runtime, events)
        dups = runtime.metrics.duplicates.labels("order_steps")

        async def noise_dropped() -> bool:
            # the redeliveries and retries come last (tests.reference.generate): every step is
            # stored before the batches made only of them are, so wait for those too
            return bool(dups._value.get() > 0)

        await wait_for(noise_dropped, timeout=30, what="the noise dropped as duplicates")
        await assert_exact(runtime, events)  # and still exact once it was
    finally:
        await runtime.stop()


def inserts(runtime: Runtime) -> int:
    """How many times the writer stored a batch (the write-time histogram's count)."""
    for metric in runtime.metrics.write_seconds.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                return int(sample.value)
    return 0


async def test_a_trickle_is_stored_in_few_inserts_and_counted_exactly(topics: Settings, producer: Producer) -> None:
    """With ``min_insert_interval_ms``, batches that arrive within the interval share one
    insert (each insert writes a part, however few its rows), and every one is counted."""
    interval_s = 1.5
    settings = tuned(topics, **{"min_insert_interval_ms": int(interval_s * 1000)})
    events = generate(n_orders=80, seed=9)
    runtime = Runtime(settings)
    await runtime.start(api=False)
    try:
        await send(producer, settings, events[:1], keyed=True)  # unkeyed would take two passes (.routed)

        async def first_insert() -> bool:
            return inserts(runtime) > 0

        await wait_for(first_insert, timeout=60, what="the first insert")
        first = inserts(runtime)
        slices = 8
        loop = asyncio.get_running_loop()
        began = loop.time()
        for k in range(slices):  # 8 separate fetches over ~1.2 s
            await send(producer, settings, events[1 + k :: slices], keyed=True)
            await asyncio.sleep(0.15)
        await wait_counted(runtime, events)

        async def slices_inserted() -> bool:  # the count is observed just after the rows show
            return inserts(runtime) > first

        await wait_for(slices_inserted, timeout=10, what="the slices' inserts counted")
        span = loop.time() - began
        later = inserts(runtime) - first
        await assert_exact(runtime, events)
        # The slices' inserts all began within `span` (none before the first slice was sent),
        # at least an interval apart: so at most this many, however long the machine took.
        bound = 1 + math.floor(span / interval_s)
        if bound >= slices:
            pytest.skip(f"the slices took {span:.1f} s to be stored: no fewer inserts than batches to expect")
        assert later <= bound, f"{later} inserts for {slices} batches stored within {span:.1f} s"
    finally:
        await runtime.stop()


async def test_restart_with_new_process_state_counts_nothing_twice(topics: Settings, producer: Producer) -> None:
    """A new runtime over the same data re-reads from the group's commits; a brand-new
    group re-reads everything: either way nothing counts twice (durable dedupe)."""
    events = generate(n_orders=120, seed=3)
    runtime = Runtime(topics)
    await runtime.start(api=False)
    await send(producer, topics, events)
    await wait_counted(runtime, events)
    await runtime.stop()

    again = Runtime(tuned(topics, **{"consumer_group": topics.consumer_group + "-fresh"}))
    await again.start(api=False)
    try:
        await send(producer, topics, events[:50])  # and redeliver some on top
        await wait_for(
            lambda: _dups_at_least(again, len(events)), timeout=60, what="the whole topic re-read"
        )
        await assert_exact(again, events)
    finally:
        await again.stop()


async def _dups_at_least(runtime: Runtime, n: int) -> bool:
    m = runtime.metrics
    seen = sum(m.consumed.labels(t)._value.get() for t in runtime.settings.topics)
    return seen >= n


async def read_topic(settings: Settings, topic: str, n: int, timeout: float = 30) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    out: list[Any] = []
    try:
        async def more() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            out.extend(r for recs in batch.values() for r in recs)
            return len(out) >= n

        await wait_for(more, timeout=timeout, what=f"{n} messages on {topic}")
    finally:
        await consumer.stop()
    return out


async def test_every_bad_message_is_dead_lettered_and_the_partition_moves_on(
    topics: Settings, producer: Producer
) -> None:
    good = generate(n_orders=30, seed=11)
    order = next(e for e in good if e["schema"] == "order.v1")
    bad: dict[str, bytes] = {
        "invalid_json": b"{not json",
        "unknown_schema": encode(order | {"schema": "order.v9"}),
        "schema_violation": encode(order | {"amount_fen": -5}),
        "timestamp_out_of_range": encode(order | {"occurred_at": "1999-01-01T00:00:00Z"}),
        "oversized": encode(order | {"pad": "x" * 70_000}),
    }
    not_utf8 = b"\xff\xfe not utf-8"
    runtime = Runtime(topics)
    await runtime.start(api=False)
    try:
        # All on the orders topic, interleaved with good events, in the same partitions.
        mixed: list[Any] = []
        for i, ev in enumerate(good):
            mixed.append(ev)
            if i < len(bad):
                mixed.append(list(bad.values())[i])
        mixed.append(not_utf8)
        await send(producer, topics, mixed)
        await wait_counted(runtime, good)
        await assert_exact(runtime, good)
        letters = await read_topic(topics, topics.topic_dlq, len(bad) + 1)
    finally:
        await runtime.stop()
    values = [json.loads(r.value) for r in letters]
    assert sorted(v["error"]["code"] for v in values) == sorted([*bad, "invalid_json"])
    for v in values:
        assert set(v) >= {"error", "source", "failed_at"}
        assert set(v["error"]) == {"code", "message"} and v["error"]["message"]
        assert v["source"]["topic"] == topics.topic_orders
        assert isinstance(v["source"]["partition"], int) and isinstance(v["source"]["offset"], int)
        assert v["failed_at"].endswith("Z")
    by_payload = {v.get("payload", v.get("payload_b64")): v for v in values}
    assert bad["invalid_json"].decode() in by_payload
    import base64

    assert base64.b64encode(not_utf8).decode() in by_payload
    assert "payload" not in by_payload[base64.b64encode(not_utf8).decode()]


class FlakyClient:
    """A ClickHouse client whose inserts fail a number of times: the storage boundary."""

    def __init__(self, inner: Any, failures: int, land_some: bool = True) -> None:
        self.inner = inner
        self.failures = failures
        self.failed = 0
        self.land_some = land_some

    def raw_insert(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures > 0:
            self.failures -= 1
            self.failed += 1
            if self.land_some and self.failed % 2:  # half the failures come after the data landed
                self.inner.raw_insert(*args, **kwargs)
            raise ConnectionError("injected: ClickHouse went away")
        return self.inner.raw_insert(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_storage_failures_lose_and_double_nothing(topics: Settings, producer: Producer) -> None:
    events = generate(n_orders=200, seed=5)
    runtime = Runtime(tuned(topics, **{"write_retry_max_s": 0.2}))
    await runtime.start_storage()
    flaky = FlakyClient(runtime.store._client, failures=4)
    runtime.store._client = flaky  # type: ignore[assignment]
    await runtime.start_kafka()
    try:
        await send(producer, topics, events)
        await wait_counted(runtime, events)
        await assert_exact(runtime, events)
        # both kinds happened: a failure after the rows landed, and one before
        assert flaky.failed >= 2

        async def every_failure_counted() -> bool:  # a failure after its rows landed is
            return bool(runtime.metrics.write_failures._value.get() == flaky.failed)  # counted just after they show

        await wait_for(every_failure_counted, timeout=10, what="each injected failure in the metric")
    finally:
        runtime.store._client = flaky.inner
        await runtime.stop()


async def test_stalled_storage_pauses_fetching_and_bounds_memory(topics: Settings, producer: Producer) -> None:
    events = generate(n_orders=300, seed=8)
    runtime = Runtime(tuned(topics, **{"write_retry_max_s": 0.2, "batch_max_records": 100}))
    await runtime.start_storage()
    flaky = FlakyClient(runtime.store._client, failures=10**9, land_some=False)
    runtime.store._client = flaky  # type: ignore[assignment]
    await runtime.start_kafka()
    consumer = runtime.consumers[0]
    try:
        await send(producer, topics, events)
        await wait_for(lambda: _paused(consumer), timeout=30, what="fetching paused")
        await asyncio.sleep(1.0)  # let it try to run ahead while storage is down
        assert consumer._queue.weight < consumer._queue.capacity + 1.0  # two full fetches and one more
        assert len(consumer._validating) <= consumer.checks.parallel
        assert await stored_counts(runtime.store) == (0, 0)
        flaky.failures = 0  # storage is back
        await wait_counted(runtime, events)
        await assert_exact(runtime, events)
        assert not consumer.stalled
    finally:
        runtime.store._client = flaky.inner
        await runtime.stop()


async def _paused(consumer: Any) -> bool:
    kafka = consumer._kafka
    return bool(consumer.stalled and kafka is not None and kafka.paused())


async def test_two_consumers_one_leaves_mid_stream(topics: Settings, producer: Producer) -> None:
    events = generate(n_orders=400, seed=9)
    half = len(events) // 2
    runtime = Runtime(topics, consumers=2)
    await runtime.start(api=False)
    try:
        await wait_for(
            lambda: _both_assigned(runtime), timeout=30, what="both consumers to own partitions"
        )
        await send(producer, topics, events[:half], keyed=True)
        await wait_for(lambda: _some_stored(runtime), timeout=30, what="first rows stored")
        leaver = runtime.consumers.pop(1)
        await leaver.kill()  # gone without committing what it had in flight
        await send(producer, topics, events[half:], keyed=True)
        await wait_counted(runtime, events)
        await assert_exact(runtime, events)
    finally:
        await runtime.stop()


async def _both_assigned(runtime: Runtime) -> bool:
    return all(c._kafka is not None and c._kafka.assignment() for c in runtime.consumers)


async def _some_stored(runtime: Runtime) -> bool:
    return (await stored_counts(runtime.store))[0] > 0
