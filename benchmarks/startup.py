"""``livesales bench startup``: how long a consumer process takes to be ready, and its RSS,
over a store that already holds N order steps.

1. N order steps are generated inside ClickHouse (``INSERT ... SELECT FROM numbers()``),
   spread evenly over ``--days`` days up to now, in live sessions of a day each (a
   channel is one session), stored a few seconds after they occurred: a store that grew
   with its history, not one bulk load.
2. A fresh child process opens the store and loads the dedupe filters
   (``Writer.open``), timed from its start to ready, with its RSS (now and peak) read
   from /proc. This is the start-up work a consumer process does before consuming.
3. With ``--all-history`` the child also loads every stored hash, as the filters did
   before the horizon (processors.dedupe): the comparison.

The generated store has no projections unless ``--keep-projections``: they make
generating 100M rows take ~2.5x longer on two busy cores, and the load reads none of
them (only ``event_hash``, ``step_hash``, ``occurred_at``, ``stored_at`` and their
indexes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from clickhouse_connect.driver.client import Client

from benchmarks.common import scratch_dir
from ground.settings import Settings
from processors.bloom import BloomFilter
from processors.dedupe import TableDeduper
from processors.store import ClickHouse

_CHUNK = 10_000_000

# One day's sessions: 400 channels; each order step lands in one of them.
_GENERATE = """
INSERT INTO order_steps (step_hash, event_hash, event_id, platform, order_id, status, occurred_at,
    channel_id, merchant_id, district, township, amount_fen, units, weight_g,
    `items.sku`, `items.name`, `items.quantity`, `items.unit_price_fen`, `items.weight_g`, stored_at)
SELECT xxh3(concat('douyin', '\\x1f', oid, '\\x1f', 'paid')), xxh3(eid), eid, 'douyin', oid, 'paid', at,
    concat('s', toString(intDiv(toUInt64(ms - {start:Int64}), 86400000)), '-', toString(n % 400)),
    'changjie-clam-coop', '宁海县', '长街镇', 6800, 1, 2500,
    ['clam-2.5kg'], ['长街蛏子 2.5kg 装'], [1], [6800], [2500], at + toIntervalSecond(2)
FROM (
    SELECT number + {offset:UInt64} AS n, concat('b-o', toString(n)) AS oid, concat('b-e', toString(n)) AS eid,
           toInt64({start:Int64} + n * {step:Float64}) AS ms, fromUnixTimestamp64Milli(ms, 'UTC') AS at
    FROM numbers({count:UInt64})
)
"""


def _rss() -> tuple[int, int]:
    """(current, peak) resident set size in MB, from /proc (Linux)."""
    fields = dict(
        line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024


async def _child(dsn: str, horizon_hours: float) -> None:
    """Open the store and load the filters as a consumer process does; print the figures."""
    from processors.writer import Writer

    started = time.perf_counter()
    store = ClickHouse(dsn)
    await store.open()
    opened = time.perf_counter()
    writer = Writer(store, horizon_hours * 3600)
    loaded: dict[str, int] = {}

    def load() -> None:
        for name, d in writer.dedupers.items():
            loaded[name] = d.load(store.client) if horizon_hours > 0 else _load_everything(d, store.client)

    await store.run_in_thread(load)
    ready = time.perf_counter()
    rss, peak = _rss()
    print(json.dumps({
        "open_s": round(opened - started, 2), "ready_s": round(ready - started, 2),
        "rss_mb": rss, "peak_rss_mb": peak, "rows_loaded": loaded,
    }), flush=True)  # fmt: skip
    await store.close()


def _load_everything(d: TableDeduper, client: Client) -> int:
    """The filters' start-up before the horizon: every stored hash, sized for twice as many."""
    step = "step_hash" if d.spec.step_fields else "toUInt64(0)"
    res = client.query_np(f"SELECT event_hash AS e, {step} AS s FROM {d.spec.table}")  # noqa: S608
    n = len(res)
    d.old_filters = (BloomFilter(max(1 << 20, 2 * n)), BloomFilter(max(1 << 20, 2 * n)))  # type: ignore[attr-defined]
    if n:
        events, steps = (res["e"], res["s"]) if res.dtype.names else (res[:, 0], res[:, 1])
        d.old_filters[0].add(np.ascontiguousarray(events, dtype=np.uint64))  # type: ignore[attr-defined]
        if d.spec.step_fields:
            d.old_filters[1].add(np.ascontiguousarray(steps, dtype=np.uint64))  # type: ignore[attr-defined]
    return n


def _measure(dsn: str, horizon_hours: float) -> dict[str, object]:
    out = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "benchmarks.startup", "--child", dsn, str(horizon_hours)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def generate_orders(dsn: str, n: int, days: float, keep_projections: bool) -> float:
    store = ClickHouse(dsn)
    await store.open()
    if not keep_projections:
        drop = ", ".join(f"DROP PROJECTION IF EXISTS {p}" for p in ("p_minute", "p_hour", "p_channel"))
        await store.run_in_thread(store.client.command, f"ALTER TABLE order_steps {drop}")
    started = time.perf_counter()
    end_ms = int(time.time() * 1000) - 60_000
    span_ms = days * 86_400_000
    start_ms = int(end_ms - span_ms)
    step = span_ms / max(n, 1)
    for offset in range(0, n, _CHUNK):
        count = min(_CHUNK, n - offset)
        params = {"start": start_ms, "offset": offset, "step": step, "count": count}
        await store.run_in_thread(store.client.command, _GENERATE, parameters=params)
        print(f"  {offset + count:,} stored ({time.perf_counter() - started:.0f} s)", flush=True)
    seconds = time.perf_counter() - started
    parts = await store.query("SELECT count() AS p FROM system.parts WHERE table = 'order_steps' AND active")
    print(f"  {parts[0]['p']} active parts", flush=True)
    await store.close()
    return seconds


async def bench_startup(args: argparse.Namespace) -> None:
    n = args.events if args.events is not None else 100_000_000
    horizon = Settings().tuning.dedupe_horizon_hours
    with scratch_dir() as tmp:
        dsn = f"chdb://{tmp}/ch"
        empty = _measure(dsn, horizon)
        print(f"empty store: {empty}", flush=True)
        print(f"generating {n:,} order steps over {args.days:g} days ...", flush=True)
        seconds = await generate_orders(dsn, n, args.days, args.keep_projections)
        print(f"generated in {seconds:.0f} s ({n / seconds:,.0f} rows/s)", flush=True)
        within = n * horizon / (args.days * 24)
        print(f"~{within:,.0f} of them within the {horizon:g} h horizon", flush=True)
        ours = _measure(dsn, horizon)
        print(f"horizon {horizon:g} h: {ours}", flush=True)
        if args.all_history:
            everything = _measure(dsn, 0)  # 0: every hash, as before the horizon
            print(f"all history (the filters before the horizon): {everything}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        asyncio.run(_child(sys.argv[2], float(sys.argv[3])))
