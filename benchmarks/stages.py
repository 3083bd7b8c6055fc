"""``livesales bench stages``: where the ingest benchmark's time and CPU go.

The same events and runtime as ``bench ingest``'s "ours", with timers around each stage
and the CPU seconds each process (and each thread of the service) used meanwhile. The
timers are wrappers installed for this run only: the service knows nothing of them.
This is how docs/BENCHMARKS.md finds the bottleneck (a stage whose total is close to
the run's wall time is saturated). Linux only: CPU figures are read from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

import ingest.producer
import processors.checkpool
import processors.dedupe
import processors.writer
from benchmarks.common import loaded_broker, ours, poisoned

_TICK = os.sysconf("SC_CLK_TCK")

# (owner, attribute, label): the stages of one batch, in pipeline order
STAGES: tuple[tuple[Any, str, str], ...] = (
    (AIOKafkaConsumer, "getmany", "fetch (getmany, incl. waiting)"),
    (processors.checkpool.CheckPool, "check", "validate (child process, wall)"),
    (processors.writer.Writer, "_store_sync", "store (writer thread, all below)"),
    (processors.dedupe.TableDeduper, "refresh", "  dedupe: learn what others stored"),
    (processors.dedupe.TableDeduper, "select_new", "  dedupe: which rows are new"),
    (processors.dedupe.TableDeduper, "_lookup", "    of which exact look-ups"),
    (processors.dedupe.TableDeduper, "remember", "  dedupe: remember the new"),
    (processors.writer, "_insert", "  insert into ClickHouse"),
    (AIOKafkaConsumer, "commit", "commit offsets"),
    (ingest.producer.Producer, "send_values", "dead letters: send (whole batches)"),
)


class StageTimes:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()

    def add(self, label: str, started: float) -> None:
        self.seconds[label] += time.perf_counter() - started
        self.calls[label] += 1

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Wrap every stage for the duration of the block, then put the originals back."""
        originals = [(owner, name, getattr(owner, name)) for owner, name, _ in STAGES]
        for (owner, name, original), (_, _, label) in zip(originals, STAGES, strict=True):
            setattr(owner, name, self._timed(original, label))
        try:
            yield
        finally:
            for owner, name, original in originals:
                setattr(owner, name, original)

    def _timed(self, original: Any, label: str) -> Any:
        if asyncio.iscoroutinefunction(original):

            @functools.wraps(original)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await original(*args, **kwargs)
                finally:
                    self.add(label, started)

            return timed_async

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.add(label, started)

        return timed


def _cpu(stat_path: str) -> float:
    """User + system CPU seconds from a /proc stat file."""
    fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def cpu_by_process(broker_pid: int) -> dict[str, float]:
    me = os.getpid()
    out = {"service process": _cpu(f"/proc/{me}/stat"), "broker": _cpu(f"/proc/{broker_pid}/stat")}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (me, broker_pid):
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:  # ppid
                out[f"child {entry.name}"] = _cpu(str(entry / "stat"))
        except (OSError, ValueError):
            continue  # exited meanwhile
    return out


def cpu_by_thread() -> dict[int, tuple[str, float]]:
    """The service's threads: id -> (name, CPU seconds). ClickHouse renames a thread that
    runs a query ("python" becomes "Unknown"), so threads are told apart by id and named
    as they are named at the end (``by_name``)."""
    out: dict[int, tuple[str, float]] = {}
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            out[int(task.name)] = ((task / "comm").read_text().strip(), _cpu(str(task / "stat")))
        except OSError:
            continue
    return out


def by_name(after: dict[int, tuple[str, float]], before: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU each thread used between the two readings, summed by its latest name."""
    out: dict[str, float] = defaultdict(float)
    for tid, (name, cpu) in after.items():
        out[name] += cpu - before.get(tid, (name, 0.0))[1]
    return {k: v for k, v in out.items() if v >= 0.01}


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) >= 0.01}


async def bench_stages(args: argparse.Namespace) -> None:
    n = args.events or 400_000
    poison = getattr(args, "poison", 0.0)  # --poison: that share of the events bad
    bad = len(poisoned(n, poison))
    async with loaded_broker(n, poison) as loaded:
        settings, broker_pid = loaded.settings, loaded.broker.pid
        times = StageTimes()
        procs, threads = cpu_by_process(broker_pid), cpu_by_thread()
        at_first_row: list[tuple[dict[str, float], dict[int, tuple[str, float]]]] = []

        def first_row() -> None:
            at_first_row.append((cpu_by_process(broker_pid), cpu_by_thread()))

        with times.installed():
            seconds, runtime = await ours(settings, n - bad, bad, first_row)
        procs_end, threads_end = cpu_by_process(broker_pid), cpu_by_thread()
        await runtime.stop()
    print(f"\nours: {n / seconds:,.0f} events/s ({seconds:.2f} s from the first stored row to the last)\n")
    whole = "from start-up to the last row (group join included)"
    report(times, delta(procs_end, procs), by_name(threads_end, threads), whole)
    procs_first, threads_first = at_first_row[0]
    steady = delta(procs_end, procs_first)
    report_cpu(steady, by_name(threads_end, threads_first), "from the first stored row to the last (the rate's window)")
    print(f"  all processes: {sum(steady.values()) / n * 1e6:.1f} CPU-µs an event")


def report(times: StageTimes, procs_used: dict[str, float], threads_used: dict[str, float], span: str) -> None:
    """Each stage's calls and time, then the CPU each process and service thread used."""
    print(f"{'stage':<36}{'calls':>7}{'total s':>10}{'avg ms':>9}")
    for _, _, label in STAGES:
        calls, total = times.calls[label], times.seconds[label]
        print(f"{label:<36}{calls:>7}{total:>10.2f}{(total / calls * 1000 if calls else 0):>9.1f}")
    report_cpu(procs_used, threads_used, span)


def report_cpu(procs_used: dict[str, float], threads_used: dict[str, float], span: str) -> None:
    print(f"\nCPU seconds {span}:")
    for name, cpu in sorted(procs_used.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<20}{cpu:>7.2f}")
    by_thread = sorted(threads_used.items(), key=lambda kv: -kv[1])
    print("  service threads: " + ", ".join(f"{name} {cpu:.2f}" for name, cpu in by_thread))
