"""``livesales bench refresh``: what learning other processes' inserts costs the writer.

Batches of ``bench ingest``'s order events (13,000 each, its typical batch) are stored
one after another through the writer's steps, each timed on its own: the insert; the
refresh before the next batch, which reads the part just written back (as it reads
another process's part); and a refresh when nothing is new.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.common import order_payload, scratch_dir
from processors.batch import prepare
from processors.store import ClickHouse
from processors.writer import Writer, _insert


@dataclass
class _Record:
    topic: str
    partition: int
    offset: int
    value: bytes


def _timed(into: list[float], fn: Callable[[], object]) -> None:
    started = time.perf_counter()
    fn()
    into.append(time.perf_counter() - started)


async def bench_refresh(args: argparse.Namespace) -> None:
    batches = max(4, (args.events or 260_000) // 13_000)
    rnd = random.Random(7)
    times: dict[str, list[float]] = {k: [] for k in ("insert", "refresh reading a 13k-row part back",
                                                     "refresh, nothing new")}  # fmt: skip
    with scratch_dir() as tmp:
        store = ClickHouse(f"chdb://{tmp}/ch")
        await store.open()
        writer = Writer(store)
        await writer.open()
        deduper, client = writer.dedupers["order_steps"], store.client
        for b in range(batches):
            records = [_Record("o", 0, i, order_payload(b * 13_000 + i, "r", rnd)) for i in range(13_000)]
            rows = prepare(records).rows["order.v1"]
            deduper.remember(rows)
            _timed(times["insert"], lambda: _insert(client, rows))  # noqa: B023 - called at once
            _timed(times["refresh reading a 13k-row part back"], lambda: deduper.refresh(client))
            _timed(times["refresh, nothing new"], lambda: deduper.refresh(client))
        await store.close()
    print(f"{batches} batches of 13,000 order events; median ms (first batch left out):")
    for what, xs in times.items():
        print(f"  {what:<40}{statistics.median(xs[1:]) * 1000:>8.1f}")
