"""``livesales bench analytics``: latency of the bureau's trends, Excel exports and alerts.

Loads the same 10 million order steps as ``bench api`` (benchmarks.api.load) plus 20,000
onboarded firms whose ids are the orders' merchant ids (half of them export-oriented, so
domestic sales join many orders), serves the API from its own process and times, at 1
and 8 clients: alerts of the 6-hour channel, onboarding by week and by month × platform,
the firms ranked by domestic GMV (rows=firm_id, with their names), and two Excel pivots.

``--domestic`` times the domestic-sales pivots instead, in process on the same store:
each as the plain join over paid order rows (as before migration 5; firm names
included where firm_id is asked, as the API adds them) and from the
per-firm sums (api.queries.domestic), checks that both answer the same, and prints them
beside two floors measured in the same run: a bare count() and the per-firm sum that
p_firm_month answers, with nothing joined. Then the same pivots over HTTP at 1 client.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from api.auth import Scope
from api.params import TimeParams
from api.queries.pivot import DATASETS, PivotRequest, firm_names, grouped_pivot, run_pivot
from benchmarks.api import BIG, load, measure, serving
from benchmarks.common import scratch_dir
from processors.store import ClickHouse

FIRMS_SQL = """
INSERT INTO onboarding_steps (step_hash, event_hash, event_id, platform, firm_id, status, occurred_at, firm_name,
    district, export_oriented)
SELECT xxh3(concat(platform, '\\x1f', firm_id, '\\x1f', 'onboarded')), xxh3(event_id), event_id, platform, firm_id,
       'onboarded', occurred_at, concat('宁波出口企业 ', toString(n)), district, n % 2 = 0
FROM (
    SELECT number AS n, concat('f', toString(n)) AS event_id, concat('m-', toString(n)) AS firm_id,
           ['douyin', 'kuaishou', 'taobao', 'pinduoduo', 'jd', 'wechat'][n % 6 + 1] AS platform,
           ['北仑区', '鄞州区', '海曙区', '江北区', '镇海区',
            '奉化区', '余姚市', '慈溪市', '宁海县', '象山县'][n % 10 + 1] AS district,
           toDateTime64('2020-01-01 00:00:00', 3, 'UTC') + toIntervalSecond(n * 517) AS occurred_at
    FROM numbers({firms:UInt64})
)
"""


async def load_firms(dsn: str, firms: int) -> None:
    ch = ClickHouse(dsn)
    await ch.open()
    await ch.run_in_thread(ch.client.command, FIRMS_SQL, parameters={"firms": firms})
    await ch.close()


# (name, rows, cols, measure): the bureau page's domestic pivot, its top firms, its trend
DOMESTIC = [
    ("platform x district", ("platform",), ("district",), "gmv_fen"),
    ("firm_id (top 20 list)", ("firm_id",), (), "gmv_fen"),
    ("month x platform", ("month",), ("platform",), "gmv_fen"),
    ("month x district, firms", ("month",), ("district",), "firms_with_sales"),
]
FLOORS = {
    "bare count()": "SELECT count() AS c FROM order_steps",
    "per-firm sums, no join": "SELECT count() AS c FROM (SELECT platform, merchant_id, count(), sum(amount_fen)"
    " FROM order_steps WHERE status = 'paid' GROUP BY platform, merchant_id)",
}


async def _median_ms(run: Callable[..., Awaitable[Any]], args: tuple[Any, ...], times: int) -> tuple[float, Any]:
    took, out = [], None
    for _ in range(times):
        t = time.perf_counter()
        out = await run(*args)
        took.append((time.perf_counter() - t) * 1000)
    return statistics.median(took), out


async def _plain(ch: ClickHouse, req: PivotRequest, tp: TimeParams) -> dict[str, Any]:
    """The pivot as before the per-firm sums: the join over rows, then the firms' names."""
    out = await grouped_pivot(ch, req, Scope(), tp, DATASETS["domestic_sales"], None)
    if "firm_id" in req.rows:
        out["labels"] = {"firm_id": await firm_names(ch, sorted(k[0] for k in out["row_keys"]))}
    return out


