"""Validation in a child process: same answers as in-thread, and a dead child is replaced."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import UTC, datetime

from processors.batch import check_values
from processors.checkpool import PIPE_BYTES, CheckPool, withhold_oversized
from tests.processors.test_validate import example

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _values() -> list[bytes | None]:
    good = [json.dumps(example(n), ensure_ascii=False).encode() for n in ("order_paid", "onboarding", "stream_stats")]
    return [*good, good[0], b"{not json", None, b'{"schema": "order.v9"}']


def _summary(checked: object) -> object:
    tables = checked.tables  # type: ignore[attr-defined]
    keys = {s: (k.indices, k.event_hashes.tolist(), k.step_hashes.tolist(), k.occurred_ms.tolist(), k.repeated)
            for s, k in tables.items()}  # fmt: skip
    return (
        keys,
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


async def test_values_over_the_limit_stay_here_and_are_answered_as_the_child_would() -> None:
    """A value over the size limit is not sent to the child (two copies of it through the
    pipes, for a rejection on its length alone); its rejection and dead letter are the ones
    the child would have made, among the others in order."""
    limit = 1024
    big = b'{"schema": "order.v1", "name": "' + "蛏".encode() * 600 + b'"}'
    not_utf8 = b"\xff" * (limit + 1)
    values = [*_values(), big, b"{not json", not_utf8, None]
    sent, withheld = withhold_oversized(values, limit)
    assert withheld == [len(_values()), len(_values()) + 2]
    assert [v for i, v in enumerate(sent) if i in withheld] == [None, None]
    pool = CheckPool(processes=1, max_value_bytes=limit)
    await pool.start()
    try:
        got = await pool.check(values, NOW)
    finally:
        pool.close()
    want = check_values(values, NOW, limit)
    assert _summary(got) == _summary(want)
    assert got.rejections == want.rejections and got.dead_heads == want.dead_heads
    codes = [r.code for i, r in got.rejections if i in withheld]
    assert codes == ["oversized", "oversized"]
    assert b"payload_b64" in got.dead_heads[-2] and "蛏".encode() in got.dead_heads[-4]


async def test_one_child_takes_a_second_batch_ahead_and_answers_each_its_own() -> None:
    """With one child, two batches are in validation at once (the second waits in the
    pipe while the first is checked): each caller gets the answer for its own values."""
    pool = CheckPool(processes=1, max_value_bytes=64 * 1024)
    await pool.start()
    try:
        assert pool.parallel == 2
        bad = [b"{not json"] * 3
        first, second = await asyncio.gather(pool.check(_values() * 500, NOW), pool.check(bad, NOW))
    finally:
        pool.close()
    assert _summary(first) == _summary(check_values(_values() * 500, NOW))
    assert [(i, r.code) for i, r in second.rejections] == [(0, "invalid_json"), (1, "invalid_json"), (2, "invalid_json")]
    assert CheckPool(processes=0, max_value_bytes=1).parallel == 1  # in a thread: one at a time


async def test_batches_cross_to_the_child_through_wide_pipes() -> None:
    """A batch of a few MB through 64 KiB pipes took ~100 GIL hand-overs each way
    (processors.checkpool.widen_pipes); a replaced pool gets wide pipes too."""
    pool = CheckPool(processes=1, max_value_bytes=64 * 1024)
    await pool.start()
    try:
        assert pool.pipe_sizes() == [PIPE_BYTES, PIPE_BYTES]
        big = [b'{"schema": "order.v1", "pad": "' + b"x" * 60_000 + b'"}'] * 100  # ~6 MB each way
        checked = await pool.check(big, NOW)
        assert [r.code for _, r in checked.rejections] == ["schema_violation"] * 100
        assert len(checked.dead_heads[0]) > 60_000
        pool._pool.shutdown(wait=True)  # type: ignore[union-attr]
        pool._pool = pool._new_pool()
        assert pool.pipe_sizes() == [PIPE_BYTES, PIPE_BYTES]
    finally:
        pool.close()


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
