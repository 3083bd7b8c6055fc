"""``livesales bench live-monitor``: the 直播电商监测 pivot (dataset ``live_monitor``) at 10M rows.

Why: issue 21 asks p99 ≤ 300 ms at 10 million stored order steps. The dataset joins every
paid order row with each channel's latest registry host and counts distinct channels,
products and hosts per cell and per total (GROUPING SETS): read from the paid rows, a full
pass per request; from ``p_live_keys`` (migration 14) when whole +08:00 days answer, as in the
bureau's reports. So this measures it as the bureau asks it, on
a store shaped like a year of a city's live commerce:

1. Build a store (fresh directory under ``./data``, all migrations) straight in ClickHouse
   with ``INSERT … SELECT`` over ``numbers()`` — the fastest path, through the tables the
   service writes (the registry's ``channel_events_in`` and ``order_steps``), so every
   materialized view, projection and index is filled as ingest fills them: ``--rows``
   order steps (default 10,000,000; each order a created and a paid step, 1 in 25 also
   refunded, 1–3 items of its merchant's 12 SKUs) over ``rows / 330`` live sessions
   (channels: 30,303 at 10M, each a 2–5 hour sale starting 10:00–21:00 +08:00 on one day
   of 2025; skewed: at 10M the busiest has ~60× the median's steps), 8 platforms, 宁波's
   10 districts × 3 townships; 9 in 10 sessions registered (``channel.v1`` with scheduled
   start and end), 1 in 8 of those without a host, 1 in 7 re-registered with another
   host (the latest must win), ``rows / 3,300`` hosts. Then merged (OPTIMIZE FINAL), as
   a year-old store mostly is.
2. Serve the real aiohttp app in this process (``channels`` does the same) with an
   all-scope token and a district token (the API's only region filter), and time, one
   client, ``REPS`` requests each after 3 warm-ups: the year by month × district for each
   of the four measures, a month by day × district, one district (its token) by month ×
   township, the whole store with no bounds, and CSV and xlsx exports of the year. Each
   line: p50 / p99 / max ms.
3. Beside them, the raw limits measured in the same run on the same store handle: a bare
   ``count()``, the bare GROUP BY of the paid rows by month × district with the same
   aggregates and nothing joined, and the registry's host per channel (the join's right
   side), so a figure reads as ours / limit.
4. Check the API's answers against the rows: the year's GMV, sessions and products totals.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp.test_utils import TestServer

from api.app import create_app
from api.context import ApiConfig
from benchmarks.common import scratch_dir
from ground.metrics import Metrics
from ground.settings import Tuning
from processors.store import ClickHouse

TOKEN = "bench-live-monitor-all"  # noqa: S105 - throwaway tokens for a loopback benchmark
DISTRICT_TOKEN = "bench-live-monitor-district"  # noqa: S105
REPS = 50  # requests per case: p99 of 50 is the mean of the two slowest (inclusive quantiles)
WARMUPS = 3
ROWS_PER_CHANNEL = 330  # order steps per live session on average: 30,303 sessions at 10M
CHANNELS_PER_HOST = 10  # a host streams ~10 sessions a year: 3,030 hosts at 10M
SKUS_PER_MERCHANT = 12
YEAR = ("2025-01-01T00:00:00+08:00", "2026-01-01T00:00:00+08:00")
JUNE = ("2025-06-01T00:00:00+08:00", "2025-07-01T00:00:00+08:00")

# 宁波's districts and counties, three townships or subdistricts of each (as in life: a
# township lies in one district). The weights below spread the sessions unevenly.
PLACES: dict[str, tuple[str, str, str]] = {
    "海曙区": ("鼓楼街道", "南门街道", "石碶街道"),
    "江北区": ("慈城镇", "庄桥街道", "洪塘街道"),
    "北仑区": ("新碶街道", "大碶街道", "春晓街道"),
    "镇海区": ("招宝山街道", "骆驼街道", "九龙湖镇"),
    "鄞州区": ("钟公庙街道", "首南街道", "姜山镇"),
    "奉化区": ("溪口镇", "锦屏街道", "莼湖街道"),
    "余姚市": ("阳明街道", "泗门镇", "梁弄镇"),
    "慈溪市": ("浒山街道", "周巷镇", "观海卫镇"),
    "宁海县": ("跃龙街道", "长街镇", "西店镇"),
    "象山县": ("丹西街道", "石浦镇", "爵溪街道"),
}
DISTRICTS = list(PLACES)
DISTRICT_WEIGHTS = [1, 1, 1, 2, 2, 3, 3, 3, 4, 5, 5, 5, 5, 6, 7, 7, 8, 8, 9, 9, 9, 10, 10, 10]  # 1-based
PLATFORMS = ["douyin", "kuaishou", "taobao", "pinduoduo", "jd", "wechat", "netease", "vipshop"]
PLATFORM_WEIGHTS = [1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4, 5, 6, 6, 7, 8]  # douyin leads

# Channel c's place, host and session, from hashes of c: the registry and the orders
# compute the same ones. The session starts 10:00–21:00 in +08:00 on one day of 2025.
_CHANNEL = f"""
    intHash64(c) AS h,
    {PLATFORMS!r}[{PLATFORM_WEIGHTS!r}[h % {len(PLATFORM_WEIGHTS)} + 1]] AS platform,
    {DISTRICT_WEIGHTS!r}[intDiv(h, 64) % {len(DISTRICT_WEIGHTS)} + 1] AS di,
    {DISTRICTS!r}[di] AS district,
    {[list(t) for t in PLACES.values()]!r}[di][intDiv(h, 4096) % 3 + 1] AS township,
    toDateTime64('2024-12-31 16:00:00', 3, 'UTC') + toIntervalDay(intDiv(h, 65536) % 365)
        + toIntervalHour(10 + intDiv(h, 33554432) % 12) AS session_start,
    toUInt64((2 + intDiv(h, 1073741824) % 4) * 3600000) AS session_ms
