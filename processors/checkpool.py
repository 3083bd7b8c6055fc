"""Validation in a child process, so it does not compete with aiokafka for the GIL.

In one interpreter the consumer's Python work is serial: aiokafka turning fetch
responses into records (~4.5 µs each) and validating them (~6 µs) share one GIL, while
the second core mostly waits (docs/BENCHMARKS.md). A child process validates batch N
while the parent reads batch N+1 and ClickHouse stores batch N-1. Only the values go
over (one pickled list of bytes) and only small answers come back (processors.batch).

``processes=0`` validates in a worker thread instead (tools, small deployments). A
child that dies is replaced, and the batch it had is validated in a thread meanwhile:
a crashed validator must not stop the consumer.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from multiprocessing.connection import wait

from ground.heap import Heap
from processors.batch import Checked, check_values
from processors.gctune import tune_gc
from processors.placement import Placement

log = logging.getLogger(__name__)


class CheckPool:
    def __init__(self, processes: int, max_value_bytes: int, heap_trim_s: float = 0.0) -> None:
        self.processes = processes
        self.max_value_bytes = max_value_bytes
        self.heap_trim_s = heap_trim_s  # the child trims its own C heap (ground.heap) this often
        self._pool: ProcessPoolExecutor | None = None

    @property
    def parallel(self) -> int:
        """How many batches may be in validation at once."""
        return max(1, self.processes)

    async def start(self) -> None:
        if self.processes > 0:
            self._pool = self._new_pool()
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
        try:
            return await loop.run_in_executor(pool, check_values, values, now, self.max_value_bytes, placement)
        except BrokenProcessPool:
            log.error("validation process died; starting a new one")
            if self._pool is pool:
                pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
            return await asyncio.to_thread(check_values, values, now, self.max_value_bytes, placement)

    def pids(self) -> list[int]:
        """The validation children's process ids (benchmarks read their RSS)."""
        return list(self._pool._processes) if self._pool is not None else []

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _init_child(heap_trim_s: float = 0.0) -> None:
    """Runs in the child: validation allocates like the parent does (processors.gctune),
    and the child must exit when the service dies, even by SIGKILL.

    A pool's worker holds both ends of its task pipe, so it would never see the parent
    go and would linger, orphaned, holding the service's stdout open. Ctrl-C reaches the
    whole process group: the child leaves the stop to the parent, which ends the pool,
    rather than print a KeyboardInterrupt traceback of its own.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
    """The child's share of ground.heap's periodic trim: it parses every batch's JSON,
    and glibc keeps what that frees unless asked to give it back."""
    heap = Heap()
    while heap.available:
        time.sleep(seconds)
        heap.trim()
