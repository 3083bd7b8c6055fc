"""``livesales bench channels``: ``GET /v1/channels`` (and ``/v1/regions``) at 100,000 channels.

1. Build a chDB store straight in ClickHouse (INSERT … SELECT over ``numbers()``, through
   the registry's ingest table and into ``order_steps``, so migration 5's views keep the
   per-channel state as they would for the service): N channels, 9 in 10 with a registry
   entry, a few order steps each over 6 platforms and 10 districts of 3 townships, spread
   over the last day; the last 5% of order rows stored "now" (those channels are live).
2. Serve the API in this process (the real aiohttp app, through a loopback socket) and
   time, one client, 200 requests each: the first page, a middle page by cursor, a page
   filtered by platform and township, a township-scoped token's page, live channels,
   channels active in the last hour, and regions — beside the raw limit measured in the
   same run on the same store handle: ``SELECT 1``, and a bare read of one page of the
   state table. Once with the state merged into one part, once more after 8 small
   inserts with the state's merges stopped (the fold a page pays while ingest is ahead
   of the background merges).
3. The same pages from a second app answering from its in-process snapshot
   (api.channel_snapshot; the first app has it turned off, so its lines are the query
   path's; with ``from``/``to`` the snapshot's pages still query the channels active
   then): the snapshot's first load, a refresh with nothing new and one after the 8
   small inserts, timed beside the pages, and which path answered.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from api.app import create_app
from api.channel_snapshot import CHANNEL_SNAPSHOTS, ChannelSnapshots
from api.context import ApiConfig
from api.queries.channel_list import NO_SUBCOLUMNS, STATE_ROWS, encode_cursor, state_params
from benchmarks.common import scratch_dir
from ground.metrics import Metrics
from processors.store import ClickHouse

TOKEN = "bench-channels-all0"  # noqa: S105 - throwaway tokens for a loopback benchmark
TOWNSHIP_TOKEN = "bench-channels-town"  # noqa: S105
DISTRICTS = ["北仑区", "鄞州区", "海曙区", "江北区", "镇海区", "奉化区", "余姚市", "慈溪市", "宁海县", "象山县"]
PLATFORMS = ["douyin", "kuaishou", "taobao", "pinduoduo", "jd", "wechat"]

# channel c: platform c % 6, district c % 10, township (c / 10) % 3 of that district
_PLACE = f"""
    {PLATFORMS!r}[c % 6 + 1] AS platform,
    {DISTRICTS!r}[c % 10 + 1] AS district,
    concat(district, ['城关镇', '东镇', '西镇'][intDiv(c, 10) % 3 + 1]) AS township
"""
REGISTRY_SQL = f"""
INSERT INTO channel_events_in (event_id, channel_id, platform, title, host, region, scheduled_start,
    scheduled_end, occurred_at)
SELECT concat('r', toString(c)), concat('ch-', leftPad(toString(c), 6, '0')), platform,
       concat('直播间 ', toString(c)), if(c % 4 = 0, NULL, concat('主播', toString(c % 997))),
       tuple(district, township),
       if(c % 5 = 0, now64(3) + toIntervalHour(c % 48), now64(3) - toIntervalHour(c % 20)),
       if(c % 5 = 0, now64(3) + toIntervalHour(c % 48 + 3), NULL),
       now64(3) - toIntervalDay(2)
FROM (SELECT number AS c, {_PLACE} FROM numbers({{n:UInt64}})) WHERE c % 10 != 9
"""  # noqa: S608 - fixed SQL; sizes are bound parameters
ORDERS_SQL = f"""
INSERT INTO order_steps (step_hash, event_hash, event_id, platform, order_id, status, occurred_at, channel_id,
    merchant_id, district, township, amount_fen, units, weight_g, `items.sku`, `items.name`, `items.quantity`,
    `items.unit_price_fen`, `items.weight_g`, stored_at)
SELECT xxh3(concat(platform, '\\x1f', order_id, '\\x1f', status)), xxh3(event_id), event_id, platform, order_id,
       status, occurred_at, channel_id, 'm', district, township, amount, 1, 500, ['sku'], ['商品'], [1],
       [amount], [500], if(n >= {{n_rows:UInt64}} * 95 / 100, now64(3), occurred_at)
