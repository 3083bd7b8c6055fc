"""``livesales bench bigstore``: does a big store slow ingest? (issue 22, item 6)

The same backlog of keyed order events is counted twice from a fresh group, once on a
store that already holds ``--small-rows`` order steps and once on one holding ``--rows``,
both generated as ``bench startup`` does (a year of live sessions, 400 channels a day)
but with the projections every real store has. Before the clock starts the generated
store's merges are let settle, so what is timed is ingest on a big store, not the tail
of its bulk load (printed apart: the time the merges took), and its dirty pages are
written back.

The events are the ones of ``bench ingest`` (2020, older than the dedupe horizon: the
window path of processors.dedupe), or with ``--recent`` ones that end a minute ago (the
horizon's slices). Per run: the rate, the rows sent to the exact look-up and the window
filters held at the end, then where the time and CPU went (``bench stages``' timers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from pathlib import Path

from benchmarks.common import loaded_broker, ours
from benchmarks.stages import StageTimes, by_name, cpu_by_process, cpu_by_thread, delta, report
from benchmarks.startup import generate_orders
from ground.settings import Settings
from livesales.wiring import clickhouse
from processors.store import ClickHouse


def _dirty_mb() -> float:
    """The kernel's dirty page cache in MB (/proc/meminfo; 0 where there is none)."""
    meminfo = Path("/proc/meminfo")
    lines = meminfo.read_text().splitlines() if meminfo.exists() else []
    return next((int(line.split()[1]) / 1024 for line in lines if line.startswith("Dirty:")), 0.0)


async def _settle(dsn: str, limit_s: float = 600.0) -> None:
    """Wait until no merge has run for 3 s (at most ``limit_s``), then write dirty pages back."""
    store = ClickHouse(dsn)
    await store.open()
    started = time.perf_counter()
    quiet = 0.0
    try:
        while time.perf_counter() - started < limit_s:
            rows = await store.query("SELECT count() AS m FROM system.merges")
            if rows[0]["m"]:
                quiet = 0.0
            elif not quiet:
                quiet = time.perf_counter()
            elif time.perf_counter() - quiet >= 3:
                break
            await asyncio.sleep(0.5)
        print(f"  merges settled in {time.perf_counter() - started:.0f} s; active parts:", flush=True)
        for t in await store.query(
            "SELECT table, count() AS p, sum(rows) AS r, max(rows) AS m FROM system.parts"
            " WHERE active AND database = currentDatabase() AND rows > 0 GROUP BY table ORDER BY r DESC LIMIT 6"
        ):  # fmt: skip
            print(f"    {t['table']:<20}{t['p']:>4} parts, {t['r']:>12,} rows, the largest {t['m']:,}", flush=True)
        # The load left GBs of dirty pages; their writeback would compete with the timed run,
        # which a store that grew over months does not have.
        dirty = _dirty_mb()
        await asyncio.to_thread(os.sync)
        print(f"  {dirty:,.0f} MB of dirty pages written back", flush=True)
    finally:
        await store.close()


class MergeWatch:
    """What merges ran during the timed run: ``system.merges`` sampled every 0.2 s, the
    last sample of each merge kept (its parts, rows read so far, bytes, seconds)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.seen: dict[tuple[str, str], dict[str, float]] = {}

    async def run(self) -> None:
        store = clickhouse(self.settings)  # opened as the runtime opens its own
        await store.open()
        try:
            while True:
                for m in await store.query(
                    "SELECT table, result_part_name AS part, num_parts AS n, rows_read AS r,"
                    " total_size_bytes_compressed AS b, elapsed AS s FROM system.merges"
                ):  # fmt: skip
                    self.seen[(str(m["table"]), str(m["part"]))] = {k: float(m[k]) for k in ("n", "r", "b", "s")}
                await asyncio.sleep(0.2)
        finally:
            await store.close()

    def report(self) -> None:
        tables: dict[str, list[dict[str, float]]] = {}
        for (table, _), m in self.seen.items():
            tables.setdefault(table, []).append(m)
        print("merges during the run (sampled): table, merges, parts in, rows read, MB in, longest s")
        for table, ms in sorted(tables.items(), key=lambda kv: -sum(m["r"] for m in kv[1])):
            print(f"  {table:<20}{len(ms):>4}{sum(m['n'] for m in ms):>6.0f}{sum(m['r'] for m in ms):>14,.0f}"
                  f"{sum(m['b'] for m in ms) / 1e6:>9.1f}{max(m['s'] for m in ms):>8.1f}")  # fmt: skip


async def _one(stored: int, n: int, recent: bool) -> dict[str, float]:
    async with loaded_broker(n, recent=recent) as loaded:
        dsn = loaded.settings.clickhouse_dsn
        if stored:
            print(f"generating {stored:,} order steps with projections ...", flush=True)
            await generate_orders(dsn, stored, 365, keep_projections=True)
            await _settle(dsn)
        times = StageTimes()
        procs, threads = cpu_by_process(loaded.broker.pid), cpu_by_thread()
        watch = MergeWatch(loaded.settings)
        watching = asyncio.create_task(watch.run())
        try:
            with times.installed():
                seconds, runtime = await ours(loaded.settings, n, stored=stored)
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
        procs_used, threads_used = delta(cpu_by_process(loaded.broker.pid), procs), by_name(cpu_by_thread(), threads)
        try:
            writer = runtime.writer
            orders = writer.dedupers["order_steps"]
            figures = {
                "stored": stored, "seconds": seconds, "rate": n / seconds, "lookups": orders.lookups,
                "windows": len(orders.windows), "oversized": len(orders.oversized),
            }  # fmt: skip
        finally:
            await runtime.stop()
    print(f"  {stored:,} stored: {n:,} events in {seconds:.2f} s = {n / seconds:,.0f}/s; {figures}", flush=True)
    report(times, procs_used, threads_used, "from start-up to the last row (group join included)")
    watch.report()
    return figures


async def bench_bigstore(args: argparse.Namespace) -> None:
    n = args.events or 400_000
    sizes = [args.small_rows, args.rows]
    results = [await _one(size, n, args.recent) for size in sizes]
    print()
    print(f"{'stored order steps':<24}{'events/s':>12}{'exact look-ups':>16}")
    for r in results:
        print(f"{r['stored']:<24,.0f}{r['rate']:>12,.0f}{r['lookups']:>16,.0f}")
    print(f"big / small: {results[1]['rate'] / results[0]['rate']:.2f}")
