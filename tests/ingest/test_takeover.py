"""Two consumer processes' worth of state in one group over one store (real Tansu, real chDB).

Each member has its own ``Writer`` and dedupe filters, as separate ``livesales consume``
processes have; they share this process's chDB handle only because chDB admits one
process per data path. Member A stores order step K and dies before committing; B takes
the partitions over and re-reads K together with a new step L and webhook retries of
both under new event ids: every step must be counted once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ground.metrics import Metrics
from ground.settings import Settings
from ingest.consumer import Consumer
from ingest.producer import Producer
from livesales.wiring import consumer_config
from processors.batch import Batch
from processors.checkpool import CheckPool
from processors.store import ClickHouse
from processors.validate import MAX_VALUE_BYTES
from processors.writer import Writer
from tests.conftest import wait_for
from tests.support.offsets import all_committed
from tests.support.settings import tuned

pytestmark = pytest.mark.slow


def order(event_id: str, order_id: str, status: str = "paid", minutes_ago: int = 5) -> bytes:
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)  # within the dedupe horizon
    event = {
        "schema": "order.v1", "event_id": event_id, "order_id": order_id, "status": status,
        "occurred_at": at.isoformat(), "channel_id": "nh-1", "platform": "douyin", "merchant_id": "m1",
        "region": {"district": "宁海县", "township": "长街镇"},
        "items": [{"sku": "clam", "name": "长街蛏子", "quantity": 1, "unit_price_fen": 6800, "weight_g": 2500}],
        "amount_fen": 6800,
    }  # fmt: skip
    return json.dumps(event, ensure_ascii=False).encode()


class Member:
    """One process's consumer side: its own writer (own dedupe state) over the shared store."""

    def __init__(self, settings: Settings, store: ClickHouse, producer: Producer, name: str) -> None:
        self.writer = Writer(store)
        self.checks = CheckPool(0, MAX_VALUE_BYTES)
        self.consumer = Consumer(consumer_config(settings), self.writer, producer, Metrics(), self.checks, name=name)


@pytest.fixture
async def store(topics: Settings) -> AsyncIterator[ClickHouse]:
    ch = ClickHouse(topics.clickhouse_dsn)
    await ch.open()
    yield ch
    await ch.close()


async def counts(store: ClickHouse) -> dict[tuple[str, str], int]:
    rows = await store.query(
        "SELECT order_id, toString(status) AS s, count() AS n FROM order_steps GROUP BY order_id, s"
    )
    return {(r["order_id"], r["s"]): r["n"] for r in rows}


async def test_a_member_dies_between_store_and_commit_and_the_new_owner_counts_each_step_once(
    topics: Settings, store: ClickHouse, producer: Producer
) -> None:
    a = Member(topics, store, producer, "A")
    b = Member(topics, store, producer, "B")
    await a.writer.open()
    await b.writer.open()  # B's process started on the empty store, before A stored anything
    stored = asyncio.Event()

    async def dies_before_commit(batch: Batch) -> None:
        stored.set()
        await asyncio.Event().wait()  # never commits; killed here

    a.consumer._writes._commit = dies_before_commit  # type: ignore[method-assign]
    await a.checks.start()
    await a.consumer.start()
    await producer.send_all_or_raise([(topics.topic_orders, b"o-k", order("e-k", "o-k"))])
    await asyncio.wait_for(stored.wait(), 30)
    await a.consumer.kill()
    assert await counts(store) == {("o-k", "paid"): 1}
    assert not await all_committed(topics)

    # After the rebalance: a new step on K's partition, webhook retries under new event
    # ids, on K's partition and on another one (keys are recommended, not guaranteed).
    await producer.send_all_or_raise([
        (topics.topic_orders, b"o-k", order("e-l", "o-l")),
        (topics.topic_orders, b"o-k", order("e-k-retry", "o-k")),
        (topics.topic_orders, b"elsewhere", order("e-k-retry-2", "o-k")),
        (topics.topic_orders, None, order("e-l-retry", "o-l")),
    ])  # fmt: skip
    await b.checks.start()
    await b.consumer.start()
    try:
        await wait_for(lambda: all_committed(topics), timeout=60, what="B to commit every offset")
        assert await counts(store) == {("o-k", "paid"): 1, ("o-l", "paid"): 1}
    finally:
        await b.consumer.stop()
        b.checks.close()
        a.checks.close()


async def test_a_zombie_that_lost_its_partitions_while_stalled_writes_nothing(
    topics: Settings, store: ClickHouse, producer: Producer
) -> None:
    """A has decided K is new and stalls before inserting (its heartbeats stop, as in a
    long pause); the group gives its partitions to B, which stores K and L; then A
    wakes up. Its lease has run out, so K is not inserted twice."""
    settings = tuned(topics, **{"kafka_session_timeout_ms": 3000})
    a = Member(settings, store, producer, "A")
    b = Member(settings, store, producer, "B")
    await a.writer.open()
    await b.writer.open()
    deciding, wake = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    deduper = a.writer.dedupers["order_steps"]
    select_new = deduper.select_new

    def stalls_after_deciding(client: Any, rows: Any) -> list[int]:
        keep = select_new(client, rows)
        loop.call_soon_threadsafe(deciding.set)
        asyncio.run_coroutine_threadsafe(wake.wait(), loop).result(60)
        return keep

    deduper.select_new = stalls_after_deciding  # type: ignore[method-assign]
    await a.checks.start()
    await a.consumer.start()
    await producer.send_all_or_raise([(settings.topic_orders, b"o-k", order("e-k", "o-k"))])
    await asyncio.wait_for(deciding.wait(), 30)
    # A's process stalls: no heartbeats reach the coordinator any more.
    coordinator = a.consumer._kafka._coordinator  # type: ignore[union-attr]

    async def silent() -> bool:
        await asyncio.sleep(3600)
        return False

    coordinator._do_heartbeat = silent
    await producer.send_all_or_raise([(settings.topic_orders, b"o-k", order("e-l", "o-l"))])
    await b.checks.start()
    await b.consumer.start()
    try:

        async def b_stored_both() -> bool:
            return await counts(store) == {("o-k", "paid"): 1, ("o-l", "paid"): 1}

        await wait_for(b_stored_both, timeout=60, what="B to take over and store K and L")
        wake.set()  # A wakes up after losing its partitions

        async def a_acted() -> bool:  # dropped its stale batch, or (without a fence) wrote it
            dropped = getattr(a.consumer, "fenced_batches", 0) > 0
            return dropped or (await counts(store)).get(("o-k", "paid"), 0) > 1

        await wait_for(a_acted, timeout=30, what="A to drop (or write) its stale batch")
        await wait_for(lambda: all_committed(settings), timeout=60, what="every offset committed")
        assert await counts(store) == {("o-k", "paid"): 1, ("o-l", "paid"): 1}
    finally:
        wake.set()
        await a.consumer.kill()
        await b.consumer.stop()
        a.checks.close()
        b.checks.close()
