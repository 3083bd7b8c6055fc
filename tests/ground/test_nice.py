"""ground.nice: threads found by their kernel name get the nice value, never a lower one,
and chDB's merge threads are found under the name the runtime uses."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ground.nice import MERGE_THREADS, renice_threads
from processors.store import ClickHouse

TASKS = Path("/proc/self/task")


def _nice(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


@contextmanager
def _named_thread(name: str) -> Iterator[int]:
    """A live thread of this process whose kernel name (``comm``) is ``name``."""
    started, done = threading.Event(), threading.Event()
    tids: list[int] = []

    def run() -> None:
        tids.append(threading.get_native_id())
        started.set()
        done.wait(30)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    (TASKS / str(tids[0]) / "comm").write_text(name)
    try:
        yield tids[0]
    finally:
        done.set()
        thread.join(10)


def test_only_the_named_threads_are_reniced_and_none_is_lowered() -> None:
    with (
        _named_thread("LsTestMerge") as merge,
        _named_thread("LsTestOther") as other,
        _named_thread("LsTestMerge") as nicer,
    ):
        base = _nice(other)
        os.setpriority(os.PRIO_PROCESS, nicer, 15)  # an operator's renice, lower than asked
        assert renice_threads("LsTestMerge", 10) == 1
        assert (_nice(merge), _nice(other), _nice(nicer)) == (10, base, 15)
        assert renice_threads("LsTestMerge", 10) == 0  # nothing new: nothing to do


async def test_chdb_merge_threads_are_found_by_name(tmp_path: Path) -> None:
    store = ClickHouse(f"chdb://{tmp_path / 'ch'}", threads=1)
    await store.open()
    try:
        client = store.client
        client.command("CREATE TABLE t (a UInt64) ENGINE = MergeTree ORDER BY a")
        deadline = time.monotonic() + 60
        found: list[int] = []
        k = 0
        while not found and time.monotonic() < deadline:  # inserts until the merge pool runs
            client.command("INSERT INTO t SELECT number FROM numbers({k:UInt64}, 1000)", parameters={"k": k * 1000})
            k += 1
            found = [int(t.name) for t in TASKS.iterdir() if _comm(t) == MERGE_THREADS]
            await asyncio.sleep(0.05)
        assert found, "no thread of chDB's is named " + MERGE_THREADS
        # no merge running, so ClickHouse's own nice handling (with CAP_SYS_NICE) cannot race this
        client.command("SYSTEM STOP MERGES t")
        while client.query("SELECT count() FROM system.merges").result_rows[0][0] and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        renice_threads(MERGE_THREADS, 10)
        assert all(_nice(tid) >= 10 for tid in found if (TASKS / str(tid)).exists())
    finally:
        await store.close()


def _comm(task: Path) -> str:
    try:
        return (task / "comm").read_text().strip()
    except OSError:
        return ""