FROM (
    SELECT number AS n, n % {{n:UInt64}} AS c, concat('e', toString(n)) AS event_id,
           concat('o', toString(intDiv(n, 2))) AS order_id, ['created', 'paid'][n % 2 + 1] AS status,
           now64(3) - toIntervalSecond(86400 - intDiv(n * 86400, {{n_rows:UInt64}})) AS occurred_at,
           concat('ch-', leftPad(toString(c), 6, '0')) AS channel_id, toUInt64(1000 + n % 97 * 100) AS amount,
           {_PLACE}
    FROM numbers({{n_rows:UInt64}})
)
"""  # noqa: S608 - fixed SQL; sizes are bound parameters


async def build(dsn: str, channels: int, steps_per_channel: int) -> float:
    ch = ClickHouse(dsn)
    await ch.open()
    started = time.perf_counter()
    try:
        command = ch.client.command
        await ch.run_in_thread(command, REGISTRY_SQL, parameters={"n": channels})
        await ch.run_in_thread(command, ORDERS_SQL, parameters={"n": channels, "n_rows": channels * steps_per_channel})
        for table in ("order_steps", "channel_registry", "channel_state", "channel_minutes"):
            await ch.run_in_thread(command, f"OPTIMIZE TABLE {table} FINAL")
        seconds = time.perf_counter() - started
        (counts,) = await ch.query(
            "SELECT (SELECT count() FROM order_steps) AS steps, (SELECT count() FROM channel_registry) AS registry,"
            " (SELECT count() FROM channel_state) AS state"
        )
        print(f"built {counts['state']:,} channels ({counts['registry']:,} registered, "
              f"{counts['steps']:,} order steps) in {seconds:.1f}s", flush=True)  # fmt: skip
    finally:
        await ch.close()
    return seconds


def quantiles(latencies: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(latencies, n=100)
    return q[49] * 1000, q[98] * 1000


async def timed(call: Callable[[], Awaitable[Any]], n: int) -> tuple[float, float]:
    for _ in range(5):  # warm up
        await call()
    latencies = []
    for _ in range(n):
        t = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - t)
    return quantiles(latencies)


async def _cursor_at(store: ClickHouse, offset: int) -> str:
    """The cursor the server gives out after ``offset`` rows of the unfiltered list."""
    (row,) = await store.query(
        f"SELECT k, channel_id FROM ({STATE_ROWS}) ORDER BY k DESC, channel_id LIMIT 1 OFFSET {{o:UInt64}}"  # noqa: S608
        f" {NO_SUBCOLUMNS}",
        {**state_params(datetime.now(UTC)), "o": offset - 1},
    )
    return encode_cursor((int(row["k"]), row["channel_id"]))


async def _fresh_parts(store: ClickHouse, channels: int, parts: int) -> None:
    """``parts`` small inserts of order steps on random channels, with the state's merges
    stopped: what a page folds while ingest outruns the background merges."""
    await store.run_in_thread(store.client.command, "SYSTEM STOP MERGES channel_state")
    for i in range(parts):
        sql = ORDERS_SQL.replace("FROM numbers({n_rows:UInt64})", f"FROM numbers({10_000_000 + i * 2_000}, 2000)")
        params = {"n": channels, "n_rows": 10_000_000 + parts * 2_000}
        await store.run_in_thread(store.client.command, sql, parameters=params)


def _rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 2**20


async def _timed_refresh(snaps: ChannelSnapshots, label: str) -> None:
    t = time.perf_counter()
    await snaps.refresh()
    size = len(snaps.snapshot.rows) if snaps.snapshot is not None else 0
    print(f"snapshot: {label}: {(time.perf_counter() - t) * 1000:,.0f} ms ({size:,} channels)")


async def bench_channels(args: argparse.Namespace) -> None:
    channels = args.events or 100_000
    n = args.requests
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    with scratch_dir() as tmp:
        dsn = f"chdb://{tmp}/ch"
        await build(dsn, channels, 3)
        tokens = Path(tmp) / "tokens.json"
        tokens.write_text(json.dumps({"tokens": [
            {"token": TOKEN, "name": "bench", "scope": "all"},
            {"token": TOWNSHIP_TOKEN, "name": "town", "scope": f"township:{DISTRICTS[8]}/{DISTRICTS[8]}东镇"},
        ]}))  # fmt: skip
        config = ApiConfig(tokens_file=tokens, rate_per_s=1_000_000)
        store = ClickHouse(dsn)
        await store.open()
        app = create_app(replace(config, max_age_ms=0),  # its pages: the query path
                          store, Metrics(), None, lambda: True)
        server = TestServer(app)
        await server.start_server()
        snap_app = create_app(config, store, Metrics(), None, lambda: True)  # the default bound
        snap_server = TestServer(snap_app)
        await snap_server.start_server()
        snaps = snap_app[CHANNEL_SNAPSHOTS]
        try:
            base = str(server.make_url("")).rstrip("/")
            snap_base = str(snap_server.make_url("")).rstrip("/")
            rss = _rss_mb()
            await _timed_refresh(snaps, "first load")
            print(f"snapshot: RSS +{_rss_mb() - rss:,.0f} MB after the first load")
            async with aiohttp.ClientSession() as session:

                async def get(path: str, token: str = TOKEN, on: str = base) -> Any:
                    async with session.get(on + path, headers={"Authorization": f"Bearer {token}"}) as resp:
                        body = await resp.json()
                        if resp.status != 200:
                            raise RuntimeError(f"{path}: {resp.status} {body}")
                        return body

                middle = await _cursor_at(store, channels // 2)
                hour_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
                # the last day, on minutes: every channel has events in it (the widest answer)
                day = "from={}&to={}".format(*(
                    (datetime.now(UTC) + timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:00Z") for d in (-1, 0)
                ))  # fmt: skip
                cases: dict[str, Callable[[], Awaitable[Any]]] = {
                    "raw: SELECT 1 (same store handle)": lambda: store.query("SELECT 1"),
                    "raw: one page of channel_state": lambda: store.query(
                        "SELECT * FROM channel_state ORDER BY channel_id LIMIT 100"
                    ),
                    "GET /v1/channels (first page)": lambda: get("/v1/channels?limit=100"),
                    "GET /v1/channels (middle page, cursor)": lambda: get(f"/v1/channels?limit=100&cursor={middle}"),
                    "GET /v1/channels?platform&township": lambda: get(
                        f"/v1/channels?limit=100&platform=jd&township={DISTRICTS[8]}西镇"
                    ),
                    "GET /v1/channels (township token)": lambda: get("/v1/channels?limit=100", TOWNSHIP_TOKEN),
                    "GET /v1/channels?status=live": lambda: get("/v1/channels?limit=100&status=live"),
                    "GET /v1/channels?from (last hour)": lambda: get(f"/v1/channels?limit=100&from={hour_ago}"),
                    "GET /v1/channels?from&to (a day)": lambda: get(f"/v1/channels?limit=100&{day}"),
                    "GET /v1/regions (townships)": lambda: get("/v1/regions"),
                    "snapshot: refresh, nothing new": snaps.refresh,
                    "snapshot: first page": lambda: get("/v1/channels?limit=100", on=snap_base),
                    "snapshot: middle page, cursor": lambda: get(
                        f"/v1/channels?limit=100&cursor={middle}", on=snap_base
                    ),
                    "snapshot: platform&township": lambda: get(
                        f"/v1/channels?limit=100&platform=jd&township={DISTRICTS[8]}西镇", on=snap_base
                    ),
                    "snapshot: township token": lambda: get("/v1/channels?limit=100", TOWNSHIP_TOKEN, snap_base),
                    "snapshot: status=live": lambda: get("/v1/channels?limit=100&status=live", on=snap_base),
                    "snapshot: from (last hour)": lambda: get(f"/v1/channels?limit=100&from={hour_ago}", on=snap_base),
                    "snapshot: from&to (a day)": lambda: get(f"/v1/channels?limit=100&{day}", on=snap_base),
                }
                for label, fresh in (("state merged into one part", 0), ("after 8 fresh small parts", 8)):
                    if fresh:
                        await _fresh_parts(store, channels, fresh)
                        await _timed_refresh(snaps, f"refresh after {fresh} small parts")
                    (parts,) = await store.query(
                        "SELECT count() AS n, sum(rows) AS r FROM system.parts"
                        " WHERE database = currentDatabase() AND table = 'channel_state' AND active"
                    )
                    print(f"\n{label}: channel_state has {parts['n']} parts, {parts['r']:,} rows")
                    print(f"{'request (' + str(n) + ' each, 1 client)':<42}{'p50 ms':>10}{'p99 ms':>10}")
                    for name, call in cases.items():
                        p50, p99 = await timed(call, n)
                        print(f"{name:<42}{p50:>10.1f}{p99:>10.1f}", flush=True)
                    print(f"snapshot app's pages answered by: {snaps.answered}")
                    snaps.answered = {"snapshot": 0, "query": 0}
        finally:
            await server.close()
            await snap_server.close()
            await store.close()
