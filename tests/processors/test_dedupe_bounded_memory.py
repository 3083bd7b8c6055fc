"""Dedupe under a memory cap, over one real chDB store: rows the slices no longer cover
are still counted once, through the exact look-up; a sole writer reads nothing back."""

from __future__ import annotations

from datetime import timedelta

from processors.filter_ring import ROW_BYTES, SLICE_SHARE
from processors.store import ClickHouse
from processors.writer import Writer
from tests.processors.test_dedupe_across_processes import NOW, order, rows, steps


def small(ch: ClickHouse, sole_writer: bool = False) -> Writer:
    """A writer whose filters hold ~2,000 rows: slices of 1,024 rows, no room for windows."""
    w = Writer(ch, memory_mb=2048 * ROW_BYTES / 2**20 / SLICE_SHARE, sole_writer=sole_writer)
    w.budget.min_slice_rows = 1024
    return w


async def test_rows_beyond_the_capped_filters_are_deduped_exactly_by_two_writers(clickhouse: ClickHouse) -> None:
    a, b = small(clickhouse), small(clickhouse)
    await a.open()
    await b.open()  # B loaded on the empty store, before A stores anything
    early = [order(f"e{i}", f"o{i}", at=NOW - timedelta(minutes=50)) for i in range(300)]
    await a.store(rows(*early))
    for k in range(6):  # 6,000 later rows: far more than either writer's filters hold
        later = NOW - timedelta(minutes=40 - k)
        await a.store(rows(*(order(f"e{k}-{i}", f"o{k}-{i}", at=later) for i in range(1_000))))
    ring_a = a.dedupers["order_steps"].ring
    assert a.budget.used <= a.budget.slice_bytes and ring_a.rows <= 4_096
    assert ring_a.cutoff_ms > int((NOW - timedelta(minutes=50)).timestamp() * 1000)  # the early rows are out
    await b.store(rows(order("x", "ox")))  # B learns A's parts: its ring drops as A's did
    lookups_a, lookups_b = a.dedupers["order_steps"].lookups, b.dedupers["order_steps"].lookups
    # redeliveries of the early events, and webhook retries of their steps under new ids
    await a.store(rows(*early[:100]))
    await b.store(rows(*early[100:200], *(order(f"r{i}", f"o{i}", at=NOW - timedelta(minutes=50)) for i in range(200, 300))))
    await a.store(rows(*(order(f"r2-{i}", f"o{i}", at=NOW - timedelta(minutes=50)) for i in range(0, 300, 7))))
    assert a.dedupers["order_steps"].lookups - lookups_a >= 100  # answered by the look-up, not memory
    assert b.dedupers["order_steps"].lookups - lookups_b >= 200
    counted = await steps(clickhouse)
    assert sum(counted.values()) == 300 + 6_000 + 1 and set(counted.values()) == {1}


async def test_a_sole_writer_reads_nothing_back_and_still_drops_its_redeliveries(clickhouse: ClickHouse) -> None:
    w = small(clickhouse, sole_writer=True)
    await w.open()
    events = [order(f"e{i}", f"o{i}") for i in range(3_000)]
    for k in range(0, 3_000, 500):
        await w.store(rows(*events[k : k + 500]))
    await w.store(rows(*events[::3], order("new", "o-new")))  # a crash's re-read, partly beyond the filters
    assert w.dedupers["order_steps"].refreshed == 0
    counted = await steps(clickhouse)
    assert sum(counted.values()) == 3_001 and set(counted.values()) == {1}


async def test_a_load_over_more_rows_than_the_cap_takes_the_newest_minutes_and_the_look_up_the_rest(
    clickhouse: ClickHouse,
) -> None:
    w = small(clickhouse)
    await w.open()
    events = [order(f"e{i}", f"o{i}", at=NOW - timedelta(minutes=60 - i // 100)) for i in range(3_000)]  # 30 minutes
    await w.store(rows(*events))
    fresh = small(clickhouse)
    await fresh.open()
    deduper = fresh.dedupers["order_steps"]
    assert 0 < deduper.ring.rows < 3_000  # whole minutes, the newest, as many as fit
    assert int((NOW - timedelta(minutes=60)).timestamp() * 1000) < deduper.cutoff_ms
    await fresh.store(rows(*events[::2], order("new", "o-new")))
    assert deduper.lookups >= 1_000  # the minutes left out went to the exact look-up
    counted = await steps(clickhouse)
    assert sum(counted.values()) == 3_001 and set(counted.values()) == {1}
