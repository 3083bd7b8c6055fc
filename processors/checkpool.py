"""Validation in a child process, so it does not compete with aiokafka for the GIL.

In one interpreter the consumer's Python work is serial: aiokafka turning fetch
responses into records (~4.5 µs each) and validating them (~6 µs) share one GIL, while
the second core mostly waits (docs/BENCHMARKS.md). A child process validates batch N
while the parent reads batch N+1 and ClickHouse stores batch N-1. Only the values go
over (one pickled list of bytes; those over the size limit stay here, ``withhold_oversized``)
and only small answers come back (processors.batch).

``processes=0`` validates in a worker thread instead (tools, small deployments). A
child that dies is replaced, and the batch it had is validated in a thread meanwhile:
a crashed validator must not stop the consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
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
from typing import Any

from ground.heap import Heap
from processors.batch import Checked, check_values, dead_head, failed_at_text
from processors.gctune import tune_gc
from processors.placement import Placement
from processors.validate import oversized

log = logging.getLogger(__name__)


class CheckPool:
    def __init__(self, processes: int, max_value_bytes: int, heap_trim_s: float = 0.0) -> None:
        self.processes = processes
        self.max_value_bytes = max_value_bytes
        self.heap_trim_s = heap_trim_s  # the child trims its own C heap (ground.heap) this often
        self._pool: ProcessPoolExecutor | None = None

    @property
    def parallel(self) -> int:
        """How many batches may be in validation at once: one per child and one more, sent
        ahead, so a child starts the next batch as it ends one. Crossing a pipe takes a
        batch 50-150 ms (``widen_pipes``), which the child spent idle when it got its next
        batch only after answering the last: with one sent ahead a poison flood, whose
        batches are MBs each way, was counted 10-13% faster and a clean backlog 14-25%
        (docs/BENCHMARKS.md)."""
        return self.processes + 1 if self.processes > 0 else 1

    async def start(self) -> None:
        if self.processes > 0:
            self._pool = self._new_pool()
            await self.check([], datetime.now().astimezone())  # spawn and import now, not on the first batch

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the parent holds ClickHouse's threads and locks
        pool = ProcessPoolExecutor(
            self.processes, mp_context=multiprocessing.get_context("spawn"), initializer=_init_child,
            initargs=(self.heap_trim_s,),
        )
        widen_pipes(pool)
        return pool

    async def check(self, values: Sequence[bytes | None], now: datetime, placement: Placement | None = None) -> Checked:
        """``placement``: where the values were read, for the in-place check (ingest.routing)."""
        pool = self._pool
        if pool is None:
            return await asyncio.to_thread(check_values, values, now, self.max_value_bytes, placement)
        loop = asyncio.get_running_loop()
        sent, withheld = withhold_oversized(values, self.max_value_bytes)
        try:
            checked = await loop.run_in_executor(pool, check_values, sent, now, self.max_value_bytes, placement)
        except BrokenProcessPool:
            log.error("validation process died; starting a new one")
            if self._pool is pool:
                pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
            return await asyncio.to_thread(check_values, values, now, self.max_value_bytes, placement)
        if withheld:
            restore_oversized(checked, values, withheld, now, self.max_value_bytes)
        return checked

    def pipe_sizes(self) -> list[int]:
        """The bytes each of the pool's pipes holds (tests: ``widen_pipes`` took)."""
        if self._pool is None or not hasattr(fcntl, "F_GETPIPE_SZ"):
            return []
        return [fcntl.fcntl(end.fileno(), fcntl.F_GETPIPE_SZ) for end in _pipe_ends(self._pool)]

    def pids(self) -> list[int]:
        """The validation children's process ids (benchmarks read their RSS)."""
        return list(self._pool._processes) if self._pool is not None else []

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


PIPE_BYTES = 1 << 20  # Linux's default /proc/sys/fs/pipe-max-size: what any user may ask for


def widen_pipes(pool: ProcessPoolExecutor, size: int = PIPE_BYTES) -> None:
    """Give the pool's two pipes (batches out, answers back) ``size`` bytes instead of 64 KiB.

    A batch crosses as one pickled message of a few MB. Through a 64 KiB pipe that is
    ~100 writes by the parent's feeder thread, and each write gives up the GIL and must
    win it back from the event loop's thread, busy parsing fetches: up to 5 ms a time (the
    switch interval). A 7 MB batch took 160 ms to go out and back with the loop busy, and
    55 ms through 1 MiB pipes, while the child sat idle waiting for it (docs/BENCHMARKS.md,
    "Poison flood"). Private attributes of ProcessPoolExecutor: where they or
    F_SETPIPE_SZ are missing (not Linux), the pipes keep their size.
    """
    if not hasattr(fcntl, "F_SETPIPE_SZ"):
        return
    for end in _pipe_ends(pool):
        with contextlib.suppress(OSError):  # EPERM: above this host's pipe-max-size
            fcntl.fcntl(end.fileno(), fcntl.F_SETPIPE_SZ, size)


def withhold_oversized(values: Sequence[bytes | None], max_bytes: int) -> tuple[Sequence[bytes | None], list[int]]:
    """The values to send the child, with each one over ``max_bytes`` replaced by None, and
    where those were.

    Why: such a value is rejected on its length alone, yet crossing to the child and back
    (inside its dead letter) cost two copies through the pipes: in a poison flood whose
    bad values include some over 64 KiB, those few were most of the bytes validation moved
    (docs/BENCHMARKS.md, "Poison flood"). The child answers a None as a tombstone;
    ``restore_oversized`` puts the real answer back."""
    withheld = [i for i, v in enumerate(values) if v is not None and len(v) > max_bytes]
    if not withheld:
        return values, withheld
    sent = list(values)
    for i in withheld:
        sent[i] = None
    return sent, withheld


def restore_oversized(
    checked: Checked, values: Sequence[bytes | None], withheld: list[int], now: datetime, max_bytes: int
) -> None:
    """Give each withheld value the rejection and dead letter the child would have made
    from it (``validate_value`` rejects it on its length alone, with ``oversized``)."""
    where = {i: k for k, (i, _) in enumerate(checked.rejections)}
    stamp = failed_at_text(now)
    for i in withheld:
        rejection = oversized(len(values[i] or b""), max_bytes)
        k = where[i]
        checked.rejections[k] = (i, rejection)
        if checked.dead_heads:
            checked.dead_heads[k] = dead_head(values[i], rejection, stamp)


def _pipe_ends(pool: ProcessPoolExecutor) -> list[Any]:
    """One end of each of the pool's pipes (either end sizes its pipe)."""
    queues = (getattr(pool, "_call_queue", None), getattr(pool, "_result_queue", None))
    return [end for q in queues if (end := getattr(q, "_writer", None)) is not None]


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
