"""The writer fills its dedupe filters while ClickHouse inserts (processors.writer
``_alongside``), yet a batch's rows are in the filters before ``store`` returns, whether
its insert landed or failed: the next decision, a retry of the same batch included,
never runs without them. ``remember`` is slowed here so that a writer that did not wait
for it would be caught every time, not by chance."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from processors import writer as writer_module
from processors.dedupe import TableDeduper
from processors.rows import RowSet
from processors.store import ClickHouse, StorageError
from processors.writer import Writer
from tests.processors.test_dedupe_across_processes import order, rows, steps

SLOW_S = 0.3


@pytest.fixture
def slow_remember(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``TableDeduper.remember`` finishing SLOW_S late, and the names of the threads it ran in."""
    real = TableDeduper.remember
    threads: list[str] = []

    def slow(self: TableDeduper, batch: RowSet) -> None:
        threads.append(threading.current_thread().name)
        time.sleep(SLOW_S)
        real(self, batch)

    monkeypatch.setattr(TableDeduper, "remember", slow)
    return threads


def _held(w: Writer, batch: RowSet) -> bool:
    ring = w.dedupers[batch.table].ring
    return bool(np.all(ring.might_contain(batch.event_hashes, batch.step_hashes)))


async def test_a_stored_batch_is_in_the_filters_when_store_returns(
    clickhouse: ClickHouse, slow_remember: list[str]
) -> None:
    w = Writer(clickhouse, sole_writer=True)
    await w.open()
    (batch,) = rows(*(order(f"e{i}", f"o{i}") for i in range(50)))
    await w.store([batch])
    assert _held(w, batch)
    assert slow_remember == ["dedupe-remember"]  # beside the insert, not before it
    await w.store(rows(*(order(f"e{i}-again", f"o{i}") for i in range(0, 50, 5)), order("new", "o-new")))
    counted = await steps(clickhouse)
    assert sum(counted.values()) == 51 and set(counted.values()) == {1}


async def test_a_failed_insert_still_leaves_its_rows_in_the_filters_and_its_retry_counts_once(
    clickhouse: ClickHouse, slow_remember: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    w = Writer(clickhouse, sole_writer=True)
    await w.open()
    (batch,) = rows(*(order(f"e{i}", f"o{i}") for i in range(20)))
    real_insert = writer_module._insert

    def lands_then_fails(*args: object, **kwargs: object) -> None:
        real_insert(*args, **kwargs)  # type: ignore[arg-type]
        raise RuntimeError("connection reset after the data landed")

    monkeypatch.setattr(writer_module, "_insert", lands_then_fails)
    with pytest.raises(StorageError):
        await w.store([batch])
    assert _held(w, batch)
    monkeypatch.setattr(writer_module, "_insert", real_insert)
    lookups = w.dedupers["order_steps"].lookups
    await w.store([batch])  # the caller's retry: the filters send it to the exact look-up
    assert w.dedupers["order_steps"].lookups - lookups == 20
    counted = await steps(clickhouse)
    assert sum(counted.values()) == 20 and set(counted.values()) == {1}