"""
REGISTRY_SQL = f"""
INSERT INTO channel_events_in (event_id, channel_id, platform, title, host, region, scheduled_start,
    scheduled_end, occurred_at)
SELECT concat('lm-r', toString(c), if(again, 'b', '')), concat('live-', toString(c)), platform,
       concat(township, '直播专场 ', toString(c)),
       if(c % 8 = 0, NULL, concat('主播', toString((intDiv(h, 256) + again) % {{hosts:UInt64}}))),
       tuple(district, township), session_start, session_start + toIntervalMillisecond(session_ms),
       session_start - if(again, toIntervalHour(1), toIntervalHour(24))
FROM (SELECT number AS c, {_CHANNEL} FROM numbers({{channels:UInt64}}))
ARRAY JOIN if(c % 7 = 0, [0, 1], [0]) AS again
WHERE c % 10 != 9
"""  # noqa: S608 - fixed SQL; sizes are bound parameters
# Row n: step n % 2 (created, paid) of order n / 2; 1 in 25 orders' first step is its
# refund instead (a day later). An order's channel is skewed towards low c (x² of a
# uniform x); its time falls inside the channel's session.
ORDERS_SQL = f"""
INSERT INTO order_steps (step_hash, event_hash, event_id, platform, order_id, status, occurred_at, channel_id,
    merchant_id, district, township, amount_fen, units, weight_g, `items.sku`, `items.name`, `items.quantity`,
    `items.unit_price_fen`, `items.weight_g`, stored_at)
SELECT xxh3(concat(platform, '\\x1f', order_id, '\\x1f', status)), xxh3(event_id), event_id, platform, order_id,
       status, occurred_at, channel_id, merchant_id, district, township, arraySum(arrayMap((q, p) -> q * p,
       quantities, prices)), arraySum(quantities), arraySum(quantities) * 500, skus,
       arrayMap(s -> concat('商品 ', s), skus), arrayMap(q -> toUInt32(q), quantities), prices,
       arrayMap(q -> toUInt32(500), quantities), occurred_at + toIntervalSecond(1)
FROM (
    SELECT n, o, oh, c, concat('lm-e', toString(n)) AS event_id, concat('lm-o', toString(o)) AS order_id,
           multiIf(n % 2 = 1, 'paid', o % 25 = 24, 'refunded', 'created') AS status,
           session_start + toIntervalMillisecond(intDiv(oh, 4096) % session_ms)
               + toIntervalSecond(multiIf(status = 'paid', 30, status = 'refunded', 86400, 0)) AS occurred_at,
           concat('live-', toString(c)) AS channel_id, c % {{merchants:UInt64}} AS m,
           concat('m-', toString(m)) AS merchant_id,
           arrayMap(j -> (o + j) % {SKUS_PER_MERCHANT}, range(1 + intDiv(oh, 1024) % 3)) AS slots,
           arrayMap(s -> concat('sku-', toString(m), '-', toString(s)), slots) AS skus,
           arrayMap(s -> toUInt64(1 + (o + s) % 3), slots) AS quantities,
           arrayMap(s -> toUInt64(990 + (m * {SKUS_PER_MERCHANT} + s) % 60 * 300), slots) AS prices,
           {_CHANNEL}
    FROM (
        SELECT number AS n, intDiv(n, 2) AS o, intHash64(o) AS oh,
               toUInt64(floor({{channels:UInt64}} * pow((oh % 1000003) / 1000003, 2))) AS c
        FROM numbers({{rows:UInt64}})
    )
)
"""  # noqa: S608 - fixed SQL; sizes are bound parameters


@dataclass(frozen=True)
class Timing:
    p50_ms: float
    p99_ms: float
    max_ms: float
    refused: int = 0  # answers other than 200 (a pivot over its 10 s limit: 503), timed all the same


def timing(seconds: list[float], refused: int = 0) -> Timing:
    """Inclusive quantiles: with 50 samples the p99 lies between the two slowest, never
    above the slowest (the default, exclusive, extrapolates past it)."""
    ms = sorted(s * 1000 for s in seconds)
    if len(ms) == 1:
        return Timing(ms[0], ms[0], ms[0], refused)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return Timing(q[49], q[98], ms[-1], refused)


class Refused(Exception):
    """The API answered other than 200: counted beside the case's times, not fatal, since
    a pivot over the pivot limits' seconds (503) is itself a figure of this benchmark."""


