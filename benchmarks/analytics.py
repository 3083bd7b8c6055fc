"""``livesales bench analytics``: latency of the bureau's trends, Excel exports and alerts.

Loads the same 10 million order steps as ``bench api`` (benchmarks.api.load) plus 20,000
onboarded firms whose ids are the orders' merchant ids (half of them export-oriented, so
domestic sales join many orders), serves the API from its own process and times, at 1
and 8 clients: alerts of the 6-hour channel, onboarding by week and by month × platform,
the firms ranked by domestic GMV (rows=firm_id, with their names), and two Excel pivots.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.api import BIG, load, measure, serving
from benchmarks.ingest import scratch_dir
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


async def bench_analytics(args: argparse.Namespace) -> None:
    n = args.events or 10_000_000
    with scratch_dir() as tmp:
        dsn = f"chdb://{tmp}/ch"
        await load(dsn, n, 200_000)
        await load_firms(dsn, 20_000)
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
