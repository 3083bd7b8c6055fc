"""The writer's queue: bounded by what batches weigh, so a trickle never stops the fetch loop."""

from __future__ import annotations

import asyncio

import pytest

from ingest.batch_queue import BatchQueue, weigh
from processors.batch import Batch


def test_weight_is_the_larger_share_of_records_or_bytes() -> None:
    assert weigh([b"x" * 10] * 50, max_records=100, max_bytes=10_000) == pytest.approx(0.5)
    assert weigh([b"x" * 1_000] * 5, max_records=100, max_bytes=10_000) == pytest.approx(0.5)
    assert weigh([None, b"ab"], max_records=4, max_bytes=1_000) == pytest.approx(0.5)  # tombstones count as records


async def test_many_small_batches_wait_without_blocking_the_producer_side() -> None:
    queue = BatchQueue(capacity=2.0)
    for _ in range(50):  # 50 fetches of a trickle: the old two-batch queue blocked at the third
        queue.put_nowait(Batch(weight=0.02))
    assert queue.qsize() == 50 and not queue.full()


async def test_full_fetches_block_at_capacity_and_resume_when_taken() -> None:
    queue = BatchQueue(capacity=2.0)
    await queue.put(Batch(weight=1.0))
    await queue.put(Batch(weight=1.0))
    assert queue.full()
    third = asyncio.create_task(queue.put(Batch(weight=1.0)))
    await asyncio.sleep(0)
    assert not third.done()  # memory bounded: the validated batch waits for room
    queue.get_nowait()
    await asyncio.wait_for(third, timeout=5)
    assert queue.weight == pytest.approx(2.0)
    queue.get_nowait()
    queue.get_nowait()
    assert queue.weight == 0.0 and queue.empty()
