"""The queue between validation and the writer, bounded by what its batches weigh.

A batch weighs the larger of its share of one full fetch's records and of its bytes
(``weigh``), so the bound on memory is the same as "two full fetches" whatever the
traffic. Counting batches instead made a live trickle wait: while one insert ran
(~100-250 ms), two fetches of a few hundred events each filled the queue, the fetch
loop stopped behind them, and events sat in the broker for the rest of the insert
(freshness p99 at 5,000/s: docs/BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from processors.batch import Batch

CAPACITY = 2.0  # full fetches' worth of records or bytes


def weigh(values: Sequence[bytes | None], max_records: int, max_bytes: int) -> float:
    """One fetch's weight: 1.0 for a fetch as full as ``max_records`` or ``max_bytes`` allow."""
    size = sum(len(v) for v in values if v is not None)
    return max(len(values) / max(1, max_records), size / max(1, max_bytes))


class BatchQueue(asyncio.Queue[Batch]):
    """An ``asyncio.Queue`` that is full while its batches weigh ``capacity`` or more.

    A batch is let in while the queue weighs less than ``capacity``, so it holds at
    most ``capacity`` plus one batch (each weighs at most about 1.0)."""

    def __init__(self, capacity: float = CAPACITY) -> None:
        super().__init__()
        self.capacity = capacity
        self.weight = 0.0

    def full(self) -> bool:
        return self.weight >= self.capacity

    def _put(self, item: Batch) -> None:
        super()._put(item)
        self.weight += item.weight

    def _get(self) -> Batch:
        item = super()._get()
        self.weight = self.weight - item.weight if self.qsize() else 0.0  # no float drift when empty
        return item
