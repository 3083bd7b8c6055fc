"""Lower some of this process's threads' priority, without CAP_SYS_NICE.

ClickHouse's own ``os_threads_nice_value_merge_mutate`` (``Tuning.chdb_merge_nice``)
needs CAP_SYS_NICE even to lower its merge threads' priority: with the capability dropped
(``setpriv``), chDB's merge threads stayed at nice 0 (docs/BENCHMARKS.md, "A big store").
A process run by an ordinary user or in a default container lacks it. Linux lets a process
raise its own threads' nice value without it, so the runtime does that itself, by thread
name: ClickHouse names its pools' threads, and a pool keeps its threads, so a pass every
few seconds finds the few that are new.
"""

from __future__ import annotations

import os
from pathlib import Path

MERGE_THREADS = "MergeMutate"  # chDB's merge and mutation pool


def renice_threads(name: str, nice: int, tasks: Path = Path("/proc/self/task")) -> int:
    """Raise the nice value of this process's threads called ``name`` to ``nice`` (never
    lower one: an operator's ``renice`` wins); how many were changed. 0 where there is no
    /proc (not Linux)."""
    changed = 0
    if not tasks.is_dir():
        return 0
    for task in tasks.iterdir():
        try:
            if (task / "comm").read_text().strip() != name:
                continue
            tid = int(task.name)
            if os.getpriority(os.PRIO_PROCESS, tid) < nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
                changed += 1
        except (OSError, ValueError):  # the thread ended meanwhile
            continue
    return changed
