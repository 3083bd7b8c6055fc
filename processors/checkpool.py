"""Validation in a child process, so it does not compete with aiokafka for the GIL.

In one interpreter the consumer's Python work is serial: aiokafka turning fetch
responses into records (~4.5 µs each) and validating them (~6 µs) share one GIL, while
the second core mostly waits (docs/BENCHMARKS.md). A child process validates batch N
while the parent reads batch N+1 and ClickHouse stores batch N-1. Only the values go
over (one pickled list of bytes) and only small answers come back (processors.batch).

``processes=0`` validates in a worker thread instead (tools, small deployments). A
child that dies is replaced, and the batch it had is validated in a thread meanwhile:
a crashed validator must not stop the consumer.

The child is also replaced every ``recycle_s`` seconds, the replacement started and
warmed up first so no batch waits for its imports. Its heap only grows: each batch's
JSON leaves a few half-used pymalloc arenas and glibc chunks behind, and a burst of big
fetches raises the high-water mark for good (~0.3 MiB/min at 5,000 events/s,
docs/BENCHMARKS.md "Memory soak"). A fresh child costs ~0.5 s of CPU; every five
minutes that is under 0.2% of a core, and the child's RSS stays within its first
minutes' band however long the service runs.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from multiprocessing.connection import wait

from livesales.heap import Heap
from processors.batch import Checked, check_values
from processors.gctune import tune_gc
from processors.placement import Placement

log = logging.getLogger(__name__)


class CheckPool:
    def __init__(self, processes: int, max_value_bytes: int, heap_trim_s: float = 0.0, recycle_s: float = 0.0) -> None:
        self.processes = processes
        self.max_value_bytes = max_value_bytes
        self.heap_trim_s = heap_trim_s  # the child trims its own C heap (livesales.heap) this often
        self.recycle_s = recycle_s  # a child older than this is replaced (0: never)
        self.recycled = 0  # children replaced for age, for tests and metrics
        self._pool: ProcessPoolExecutor | None = None
        self._born = 0.0  # monotonic time the current pool was made
        self._next: ProcessPoolExecutor | None = None  # its replacement, importing
        self._next_ready: asyncio.Future[Checked] | None = None

    @property
    def parallel(self) -> int:
        """How many batches may be in validation at once."""
        return max(1, self.processes)

    async def start(self) -> None:
        if self.processes > 0:
            self._pool, self._born = self._new_pool(), time.monotonic()
            await self.check([], datetime.now().astimezone())  # spawn and import now, not on the first batch

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the parent holds ClickHouse's threads and locks
        return ProcessPoolExecutor(
            self.processes, mp_context=multiprocessing.get_context("spawn"), initializer=_init_child,
            initargs=(self.heap_trim_s,),
        )

    async def check(self, values: Sequence[bytes | None], now: datetime, placement: Placement | None = None) -> Checked:
        """``placement``: where the values were read, for the in-place check (ingest.routing)."""
        pool = self._pool
        if pool is None:
            return await asyncio.to_thread(check_values, values, now, self.max_value_bytes, placement)
        loop = asyncio.get_running_loop()
        if self.recycle_s > 0:
            pool = self._recycle(loop, pool, now)
        try:
            return await loop.run_in_executor(pool, check_values, values, now, self.max_value_bytes, placement)
        except BrokenProcessPool:
            log.error("validation process died; starting a new one")
            if self._pool is pool:
                pool.shutdown(wait=False, cancel_futures=True)
                self._pool, self._born = self._new_pool(), time.monotonic()
            return await asyncio.to_thread(check_values, values, now, self.max_value_bytes, placement)

    def _recycle(
        self, loop: asyncio.AbstractEventLoop, pool: ProcessPoolExecutor, now: datetime
    ) -> ProcessPoolExecutor:
        """The pool this batch goes to: the current one, or its replacement once that
        has imported. The old pool finishes what it was given, then its child exits."""
        if self._next is None:
            if time.monotonic() - self._born >= self.recycle_s:
                self._next = self._new_pool()
                self._next_ready = loop.run_in_executor(self._next, check_values, [], now, self.max_value_bytes, None)
            return pool
        ready = self._next_ready
        if ready is None or not ready.done():
            return pool
        fresh, self._next, self._next_ready = self._next, None, None
        failed = ready.cancelled() or ready.exception() is not None
        if failed:  # it died importing: keep the old one, try again a recycle period later
            log.warning("a replacement validation process failed to start; keeping the current one")
            fresh.shutdown(wait=False, cancel_futures=True)
            self._born = time.monotonic()
            return pool
        self._pool, self._born = fresh, time.monotonic()
        self.recycled += 1
        pool.shutdown(wait=False)
        return fresh

    def close(self) -> None:
        for pool in (self._next, self._pool):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._pool = self._next = None
        self._next_ready = None


def _init_child(heap_trim_s: float = 0.0) -> None:
    """Runs in the child: validation allocates like the parent does (processors.gctune),
    and the child must exit when the service dies, even by SIGKILL.

    A pool's worker holds both ends of its task pipe, so it would never see the parent
    go and would linger, orphaned, holding the service's stdout open.
    """
    tune_gc()
    if heap_trim_s > 0:
        threading.Thread(target=_trim_every, args=(heap_trim_s,), name="trim-heap", daemon=True).start()
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def _trim_every(seconds: float) -> None:
    """The child's share of livesales.heap's periodic trim: it parses every batch's JSON,
    and glibc keeps what that frees unless asked to give it back."""
    heap = Heap()
    while heap.available:
        time.sleep(seconds)
        heap.trim()
