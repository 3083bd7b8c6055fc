"""Two processes' dedupe state over one store (real chDB): every order step counts once.

Each ``Writer`` has its own ``TableDeduper``s, as each consumer process has; both write
one ClickHouse, as several ``livesales consume`` processes write one server. (chDB admits
one process per data path, so the two "processes" share this process's handle.)
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from processors.batch import prepare
from processors.dedupe import TableDeduper
from processors.rows import ORDERS, RowSet
from processors.store import ClickHouse
from processors.writer import Ownership, Writer
from tests.ingest.test_lease import Clock

NOW = datetime.now(UTC)


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    value: bytes | None


def order(event_id: str, order_id: str, status: str = "paid", at: datetime | None = None) -> dict[str, Any]:
    return {
        "schema": "order.v1", "event_id": event_id, "order_id": order_id, "status": status,
        "occurred_at": (at or NOW - timedelta(minutes=5)).isoformat(), "channel_id": "nh-1",
        "platform": "douyin", "merchant_id": "m1", "region": {"district": "宁海县", "township": "长街镇"},
        "items": [{"sku": "clam", "name": "长街蛏子", "quantity": 2, "unit_price_fen": 6800, "weight_g": 2500}],
        "amount_fen": 13600,
    }  # fmt: skip


def rows(*events: dict[str, Any]) -> list[RowSet]:
    records = [Rec("orders", 0, i, json.dumps(e, ensure_ascii=False).encode()) for i, e in enumerate(events)]
    return list(prepare(records).rows.values())


async def steps(ch: ClickHouse) -> dict[tuple[str, str], int]:
    found = await ch.query("SELECT order_id, toString(status) AS s, count() AS n FROM order_steps GROUP BY order_id, s")
    return {(r["order_id"], r["s"]): r["n"] for r in found}


async def test_new_owner_re_reading_a_stored_step_with_a_new_one_counts_each_once(
    clickhouse: ClickHouse, two_writers: tuple[Writer, Writer]
) -> None:
    a, b = two_writers
    k, l_ = order("e-k", "o-k"), order("e-l", "o-l")
    await a.store(rows(k))  # A stores K and dies before committing its offset
    await b.store(rows(k, l_))  # B owns the partition now: re-reads K, and L is new
    retry = order("e-k-retry", "o-k")  # a webhook retry of K's step under a new event id
    await b.store(rows(retry))
    await a.store(rows(retry, order("e-l-retry", "o-l")))  # and one reaching the other process
    assert await steps(clickhouse) == {("o-k", "paid"): 1, ("o-l", "paid"): 1}


async def test_a_zombie_that_decided_before_losing_its_partition_writes_nothing(
    clickhouse: ClickHouse, two_writers: tuple[Writer, Writer]
) -> None:
    """A decides that K is new, then stalls (GC, SIGSTOP, a slow VM) longer than its
    session; B takes the partition over and stores K and L; A wakes up and must not
    insert K again. Its lease says it may have lost the partition: the batch is dropped."""
    from ingest.lease import Lease

    a, b = two_writers
    clock = Clock()
    lease = Lease(session_timeout_s=6, margin_s=2, clock=clock)
    lease.assigned([("orders", 0)])
    decided, wake = threading.Event(), threading.Event()
    deduper = a.dedupers["order_steps"]
    select_new = deduper.select_new

    def stalls_after_deciding(client: Any, rs: RowSet) -> list[int]:
        keep = select_new(client, rs)
        decided.set()
        wake.wait(10)
        return keep

    deduper.select_new = stalls_after_deciding  # type: ignore[method-assign]
    k = order("e-k", "o-k")
    zombie = asyncio.create_task(a.store(rows(k), owner=Ownership(lambda: lease.holds([("orders", 0)]))))
    assert await asyncio.to_thread(decided.wait, 10)
    clock.now += 7  # no heartbeat answered meanwhile: the session has run out
    await b.store(rows(k, order("e-l", "o-l")))
    wake.set()
    with pytest.raises(Exception, match="lease"):
        await zombie
    assert await steps(clickhouse) == {("o-k", "paid"): 1, ("o-l", "paid"): 1}


async def test_a_live_member_keeps_writing_while_its_lease_is_renewed(clickhouse: ClickHouse) -> None:
    from ingest.lease import Lease

    w = Writer(clickhouse)
    await w.open()
    clock = Clock()
    lease = Lease(session_timeout_s=6, margin_s=2, clock=clock)
    lease.assigned([("orders", 0)])
    for i in range(3):
        clock.now += 2.5  # past the lease (4 s) in all but the first round, but for:
        lease.renew(clock.now - 0.1)  # a heartbeat answered
        await w.store(rows(order(f"e{i}", f"o{i}")), owner=Ownership(lambda: lease.holds([("orders", 0)])))
    assert sum((await steps(clickhouse)).values()) == 3


async def test_parts_merged_before_they_were_read_are_still_learnt(
    clickhouse: ClickHouse, two_writers: tuple[Writer, Writer]
) -> None:
    a, b = two_writers
    for i in range(3):  # three parts
        await a.store(rows(order(f"e{i}", f"o{i}")))
    clickhouse.client.command("OPTIMIZE TABLE order_steps FINAL")  # merged into one, unseen by B
    await b.store(rows(*(order(f"e{i}-retry", f"o{i}") for i in range(3)), order("e-new", "o-new")))
    assert sum((await steps(clickhouse)).values()) == 4
    deduper = b.dedupers["order_steps"]
    deduper.refresh(clickhouse.client)  # B reads back its own part
    before = deduper.refreshed
    clickhouse.client.command("OPTIMIZE TABLE order_steps FINAL")  # a merge of what B has read
    deduper.refresh(clickhouse.client)
    assert deduper.refreshed == before  # nothing read again


async def test_memory_follows_the_horizon_and_old_events_are_answered_by_their_days(clickhouse: ClickHouse) -> None:
    old = NOW - timedelta(days=30)
    writer = Writer(clickhouse)
    await writer.open()
    await writer.store(rows(*(order(f"old{i}", f"old{i}", at=old) for i in range(50))))
    await writer.store(rows(order("e-new", "o-new")))
    # what an older history looks like: stored long ago, too
    clickhouse.client.command("ALTER TABLE order_steps UPDATE stored_at = occurred_at WHERE order_id LIKE 'old%'"
                              " SETTINGS mutations_sync = 1")  # fmt: skip
    fresh = TableDeduper(ORDERS, horizon_s=48 * 3600)
    assert fresh.load(clickhouse.client) == 1  # only the row within the horizon is held
    again = Writer(clickhouse)
    again.dedupers["order_steps"] = fresh
    retry = order("old7-retry", "old7", at=old + timedelta(minutes=1))  # a retry of a 30-day-old step
    await again.store(rows(retry, order("old-x", "old-x", at=old)))
    assert len(fresh.windows) == 1 and fresh.lookups == 1  # the day's window cleared the new one
    fresh.max_window_rows = 0  # no room for windows: every old row takes the exact look-up
    fresh.windows.clear()
    await again.store(rows(order("old8-retry", "old8", at=old), order("old-y", "old-y", at=old)))
    assert not fresh.windows and fresh.lookups == 3
    found = await steps(clickhouse)
    assert all(found[(f"old{i}", "paid")] == 1 for i in range(50))
    assert found[("old-x", "paid")] == 1 and found[("old-y", "paid")] == 1
