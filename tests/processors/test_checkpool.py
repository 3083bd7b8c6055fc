"""Validation in a child process: same answers as in-thread, and a dead child is replaced."""

from __future__ import annotations

import json
import os
import signal
from datetime import UTC, datetime

from processors.batch import check_values
from processors.checkpool import CheckPool
from tests.processors.test_validate import example

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _values() -> list[bytes | None]:
    good = [json.dumps(example(n), ensure_ascii=False).encode() for n in ("order_paid", "onboarding", "stream_stats")]
    return [*good, good[0], b"{not json", None, b'{"schema": "order.v9"}']


def _summary(checked: object) -> object:
    tables = checked.tables  # type: ignore[attr-defined]
    return (
        {s: (k.indices, k.event_hashes, k.step_hashes, k.repeated) for s, k in tables.items()},
        [(i, r.code) for i, r in checked.rejections],  # type: ignore[attr-defined]
    )


async def test_child_process_answers_like_the_thread() -> None:
    pool = CheckPool(processes=1, max_value_bytes=64 * 1024)
    await pool.start()
    try:
        got = await pool.check(_values(), NOW)
    finally:
        pool.close()
    assert _summary(got) == _summary(check_values(_values(), NOW))
    assert got.rejections and got.tables["order.v1"].repeated == 1


async def test_a_killed_child_is_replaced_and_loses_no_batch() -> None:
    pool = CheckPool(processes=1, max_value_bytes=64 * 1024)
    await pool.start()
    try:
        first = pool._pool
        assert first is not None
        pids = list(first._processes)  # type: ignore[attr-defined]
        assert pids
        os.kill(pids[0], signal.SIGKILL)
        got = await pool.check(_values(), NOW)  # answered although the child died
        assert _summary(got) == _summary(check_values(_values(), NOW))
        assert pool._pool is not first
        again = await pool.check(_values(), NOW)  # and the new child works
        assert _summary(again) == _summary(got)
    finally:
        pool.close()


async def test_zero_processes_validates_in_a_thread() -> None:
    pool = CheckPool(processes=0, max_value_bytes=64 * 1024)
    await pool.start()
    assert pool._pool is None
    got = await pool.check(_values(), NOW)
    pool.close()
    assert _summary(got) == _summary(check_values(_values(), NOW))
