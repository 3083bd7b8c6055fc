"""Migration 16: the exact dedupe look-up on order_steps answers as a full read would,
on fresh parts and after a merge renumbered every row, and uses the projection index."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import numpy as np

from benchmarks.common import order_payload
from processors.dedupe import TableDeduper
from processors.rows import ORDERS, RowSet
from processors.store import ClickHouse
from processors.writer import _INSERT_SETTINGS
from schemas.ddl_v16 import LOOKUP_SETTINGS_SQL

WANTED = (5, 25_000, 59_999)  # one row of each part


async def _insert(clickhouse: ClickHouse, start: int, n: int) -> None:
    rnd = random.Random(start)
    now = datetime.now(UTC)
    block = b"\n".join(order_payload(i, "idx", rnd, now) for i in range(start, start + n))
    await clickhouse.run_in_thread(
        clickhouse.client.raw_insert, "order_events_in", None, block, settings=dict(_INSERT_SETTINGS), fmt="JSONEachRow"
    )


async def _lookup(clickhouse: ClickHouse, rows: RowSet) -> tuple[set[str], set[tuple[str, ...]]]:
    deduper = TableDeduper(ORDERS)
    found: tuple[set[str], set[tuple[str, ...]]] = await clickhouse.run_in_thread(
        deduper._lookup, clickhouse.client, rows, list(range(len(rows)))
    )
    return found


async def test_lookup_finds_what_is_stored_through_the_projection_index(clickhouse: ClickHouse) -> None:
    for start in (0, 20_000, 40_000):  # three parts of several granules, each with its own offsets
        await _insert(clickhouse, start, 20_000)
    ids = [f"idx-e{i}" for i in WANTED]
    stored = await clickhouse.query(
        "SELECT event_id, event_hash AS e, step_hash AS s FROM order_steps WHERE event_id IN {ids:Array(String)}"
        " ORDER BY event_id",
        {"ids": ids},
    )
    by_id = {r["event_id"]: r for r in stored}
    rows = RowSet(  # three stored rows and one never stored
        ORDERS,
        [order_payload(i, "idx", random.Random(i)) for i in (*WANTED, 90_000)],
        np.array([int(by_id[e]["e"]) for e in ids] + [12345], dtype=np.uint64),
        np.array([int(by_id[e]["s"]) for e in ids] + [67890], dtype=np.uint64),
    )
    expected = (set(ids), {("douyin", f"idx-o{i}", "paid") for i in WANTED})
    assert await _lookup(clickhouse, rows) == expected

    await clickhouse.run_in_thread(clickhouse.client.command, "OPTIMIZE TABLE order_steps FINAL")  # renumbers rows
    plan = await clickhouse.query(
        "EXPLAIN projections = 1 SELECT event_id FROM order_steps WHERE event_hash IN {e:Array(UInt64)}"  # noqa: S608
        + LOOKUP_SETTINGS_SQL,
        {"e": rows.event_hashes.tolist()},
    )
    assert "p_event_idx" in "\n".join(str(r["explain"]) for r in plan)
    assert await _lookup(clickhouse, rows) == expected
