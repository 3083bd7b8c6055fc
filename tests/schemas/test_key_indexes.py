"""Migration 16: the exact dedupe look-up on order_steps answers as a full read would,
on fresh parts and after a merge renumbered every row, and uses the projection index.
Migration 17: the bloom_filter skip indexes it replaced are dropped, also from a store
that had them, and the look-up's answer stays the same."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime

import numpy as np

from benchmarks.common import order_payload
from processors.dedupe import TableDeduper
from processors.rows import ORDERS, RowSet
from processors.store import ClickHouse
from processors.writer import _INSERT_SETTINGS
from schemas.ddl_v16 import LOOKUP_SETTINGS_SQL
from schemas.ddl_v17 import DROPPED_INDEXES

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


async def _wanted_rows(clickhouse: ClickHouse) -> tuple[RowSet, tuple[set[str], set[tuple[str, ...]]]]:
    """Three stored rows and one never stored, and what the look-up must find of them."""
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
    return rows, (set(ids), {("douyin", f"idx-o{i}", "paid") for i in WANTED})


async def _skip_indexes(clickhouse: ClickHouse) -> set[tuple[str, str]]:
    """The hashes' bloom_filter indexes, by table (the time indexes are not concerned)."""
    rows = await clickhouse.query(
        "SELECT table, name FROM system.data_skipping_indices WHERE database = currentDatabase()"
        " AND name IN {names:Array(String)}",
        {"names": list(DROPPED_INDEXES)},
    )
    return {(r["table"], r["name"]) for r in rows}


async def _index_bytes(clickhouse: ClickHouse, table: str, where: str) -> int:
    """What the table's skip indexes (those ``where`` picks) hold, by their definitions."""
    rows = await clickhouse.query(
        "SELECT sum(data_compressed_bytes) AS n FROM system.data_skipping_indices"  # noqa: S608 - fixed SQL
        f" WHERE database = currentDatabase() AND table = {{t:String}} AND {where}",
        {"t": table, "names": list(DROPPED_INDEXES)},
    )
    return int(rows[0]["n"])


async def _parts_index_bytes(clickhouse: ClickHouse) -> int:
    """What order_steps' active parts hold in skip-index files."""
    rows = await clickhouse.query(
        "SELECT sum(secondary_indices_compressed_bytes) AS n FROM system.parts"
        " WHERE database = currentDatabase() AND table = 'order_steps' AND active"
    )
    return int(rows[0]["n"])


async def test_lookup_finds_what_is_stored_through_the_projection_index(clickhouse: ClickHouse) -> None:
    for start in (0, 20_000, 40_000):  # three parts of several granules, each with its own offsets
        await _insert(clickhouse, start, 20_000)
    rows, expected = await _wanted_rows(clickhouse)
    assert await _lookup(clickhouse, rows) == expected

    await clickhouse.run_in_thread(clickhouse.client.command, "OPTIMIZE TABLE order_steps FINAL")  # renumbers rows
    plan = await clickhouse.query(
        "EXPLAIN projections = 1 SELECT event_id FROM order_steps WHERE event_hash IN {e:Array(UInt64)}"  # noqa: S608
        + LOOKUP_SETTINGS_SQL,
        {"e": rows.event_hashes.tolist()},
    )
    assert "p_event_idx" in "\n".join(str(r["explain"]) for r in plan)
    assert await _lookup(clickhouse, rows) == expected


async def test_the_unread_skip_indexes_are_dropped_from_a_store_that_had_them(clickhouse: ClickHouse) -> None:
    indexes = await _skip_indexes(clickhouse)
    assert not {name for table, name in indexes if table == "order_steps"}  # a new store never keeps them
    assert ("onboarding_steps", "ix_event") in indexes  # the other tables' look-ups still read theirs

    # a store as migration 16 left it: parts with both indexes written
    for name, column in zip(DROPPED_INDEXES, ("event_hash", "step_hash"), strict=True):
        await clickhouse.run_in_thread(
            clickhouse.client.command,
            f"ALTER TABLE order_steps ADD INDEX {name} {column} TYPE bloom_filter(0.001) GRANULARITY 1",
        )
    for start in (0, 20_000, 40_000):
        await _insert(clickhouse, start, 20_000)
    await clickhouse.run_in_thread(clickhouse.client.command, "DELETE FROM schema_migrations WHERE version = 17")
    assert {name for table, name in await _skip_indexes(clickhouse) if table == "order_steps"} == set(DROPPED_INDEXES)
    assert await _index_bytes(clickhouse, "order_steps", "name IN {names:Array(String)}") > 0

    assert await clickhouse.run_in_thread(clickhouse.migrate_sync) == [17]
    assert not {name for table, name in await _skip_indexes(clickhouse) if table == "order_steps"}
    # The parts' index files go too (a mutation, perhaps done after the migration returns):
    # then what the parts hold in index files is what the remaining indexes account for.
    # Both sums read the same active parts, so a merge meanwhile does not matter.
    deadline = time.monotonic() + 30
    while (held := await _parts_index_bytes(clickhouse)) != (
        defined := await _index_bytes(clickhouse, "order_steps", "1")
    ) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert held == defined
    rows, expected = await _wanted_rows(clickhouse)
    assert await _lookup(clickhouse, rows) == expected
