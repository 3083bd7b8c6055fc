"""``livesales bench merges``: what chDB's merges and inserts hold, by merge settings.

The soak's RSS swings were order_steps merges (docs/BENCHMARKS.md "Memory soak"): a part
writes each column, projection column and index through a buffer of
``max_compress_block_size``, and a horizontal merge has all of them open at once. This runs
the same inserts three times in one store, each time with every stored table set as in
SETUPS: ClickHouse's defaults (1 MiB blocks, vertical merges from 131,072 rows), migration
7 alone (``schemas.ddl.COMPRESS_BLOCK_BYTES``) and migrations 7 and 8 (vertical merges from
the first row, ``schemas.ddl.VERTICAL_MERGE_SETTINGS``), and prints side by side:

- the memory of order_steps merges (``system.merges.memory_usage``, sampled every 10 ms:
  the largest merge seen, and the 90th percentile of samples);
- the peak memory of inserts (``system.processes.peak_memory_usage``);
- chDB's tracked memory at its highest, and the insert rate.

Events as ``bench soak`` sends them (event times now), ``--events`` in batches of 5,000,
each batch one insert as the writer makes it (JSONEachRow into ``order_events_in``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from benchmarks.common import order_payload, scratch_dir
from processors.store import ClickHouse, open_client
from schemas.migration import COMPRESS_BLOCK_BYTES, STORED_TABLES, VERTICAL_MERGE_SETTINGS

# ClickHouse's own threshold for vertical merges; migration 8 lowers it to the first row.
_VERTICAL_FROM_131072_ROWS = "vertical_merge_algorithm_min_rows_to_activate = 131072"
# (column header, the settings every stored table gets for that run)
SETUPS = (
    ("ClickHouse's defaults", f"max_compress_block_size = 1048576, {_VERTICAL_FROM_131072_ROWS}"),
    ("migration 7", f"max_compress_block_size = {COMPRESS_BLOCK_BYTES}, {_VERTICAL_FROM_131072_ROWS}"),
    ("migrations 7 + 8", f"max_compress_block_size = {COMPRESS_BLOCK_BYTES}, {VERTICAL_MERGE_SETTINGS}"),
)
BATCH = 5_000
_MIB = 1 << 20
_INSERT = {"input_format_skip_unknown_fields": 1, "date_time_input_format": "best_effort",
           "input_format_parallel_parsing": 0}  # fmt: skip


@dataclass
class Phase:
    setup: str
    merge_samples: list[int] = field(default_factory=list)
    largest_merge: tuple[int, int, int] = (0, 0, 0)  # memory, parts, compressed bytes
    insert_peak: int = 0
    tracked_peak: int = 0
    seconds: float = 0.0


def _watch(client: Client, phase: Phase, stop: threading.Event) -> None:
    """Sample merges, inserts and tracked memory until ``stop`` (a thread: chDB is synchronous)."""
    query = client.query
    while not stop.is_set():
        for mem, parts, size in query(
            "SELECT memory_usage, num_parts, total_size_bytes_compressed FROM system.merges WHERE table = 'order_steps'"
        ).result_rows:
            phase.merge_samples.append(int(mem))
            phase.largest_merge = max(phase.largest_merge, (int(mem), int(parts), int(size)))
        for (peak,) in query(
            "SELECT peak_memory_usage FROM system.processes WHERE query LIKE 'INSERT INTO order_events_in%'"
        ).result_rows:
            phase.insert_peak = max(phase.insert_peak, int(peak))
        (tracked,) = query("SELECT value FROM system.metrics WHERE metric = 'MemoryTracking'").result_rows[0]
        phase.tracked_peak = max(phase.tracked_peak, int(tracked))
        time.sleep(0.01)


def _run(ch: ClickHouse, setup: str, settings: str, events: int) -> Phase:
    client = ch.client
    for table in STORED_TABLES:
        client.command(f"TRUNCATE TABLE {table}")
        client.command(f"ALTER TABLE {table} MODIFY SETTING {settings}")
    phase, stop = Phase(setup), threading.Event()
    # a client of its own: one client's queries wait for each other, and the inserts are long
    watcher = threading.Thread(target=_watch, args=(open_client(ch.dsn), phase, stop), daemon=True)
    watcher.start()
    rnd, began = random.Random(2020), time.monotonic()
    for start in range(0, events, BATCH):
        now = datetime.now(UTC)
        body = b"\n".join(order_payload(i, "bench", rnd, now) for i in range(start, min(events, start + BATCH)))
        client.raw_insert("order_events_in", None, body, settings=_INSERT, fmt="JSONEachRow")
    phase.seconds = time.monotonic() - began
    time.sleep(3)  # the merges the last inserts started
    stop.set()
    watcher.join()
    return phase


def _line(name: str, fn: Callable[[Phase], str], phases: list[Phase]) -> str:
    return f"{name:<32}" + "".join(f"{fn(p):>23}" for p in phases)


async def bench_merges(args: argparse.Namespace) -> None:
    events = args.events or 750_000
    with scratch_dir() as tmp:
        ch = ClickHouse(f"chdb://{tmp}/ch", chdb_cache_mb=256)
        await ch.open()
        try:
            phases = [await asyncio.to_thread(_run, ch, setup, settings, events) for setup, settings in SETUPS]
        finally:
            await ch.close()

    def p90(p: Phase) -> str:
        s = sorted(p.merge_samples)
        return f"{s[int(len(s) * 0.9)] / _MIB:.1f} MiB" if s else "-"

    print(f"{events:,} order events in inserts of {BATCH:,}; order_steps merges sampled every 10 ms")
    print(_line("", lambda p: p.setup, phases))
    print(_line("largest merge: memory", lambda p: f"{p.largest_merge[0] / _MIB:.1f} MiB", phases))
    print(_line("  its parts / compressed size", lambda p: f"{p.largest_merge[1]} / {p.largest_merge[2] / 1e6:.1f} MB",
                phases))  # fmt: skip
    print(_line("merge memory, p90 of samples", p90, phases))
    print(_line("insert peak memory", lambda p: f"{p.insert_peak / _MIB:.1f} MiB", phases))
    print(_line("chDB tracked memory, highest", lambda p: f"{p.tracked_peak / _MIB:.1f} MiB", phases))
    print(_line("inserts", lambda p: f"{events / p.seconds:,.0f}/s", phases))
