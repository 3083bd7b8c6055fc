"""``livesales bench api``: query latency with 10 million stored order events.

1. Bulk-load N order steps straight into ``order_steps`` with one INSERT … SELECT
   over ``numbers()`` (ClickHouse generates them; loading through Kafka would take the
   ingest path's time, which ``bench ingest`` measures). One channel is a 6-hour live
   sale with 200,000 steps; the rest spread over 5,000 channels, 6 platforms, 10
   districts of 3 townships each, and 120 days.
2. Serve the API from a separate process (``livesales serve``), so the load generator
   does not share the server's interpreter.
3. For minutes (the 6-hour channel), summary and a platform × district pivot, send
   requests at 1 and at 32 concurrent clients and report p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from benchmarks.common import scratch_dir
from localbroker import free_port
from processors.store import ClickHouse

TOKEN = "bench-token-0000"  # noqa: S105 - a throwaway token for a loopback benchmark
BIG = "bench-live-6h"

LOAD_SQL = """
INSERT INTO order_steps (step_hash, event_hash, event_id, platform, order_id, status, occurred_at, channel_id,
    merchant_id, district, township, amount_fen, units, weight_g, `items.sku`, `items.name`, `items.quantity`,
    `items.unit_price_fen`, `items.weight_g`)
SELECT
    xxh3(concat(platform, '\\x1f', order_id, '\\x1f', status)), xxh3(event_id), event_id, platform, order_id, status,
    occurred_at, channel_id, merchant_id, district, township, amount_fen, qty, qty * 2500,
    [sku], [concat('商品 ', sku)], [toUInt32(qty)], [price], [toUInt32(2500)]
FROM (
    SELECT
        number AS n,
        concat('e', toString(n)) AS event_id,
        n < {big:UInt64} AS big,
        if(big, 'douyin', ['douyin', 'kuaishou', 'taobao', 'pinduoduo', 'jd', 'wechat'][n % 6 + 1]) AS platform,
        n % 30 = 29 AS refund,
        -- per three numbers: a created and a paid step of one order, and a paid order or a refund
        if(n % 3 = 2 AND NOT refund, concat(toString(intDiv(n, 3)), 'b'), toString(intDiv(n, 3))) AS order_id,
        multiIf(n % 3 = 0, 'created', n % 3 = 1 OR NOT refund, 'paid', 'refunded') AS status,
        if(big,
           toDateTime64('2020-02-29 01:00:00', 3, 'UTC') + toIntervalMillisecond(intDiv(n * 21600000, {big:UInt64})),
           toDateTime64('2020-02-01 00:00:00', 3, 'UTC') + toIntervalSecond(n % 10368000)) AS occurred_at,
        if(big, '{bigname:String}', concat('ch-', toString(n % 5000))) AS channel_id,
        concat('m-', toString(n % 20000)) AS merchant_id,
        if(big, '宁海县', ['北仑区', '鄞州区', '海曙区', '江北区', '镇海区',
                            '奉化区', '余姚市', '慈溪市', '宁海县', '象山县'][n % 10 + 1]) AS district,
        -- each township lies in one district, as in life
        if(big, '长街镇', concat(district, ['城关镇', '东镇', '西镇'][n % 3 + 1])) AS township,
        toUInt64(n % 3 + 1) AS qty,
        concat('sku-', toString(n % 40)) AS sku,
        toUInt64(1000 + (n % 40) * 300) AS price,
        qty * price AS amount_fen
    FROM numbers({n:UInt64})
)
"""


async def load(dsn: str, n: int, big: int) -> float:
    ch = ClickHouse(dsn)
    await ch.open()
    started = time.perf_counter()
    sql = LOAD_SQL.replace("{bigname:String}", BIG)
    await ch.run_in_thread(ch.client.command, sql, parameters={"n": n, "big": big})
    await ch.run_in_thread(ch.client.command, "OPTIMIZE TABLE order_steps FINAL")
    seconds = time.perf_counter() - started
    rows = await ch.query("SELECT count() AS c FROM order_steps")
    await ch.close()
    print(f"loaded {rows[0]['c']:,} order steps in {seconds:.1f}s", flush=True)
    return seconds


async def measure(url: str, clients: int, requests: int) -> tuple[float, float]:
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(requests):
            queue.put_nowait(i)

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                t = time.perf_counter()
                async with session.get(url) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{url}: {resp.status}")
                latencies.append(time.perf_counter() - t)

        await asyncio.gather(*(worker() for _ in range(clients)))
    q = statistics.quantiles(latencies, n=100)
    return q[49] * 1000, q[98] * 1000


@asynccontextmanager
async def serving(dsn: str, tmp: str) -> AsyncIterator[str]:
    """A `livesales serve` process on ``dsn`` with an all-scope bench token and no rate
    limit; yields its base URL once /healthz answers, and stops it on exit."""
    tokens = Path(tmp) / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [{"token": TOKEN, "name": "bench", "scope": "all"}]}))
    port = free_port()
    env = {**os.environ, "LIVESALES_CLICKHOUSE_DSN": dsn, "LIVESALES_API_PORT": str(port),
           "LIVESALES_API_TOKENS_FILE": str(tokens), "LIVESALES_API_RATE_PER_S": "1000000",
           "LIVESALES_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}  # fmt: skip
    server = subprocess.Popen([sys.executable, "-m", "livesales.cli", "--log-level", "WARNING", "serve"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(300):
                try:
                    async with s.get(f"{base}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        yield base
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


async def bench_api(args: argparse.Namespace) -> None:
    n = args.events or 10_000_000
    with scratch_dir() as tmp:
        dsn = f"chdb://{tmp}/ch"
        await load(dsn, n, 200_000)
        async with serving(dsn, tmp) as base:
            cases = {
                "minutes (6-hour channel)": f"{base}/v1/channels/{BIG}/minutes",
                "summary (6-hour channel)": f"{base}/v1/channels/{BIG}/summary",
                "pivot platform x district": f"{base}/v1/pivot?dataset=orders&rows=platform&cols=district",
                "channel list (page of 100)": f"{base}/v1/channels",
                "regions (townships)": f"{base}/v1/regions",
            }
            print(f"\n{'query':<30}{'clients':>8}{'p50 ms':>10}{'p99 ms':>10}")
            for name, url in cases.items():
                await measure(url, 4, 20)  # warm up
                for clients, requests in ((1, 200), (32, 640)):
                    p50, p99 = await measure(url, clients, requests)
                    print(f"{name:<30}{clients:>8}{p50:>10.1f}{p99:>10.1f}", flush=True)
