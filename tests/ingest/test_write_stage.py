"""The write stage's commits when a sole writer has two inserts in flight (real chDB; the
group is a fake that takes commits as aiokafka's consumer does and keeps them)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import TopicPartition

from ground.metrics import Metrics
from ingest.batch_queue import BatchQueue
from ingest.lease import Lease
from ingest.stalls import Stalls
from ingest.write_stage import WriteStage
from processors.batch import Batch, prepare
from processors.store import ClickHouse
from processors.writer import Writer
from tests.processors.test_dedupe_across_processes import Rec, order, steps

PARTITION = ("orders", 0)


class Group:
    """aiokafka's consumer as the write stage uses it: an assignment and commits."""

    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(*PARTITION)}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


def stage(writer: Writer, group: Group, lease: Lease) -> WriteStage:
    return WriteStage(
        "A", "g", writer, producer=None, metrics=Metrics(), queue=BatchQueue(), lease=lease,  # type: ignore[arg-type]
        stalls=Stalls("A"), stopping=asyncio.Event(), kafka=lambda: group,  # type: ignore[arg-type, return-value]
    )  # fmt: skip


def batch(first_offset: int, n: int, epoch: int) -> Batch:
    records = [
        Rec(*PARTITION, first_offset + i, json.dumps(order(f"e{first_offset + i}", f"o{first_offset + i}")).encode())
        for i in range(n)
    ]
    b = prepare(records)
    b.epoch = epoch
    return b


async def _ended(stored: bool) -> asyncio.Task[bool]:
    async def write() -> bool:
        return stored

    task = asyncio.create_task(write())
    await task
    return task


async def test_a_batch_after_one_left_unstored_in_its_assignment_is_stored_not_committed(
    clickhouse: ClickHouse,
) -> None:
    writer, group, lease = Writer(clickhouse, sole_writer=True), Group(), Lease(30, 5)
    await writer.open()
    lease.assigned([PARTITION])
    writes = stage(writer, group, lease)
    # offsets 0-9 were not stored (say, given up at a stop): committing 20 would pass over them
    assert not await writes.write(batch(10, 10, lease.epoch), (await _ended(False), True))
    assert group.commits == []
    assert len(await steps(clickhouse)) == 10  # stored all the same: a re-read drops them
    assert await writes.write(batch(20, 10, lease.epoch), (await _ended(True), True))
    assert group.commits == [{TopicPartition(*PARTITION): 30}]


async def test_the_earlier_write_of_another_assignment_only_orders_the_commit(clickhouse: ClickHouse) -> None:
    writer, group, lease = Writer(clickhouse, sole_writer=True), Group(), Lease(30, 5)
    await writer.open()
    lease.assigned([PARTITION])
    writes = stage(writer, group, lease)
    # the assignment before read its records again from the last commit: nothing is passed over
    assert await writes.write(batch(0, 10, lease.epoch), (await _ended(False), False))
    assert group.commits == [{TopicPartition(*PARTITION): 10}]


async def test_two_writes_in_flight_commit_in_offset_order(clickhouse: ClickHouse) -> None:
    writer, group, lease = Writer(clickhouse, sole_writer=True), Group(), Lease(30, 5)
    await writer.open()
    lease.assigned([PARTITION])
    writes = stage(writer, group, lease)
    release = asyncio.Event()
    held_store = writer.store

    async def slow_store(*args: Any, **kwargs: Any) -> Any:
        await release.wait()
        return await held_store(*args, **kwargs)

    writer.store = slow_store  # type: ignore[method-assign]
    first = asyncio.create_task(writes.write(batch(0, 10, lease.epoch)))
    await asyncio.sleep(0)  # the first write now waits to store
    writer.store = held_store  # type: ignore[method-assign]
    second = asyncio.create_task(writes.write(batch(10, 10, lease.epoch), (first, True)))
    async with asyncio.timeout(20):
        while len(await steps(clickhouse)) < 10:  # the second batch is stored ...
            await asyncio.sleep(0.02)
    assert group.commits == [] and not second.done()  # ... but waits for the first to commit
    release.set()
    assert await asyncio.wait_for(second, 20) and await first
    assert group.commits == [{TopicPartition(*PARTITION): 10}, {TopicPartition(*PARTITION): 20}]
