"""A sole writer decides batch N+1 while batch N is still being inserted (real chDB).

Batch N's insert is held at a gate (a delay put in front of the real insert): while it
waits, N's rows are remembered but not in the store. What decides N+1 from memory must
then already hold N, and a decision that reads the store must wait for N to land.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

import processors.writer as writer_module
from processors.store import ClickHouse
from processors.writer import Writer
from tests.processors.test_dedupe_across_processes import NOW, order, rows, steps

WAIT_S = 20.0


class Gate:
    """Holds the first insert until ``release``; tells when it began waiting."""

    def __init__(self) -> None:
        self.holding = threading.Event()
        self.released = threading.Event()
        self.calls = 0

    def release(self) -> None:
        self.released.set()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    g = Gate()
    real = writer_module._insert

    def gated(*args: Any, **kwargs: Any) -> None:
        g.calls += 1
        if g.calls == 1:
            g.holding.set()
            if not g.released.wait(WAIT_S):
                raise TimeoutError("the gate was never released")
        real(*args, **kwargs)

    monkeypatch.setattr(writer_module, "_insert", gated)
    yield g
    g.release()


async def _until(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, WAIT_S), "timed out"


async def test_a_batch_of_new_rows_is_inserted_while_the_one_before_still_is(
    clickhouse: ClickHouse, gate: Gate
) -> None:
    w = Writer(clickhouse, sole_writer=True)
    await w.open()
    first = asyncio.create_task(w.store(rows(*(order(f"a{i}", f"oa{i}") for i in range(50)))))
    await _until(gate.holding)
    second = await asyncio.wait_for(w.store(rows(*(order(f"b{i}", f"ob{i}") for i in range(50)))), WAIT_S)
    assert second.stored == {"order_steps": 50}
    assert not first.done()  # the first batch's insert is still held
    gate.release()
    assert (await asyncio.wait_for(first, WAIT_S)).stored == {"order_steps": 50}
    counted = await steps(clickhouse)
    assert len(counted) == 100 and set(counted.values()) == {1}


def settling(w: Writer) -> threading.Event:
    """Set when a decision of ``w`` begins waiting for the inserts in flight."""
    began = threading.Event()
    settle = w.settle

    def noted() -> None:
        began.set()
        settle()

    w.settle = noted  # type: ignore[method-assign]
    return began


async def test_copies_of_rows_in_flight_wait_for_them_and_count_once(clickhouse: ClickHouse, gate: Gate) -> None:
    w = Writer(clickhouse, sole_writer=True)
    await w.open()
    waiting = settling(w)
    batch = [order(f"a{i}", f"o{i}") for i in range(50)]
    first = asyncio.create_task(w.store(rows(*batch)))
    await _until(gate.holding)
    # redeliveries, and webhook retries of the same steps under new event ids, beside new rows
    again = [*batch[:10], *(order(f"retry{i}", f"o{i}") for i in range(10, 20)), order("new", "o-new")]
    second = asyncio.create_task(w.store(rows(*again)))
    await _until(waiting)  # the copies sent it to the store, which must first hold the first batch
    assert not second.done()
    gate.release()
    assert (await asyncio.wait_for(first, WAIT_S)).stored == {"order_steps": 50}
    result = await asyncio.wait_for(second, WAIT_S)
    assert result.stored == {"order_steps": 1} and result.duplicates == {"order_steps": 20}
    counted = await steps(clickhouse)
    assert sum(counted.values()) == 51 and set(counted.values()) == {1}


async def test_old_rows_wait_for_the_inserts_in_flight_before_their_day_is_read(
    clickhouse: ClickHouse, gate: Gate
) -> None:
    w = Writer(clickhouse, sole_writer=True)
    await w.open()
    waiting = settling(w)
    old = NOW - timedelta(days=5)  # before the filters' cutoff: a day's window answers
    batch = [order(f"a{i}", f"o{i}", at=old) for i in range(30)]
    first = asyncio.create_task(w.store(rows(*batch)))
    await _until(gate.holding)
    second = asyncio.create_task(w.store(rows(*(order(f"retry{i}", f"o{i}", at=old) for i in range(30)))))
    await _until(waiting)
    assert not second.done()
    gate.release()
    await asyncio.wait_for(first, WAIT_S)
    assert (await asyncio.wait_for(second, WAIT_S)).duplicates == {"order_steps": 30}
    counted = await steps(clickhouse)
    assert sum(counted.values()) == 30 and set(counted.values()) == {1}


async def test_a_writer_shared_with_other_processes_never_overlaps(clickhouse: ClickHouse) -> None:
    assert Writer(clickhouse, sole_writer=True).overlaps
    assert not Writer(clickhouse).overlaps  # its decisions read what others stored: see processors.writer