async def build(dsn: str, rows: int) -> dict[str, int]:
    """The store of ``rows`` order steps (module docstring, 1.); its counts."""
    channels = max(20, rows // ROWS_PER_CHANNEL)
    params = {"rows": rows, "channels": channels, "hosts": max(5, channels // CHANNELS_PER_HOST),
              "merchants": max(10, channels // 10)}  # fmt: skip
    ch = ClickHouse(dsn)
    await ch.open()
    try:
        command = ch.client.command
        started = time.perf_counter()
        await ch.run_in_thread(command, REGISTRY_SQL, parameters=params)
        await ch.run_in_thread(command, ORDERS_SQL, parameters=params)
        loaded = time.perf_counter() - started
        for table in ("order_steps", "channel_registry", "channel_state", "channel_minutes"):
            await ch.run_in_thread(command, f"OPTIMIZE TABLE {table} FINAL")
        (counts,) = await ch.query(
            "SELECT (SELECT count() FROM order_steps) AS steps,"
            " (SELECT countIf(status = 'paid') FROM order_steps) AS paid,"
            " (SELECT uniqExact(channel_id) FROM order_steps) AS channels,"
            " (SELECT uniqExact(channel_id) FROM channel_registry) AS registered,"
            " (SELECT count() FROM channel_registry) AS registry_rows,"
            " (SELECT uniqExact(host) FROM channel_registry) AS hosts,"
            " (SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = 'order_steps'"
            "  AND active) AS parts"
        )
        print(f"built {counts['steps']:,} order steps ({counts['paid']:,} paid) of {counts['channels']:,} sessions"
              f" ({counts['registered']:,} registered in {counts['registry_rows']:,} entries, {counts['hosts']:,}"
              f" hosts): inserted in {loaded:.1f}s, merged in {time.perf_counter() - started - loaded:.1f}s;"
              f" order_steps in {counts['parts']} part(s)", flush=True)  # fmt: skip
    finally:
        await ch.close()
    return {k: int(v) for k, v in counts.items()}


def _pivot(rows: str, cols: str, measure: str, fmt: str = "json", span: tuple[str, str] | None = YEAR) -> str:
    query = {"dataset": "live_monitor", "rows": rows, "cols": cols, "measure": measure, "format": fmt}
    if span is not None:
        query |= {"from": span[0], "to": span[1]}
    return "/v1/pivot?" + urlencode(query)


# (label, path, token): what the bureau's 直播电商监测 page and its exports ask
CASES: list[tuple[str, str, str]] = [
    *((f"year: month x district, {m}", _pivot("month", "district", m), TOKEN)
      for m in ("live_sessions", "live_gmv_fen", "live_products", "active_hosts")),
    ("month: day x district, live_sessions", _pivot("day", "district", "live_sessions", span=JUNE), TOKEN),
    ("district token: month x township, hosts", _pivot("month", "township", "active_hosts"), DISTRICT_TOKEN),
    ("no bounds: platform x month, gmv", _pivot("platform", "month", "live_gmv_fen", span=None), TOKEN),
    ("csv year: platform x month, products", _pivot("platform", "month", "live_products", "csv"), TOKEN),
    ("xlsx year: district x month, sessions", _pivot("district", "month", "live_sessions", "xlsx"), TOKEN),
]  # fmt: skip
_MONTH = "formatDateTime(occurred_at + toIntervalSecond(28800), '%Y-%m', 'UTC')"
_BARE = f"SELECT {_MONTH} AS m, district, {{agg}} AS v FROM order_steps WHERE status = 'paid' GROUP BY m, district"  # noqa: S608 - fixed SQL
RAW: dict[str, str] = {
    "raw: SELECT count() FROM order_steps": "SELECT count() AS v FROM order_steps",
    "raw: paid by month x district, sum": _BARE.format(agg="sum(amount_fen)"),
    "raw: paid by month x district, uniqExact": _BARE.format(agg="uniqExact(channel_id)"),
    "raw: paid by month x district, products": _BARE.format(
        agg="uniqExactArray(arrayMap(s -> tuple(platform, s), `items.sku`))"),
    "raw: registry host per channel (join side)": "SELECT count() AS v FROM (SELECT channel_id,"
    " argMax(host, (occurred_at, event_id)) FROM channel_registry GROUP BY channel_id)",
}  # fmt: skip


async def _timed(call: Callable[[], Awaitable[Any]], reps: int) -> Timing:
    refused = 0
    took = []
    for i in range(WARMUPS + reps):
        t = time.perf_counter()
        try:
            await call()
        except Refused:
            refused += i >= WARMUPS
        if i >= WARMUPS:
            took.append(time.perf_counter() - t)
    return timing(took, refused)


async def _check(store: ClickHouse, get: Callable[[str], Awaitable[bytes]]) -> None:
    """The API's year totals equal the rows' own: GMV (a sum), sessions and products
    (distinct; products as (platform, sku) strings, which the API counts by 128-bit keys)."""
    (raw,) = await store.query(
        "SELECT sum(amount_fen) AS gmv, uniqExact(channel_id) AS sessions,"
        " uniqExactArray(arrayMap(s -> tuple(platform, s), `items.sku`)) AS products FROM order_steps"
        " WHERE status = 'paid'"
        " AND occurred_at >= {lo:DateTime64(3, 'UTC')} AND occurred_at < {hi:DateTime64(3, 'UTC')}",
        {"lo": datetime(2024, 12, 31, 16, tzinfo=UTC), "hi": datetime(2025, 12, 31, 16, tzinfo=UTC)},
    )
    for measure, want in (
        ("live_gmv_fen", raw["gmv"]),
        ("live_sessions", raw["sessions"]),
        ("live_products", raw["products"]),
    ):
        got = json.loads(await get(_pivot("month", "district", measure)))["total"]
        if got != int(want):
            raise RuntimeError(f"live_monitor {measure} total {got} != {want} from the rows")
    print(
        f"checked: the year's totals equal the rows' ({raw['sessions']:,} sessions, {raw['products']:,} products,"
        f" {raw['gmv']:,} fen)"
    )


async def measure(dsn: str, tmp: str, reps: int) -> dict[str, Timing]:
    """Time every case and raw limit (module docstring, 2.–4.) on the store at ``dsn``."""
    tokens = Path(tmp) / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [
        {"token": TOKEN, "name": "bench", "scope": "all"},
        {"token": DISTRICT_TOKEN, "name": "district", "scope": f"district:{DISTRICTS[8]}"},
    ]}))  # fmt: skip
    store = ClickHouse(dsn, chdb_cache_mb=Tuning().chdb_cache_mb)  # the service's own store settings
    await store.open()
    server = TestServer(create_app(ApiConfig(tokens_file=tokens, rate_per_s=1_000_000), store, Metrics(), None,
                                   lambda: True))  # fmt: skip
    await server.start_server()
    figures: dict[str, Timing] = {}
    try:
        base = str(server.make_url("")).rstrip("/")
        async with aiohttp.ClientSession() as session:

            async def get(path: str, token: str = TOKEN) -> bytes:
                async with session.get(base + path, headers={"Authorization": f"Bearer {token}"}) as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        raise Refused(f"{path}: {resp.status} {body[:300]!r}")
                    return body

            await _check(store, get)
            print(f"\n{'request (' + str(reps) + ' each, 1 client)':<48}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}"
                  f"{'not 200':>9}")  # fmt: skip
            calls: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
                *((name, partial(store.query, sql)) for name, sql in RAW.items()),
                *((name, partial(get, path, token)) for name, path, token in CASES),
            ]
            for name, call in calls:
                figures[name] = t = await _timed(call, reps)
                print(f"{name:<48}{t.p50_ms:>10.1f}{t.p99_ms:>10.1f}{t.max_ms:>10.1f}{t.refused:>9}", flush=True)
    finally:
        await server.close()
        await store.close()
    return figures


async def run(rows: int, reps: int) -> tuple[dict[str, int], dict[str, Timing]]:
    """Build and measure in a scratch store; the store's counts and the figures."""
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    with scratch_dir() as tmp:
        dsn = f"chdb://{tmp}/ch"
        counts = await build(dsn, rows)
        return counts, await measure(dsn, tmp, reps)


async def bench_live_monitor(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    _, figures = await run(args.rows, REPS)
    worst = max((f.p99_ms, name) for name, f in figures.items() if not name.startswith("raw:"))
    print(f"\nslowest p99: {worst[0]:.1f} ms ({worst[1]}); goal (issue 21): p99 ≤ 300 ms:"
          f" {'met' if worst[0] <= 300 else 'NOT met'}; {time.perf_counter() - started:.0f}s in all")  # fmt: skip
