"""The one freshness rule: an answer as of a moment within the bound, one read at a time."""

from __future__ import annotations

import asyncio

from api.freshness import AsOf, Bound


def test_a_bound_lends_only_answers_within_it() -> None:
    b = Bound(1.0)
    assert b.lends(9.0, arrived=10.0) and b.lends(9.5, arrived=10.0)
    assert not b.lends(8.99, arrived=10.0)
    assert not Bound(0).lends(10.0, arrived=10.0)  # 0: never lend
    assert b.refresh_due(9.7, arrived=10.0) and not b.refresh_due(9.8, arrived=10.0)


async def test_one_read_at_a_time_and_the_younger_answer_wins() -> None:
    cell: AsOf[int] = AsOf()
    gate = asyncio.Event()
    reads = 0

    async def read() -> int:
        nonlocal reads
        reads += 1
        await gate.wait()
        return reads

    first = cell.fly(1.0, read)
    assert cell.pending is not None and cell.pending.began == 1.0 and cell.newest() == 1.0
    gate.set()
    assert await first == 1
    assert cell.done == (1.0, 1) and cell.pending is None
    old = cell.fly(0.5, read)  # an older read landing later does not replace a younger answer
    await old
    assert cell.done == (1.0, 1)


async def test_a_failed_read_is_not_kept() -> None:
    cell: AsOf[int] = AsOf()

    async def fail() -> int:
        raise RuntimeError("storage away")

    task = cell.fly(1.0, fail)
    await asyncio.gather(task, return_exceptions=True)
    assert cell.done is None and cell.pending is None