async def bench_domestic(dsn: str) -> None:
    """In process, before ``serving``: an embedded store opens in one process at a time."""
    ch = ClickHouse(dsn)
    await ch.open()
    tp = TimeParams(tz="+08:00")
    print(f"\n{'in process (median ms)':<28}{'rows':>10}{'sums':>10}{'ratio':>8}", flush=True)
    try:
        for name, sql in FLOORS.items():
            ms, _ = await _median_ms(ch.query, (sql,), 5)
            print(f"{'floor: ' + name:<28}{'':>10}{ms:>10.1f}", flush=True)
        for name, rows, cols, measure_name in DOMESTIC:
            req = PivotRequest("domestic_sales", rows, cols, measure_name)
            old_ms, old = await _median_ms(_plain, (ch, req, tp), 3)
            new_ms, new = await _median_ms(run_pivot, (ch, req, Scope(), tp), 5)
            if new != old:
                raise RuntimeError(f"{name}: per-firm sums answer differently from the rows")
            print(f"{name:<28}{old_ms:>10.1f}{new_ms:>10.1f}{old_ms / new_ms:>7.1f}x", flush=True)
    finally:
        await ch.close()


async def bench_domestic_http(base: str) -> None:
    print(f"\n{'over HTTP, 1 client':<32}{'p50 ms':>10}{'p99 ms':>10}")
    for name, rows, cols, measure_name in DOMESTIC:
        shape = f"&rows={','.join(rows)}" + (f"&cols={','.join(cols)}" if cols else "")
        url = f"{base}/v1/pivot?dataset=domestic_sales{shape}&measure={measure_name}"
        await measure(url, 1, 2)  # warm up
        p50, p99 = await measure(url, 1, 20)
        print(f"{name:<32}{p50:>10.1f}{p99:>10.1f}", flush=True)


async def bench_analytics(args: argparse.Namespace) -> None:
    n = args.events or 10_000_000
    with scratch_dir() as tmp:
        dsn = f"chdb://{tmp}/ch"
        await load(dsn, n, 200_000)
        await load_firms(dsn, 20_000)
        if getattr(args, "domestic", False):
            await bench_domestic(dsn)
            async with serving(dsn, tmp) as base:
                await bench_domestic_http(base)
            return
        async with serving(dsn, tmp) as base:
            p = f"{base}/v1/pivot?"
            fast, slow = ((1, 60), (8, 160)), ((1, 10), (8, 16))  # (clients, requests): a full scan is slow
            cases = {
                "alerts (6-hour channel)": (f"{base}/v1/channels/{BIG}/alerts", fast),
                "onboarding week x platform": (
                    f"{p}dataset=onboarding&rows=week&cols=platform&measure=firms_onboarded", fast),
                "onboarding month x platform": (
                    f"{p}dataset=onboarding&rows=month&cols=platform&measure=firms_net", fast),
                "domestic gmv by firm": (f"{p}dataset=domestic_sales&rows=firm_id&measure=gmv_fen", slow),
                "domestic gmv month x platform": (
                    f"{p}dataset=domestic_sales&rows=month&cols=platform&measure=gmv_fen", slow),
                "xlsx platform x district": (f"{p}dataset=orders&rows=platform&cols=district&format=xlsx", fast),
                "xlsx day x platform": (f"{p}dataset=orders&rows=day&cols=platform&format=xlsx", fast),
            }  # fmt: skip
            print(f"\n{'query':<32}{'clients':>8}{'p50 ms':>10}{'p99 ms':>10}")
            started = time.perf_counter()
            for name, (url, runs) in cases.items():
                await measure(url, 2, 4)  # warm up
                for clients, requests in runs:
                    p50, p99 = await measure(url, clients, requests)
                    print(f"{name:<32}{clients:>8}{p50:>10.1f}{p99:>10.1f}", flush=True)
            print(f"measured in {time.perf_counter() - started:.0f}s")
