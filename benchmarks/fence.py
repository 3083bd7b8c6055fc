"""``livesales bench fence``: what the write fence costs one insert, beside the bare insert.

A member that writes beside others (any ``http(s)://`` store) sends each batch as
``INSERT … SELECT * FROM input(…) WHERE <its claim is the latest>`` (processors/fence.py)
instead of a plain ``INSERT … FORMAT JSONEachRow``. Both carry the same rows into the same
Null table and views; the fenced one also reads ``write_fences`` once. This inserts the
same batches both ways through one ClickHouse HTTP endpoint (the chDB-backed test server
of benchmarks/procs.py, or ``LIVESALES_CLICKHOUSE_DSN``), alternating, each batch's order
steps new to the store, and prints per-insert latency and rows/s side by side. The claim
itself (once per assignment) is timed apart.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

from benchmarks.common import order_payload, scratch_dir
from benchmarks.procs import http_clickhouse
from processors.batch import prepare
from processors.fence import Claim, FenceConfig, WriteFence
from processors.rows import RowSet
from processors.store import ClickHouse
from processors.writer import Fencing, _insert


class _Rec:
    def __init__(self, offset: int, value: bytes) -> None:
        self.topic, self.partition, self.offset, self.key, self.value = "orders", 0, offset, None, value


def _batches(n: int, size: int, seed: int) -> list[RowSet]:
    rnd = random.Random(seed)
    out = []
    for b in range(n):
        recs = [_Rec(i, order_payload(b * size + i, f"f{seed}", rnd)) for i in range(size)]
        out.append(prepare(recs).rows["order.v1"])
    return out


def _pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]


async def bench_fence(args: argparse.Namespace) -> None:
    rounds, size = args.rounds, args.batch_rows
    with scratch_dir() as tmp, http_clickhouse(Path(tmp) / "ch") as (dsn, _pid):
        store = ClickHouse(dsn)
        await store.open()
        try:
            fence = WriteFence(FenceConfig())
            claim = Claim("bench-fence", "bench.1", (("orders", 0),))
            started = time.perf_counter()
            await store.run_in_thread(fence.claim, store.client, claim)
            claim_ms = (time.perf_counter() - started) * 1000
            plain, fenced = _batches(rounds, size, 1), _batches(rounds, size, 2)
            fencing = Fencing(fence, claim, (("orders", 0),))
            times: dict[str, list[float]] = {"plain": [], "fenced": []}
            for k in range(rounds):  # alternate, so load on the machine hits both alike
                for name, rows, how in (("plain", plain[k], None), ("fenced", fenced[k], fencing)):
                    t0 = time.perf_counter()
                    await store.run_in_thread(_insert, store.client, rows, how)
                    times[name].append(time.perf_counter() - t0)
            stored = await store.query("SELECT count() AS n FROM order_steps")
        finally:
            await store.close()
    print(f"{rounds} inserts of {size:,} order events each way, alternating; claim once: {claim_ms:.1f} ms")
    print(f"{'insert':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'rows/s':>10}")
    for name, xs in times.items():
        ms = [x * 1000 for x in xs]
        rate = size * len(xs) / sum(xs)
        print(f"{name:>8} {statistics.median(ms):>8.1f} {_pct(ms, 0.9):>8.1f} {_pct(ms, 0.99):>8.1f} {rate:>10,.0f}")
    ratio = statistics.median(times["fenced"]) / statistics.median(times["plain"])
    print(f"fenced / plain, median: {ratio:.2f}; rows stored: {stored[0]['n']:,} of {2 * rounds * size:,}")
