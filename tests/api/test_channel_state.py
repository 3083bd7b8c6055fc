"""The state-backed channel list (migration 5) against the list computed from the raw
tables (tests/api/channel_reference.py) on a store with many channels, places, platforms,
registry entries and stream stats: every page, cursor and filter, for scoped tokens too;
and a store upgraded from migration 4 gets its state backfilled."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.auth import Scope
from api.channel_snapshot import CHANNEL_SNAPSHOTS, ChannelSnapshots
from api.params import TimeParams
from api.queries import channel_list
from api.queries.channel_list import ListFilters, active_ids, decode_cursor, list_channels
from api.queries.regions import regions
from ground.metrics import Metrics
from ground.settings import Settings
from livesales.wiring import api_config
from processors import store as store_module
from processors.store import ClickHouse
from schemas.ddl import MIGRATIONS
from tests.api.channel_reference import reference_list, reference_regions
from tests.api.conftest import auth, dataset, order, stats, store_events
from tests.api.test_channels import channel, registry_events
from tests.conftest import wait_for
from tests.support.settings import tuned

ONE = ("tea", "望海茶", 1, 1500, 100)
PLACES = [("宁海县", "长街镇"), ("宁海县", "桃源街道"), ("象山县", "石浦镇"), ("北仑区", None)]
PLATFORMS = ["douyin", "kuaishou", "taobao"]


def many_channels() -> list[dict[str, Any]]:
    """Beyond the API tests' data set: 24 channels over places and platforms, some with
    equal last event times (ties by channel_id), some registered where they do not sell,
    a late-arriving earlier order that moves a channel, an exact tie of earliest orders,
    registry entries tied on time, and one channel known from stream stats only."""
    events: list[dict[str, Any]] = []
    for i in range(24):
        cid = f"m{i:02d}"
        district, township = PLACES[i % 4]
        platform = PLATFORMS[i % 3]
        minute = i // 3  # three channels per minute: equal clocks
        for j in range(1 + i % 3):
            at = f"2020-03-02T10:{minute:02d}:{10 * j + 5:02d}+08:00"
            status = "paid" if j != 1 else "created"
            events.append(order(f"m-{i}-{j}", f"mo{i}-{j}", status, at, cid, [ONE], platform=platform,
                                district=district, township=township))  # fmt: skip
        if i % 5 == 0:  # registered elsewhere: the registry's place wins
            events.append(channel(f"mr-{i}", cid, "2020-03-01T00:00:00+08:00", f"直播{i}", platform="taobao",
                                  district="象山县", township="石浦镇",
                                  start="2020-03-02T10:30:00+08:00" if i % 10 == 0 else None))  # fmt: skip
    # m01's earliest order arrives last and moves it (not registered)
    events.append(order("m-late", "mo-late", "paid", "2020-03-02T09:00:00+08:00", "m01", [ONE], platform="jd",
                        district="北仑区", township=None))  # fmt: skip
    # m02: two earliest orders at the same instant: the least (district, township, platform)
    for eid, d, t in (("m-tie-a", "象山县", "石浦镇"), ("m-tie-b", "宁海县", "长街镇")):
        events.append(order(eid, eid, "paid", "2020-03-02T08:00:00+08:00", "m02", [ONE], district=d, township=t))
    # m03: two registry entries at the same instant: the greater event id wins
    for eid, title in (("mr-3-a", "甲"), ("mr-3-b", "乙")):
        events.append(channel(eid, "m03", "2020-03-01T00:00:00+08:00", title, township="桃源街道"))
    events.append(stats("only-stats", "2020-03-02T10:20:30+08:00", "stats-only", 5, 9))
    return events


RANGES: list[tuple[str | None, str | None]] = [
    (None, None),
    ("2020-03-02T00:00:00+08:00", "2020-03-03T00:00:00+08:00"),  # a day, on minutes
    ("2020-03-02T10:02:07+08:00", "2020-03-02T10:04:06+08:00"),  # across minutes, off them
    ("2020-03-02T10:01:06+08:00", "2020-03-02T10:01:16+08:00"),  # inside one minute
    ("2020-03-02T10:35:00+08:00", None),  # schedules only
    ("2020-02-29T10:02:00+08:00", "2020-02-29T10:03:00+08:00"),
]
SCOPES = [Scope(), Scope(district="宁海县"), Scope(district="宁海县", township="长街镇"), Scope(district="象山县")]
FILTERS = [
    ListFilters(),
    ListFilters(platform="taobao"),
    ListFilters(district="象山县"),
    ListFilters(township="桃源街道"),
    ListFilters(status="live"),
    ListFilters(status="ended", platform="douyin"),
    ListFilters(status="scheduled"),
]


def _tp(lo: str | None, hi: str | None) -> TimeParams:
    return TimeParams.model_validate({"from_": lo, "to": hi})


async def _walk(fn: Any, ch: ClickHouse, scope: Scope, tp: TimeParams, f: ListFilters, limit: int,
                now: datetime) -> list[Any]:  # fmt: skip
    """Every page with its cursor, following the cursors."""
    pages: list[Any] = []
    cursor = None
    for _ in range(50):
        page, nxt = await fn(ch, scope, tp, ListFilters(**{**f.__dict__, "limit": limit, "cursor": cursor}), now)
        pages.append((page, nxt))
        if nxt is None:
            return pages
        cursor = decode_cursor(nxt)
    raise AssertionError("the cursors did not end")


async def _assert_same(ch: ClickHouse, scope: Scope, tp: TimeParams, f: ListFilters, limit: int,
                       now: datetime, snapshots: ChannelSnapshots | None = None) -> list[Any]:  # fmt: skip
    """The state's list (or the snapshot's, given one) page by page equal to the reference."""
    want = await _walk(reference_list, ch, scope, tp, f, limit, now)
    got = want if snapshots is not None else await _walk(list_channels, ch, scope, tp, f, limit, now)
    assert got == want, (scope, tp, f, limit)
    if snapshots is not None:
        assert snapshots.snapshot is not None

        async def from_snapshot(_: ClickHouse, scope: Scope, tp: TimeParams, f: ListFilters,
                                now: datetime) -> Any:  # fmt: skip
            assert snapshots.snapshot is not None
            ranged = tp.from_ is not None or tp.to is not None
            active = await active_ids(ch, *tp.bounds()) if ranged else None
            return snapshots.snapshot.page(scope, tp, f, now, active)

        assert await _walk(from_snapshot, ch, scope, tp, f, limit, now) == want, ("snapshot", scope, f, limit)
    return got


async def test_the_state_list_equals_the_raw_tables_list(clickhouse: ClickHouse) -> None:
    await store_events(clickhouse, dataset() + registry_events() + many_channels())
    now = datetime.now(UTC)
    later = now + timedelta(minutes=11)  # nothing stored in the last ten minutes: no channel live
    everything = await _assert_same(clickhouse, Scope(), TimeParams(), ListFilters(), 1000, now)
    (page, _), = everything
    assert len(page) == 34 and {"stats-only", "upcoming", "m02", "m03"} <= {c["channel_id"] for c in page}
    by_id = {c["channel_id"]: c for c in page}
    assert (by_id["m01"]["platform"], by_id["m01"]["district"]) == ("jd", "北仑区")  # the earliest order
    assert (by_id["m02"]["district"], by_id["m02"]["township"]) == ("宁海县", "长街镇")  # the tie rule
    assert by_id["m03"]["title"] == "乙" and by_id["m05"]["district"] == "象山县"  # registry
    assert by_id["stats-only"]["district"] is None and by_id["stats-only"]["paid_orders"] == 0
    for scope in SCOPES:
        for lo, hi in RANGES:
            await _assert_same(clickhouse, scope, _tp(lo, hi), ListFilters(), 7, now)
    for f in FILTERS:
        for scope in SCOPES[:3]:
            await _assert_same(clickhouse, scope, TimeParams(), f, 3, later if f.status == "ended" else now)
        await _assert_same(clickhouse, Scope(), _tp(*RANGES[2]), f, 1000, later)
    # ties of the sort key page by channel_id across page boundaries
    pages = await _assert_same(clickhouse, Scope(), TimeParams(), ListFilters(), 2, now)
    assert sum(len(p) for p, _ in pages) == 34


async def test_regions_from_the_state_equal_regions_from_the_raw_tables(clickhouse: ClickHouse) -> None:
    await store_events(clickhouse, dataset() + registry_events() + many_channels())
    now = datetime.now(UTC)
    answered = 0
    for scope in SCOPES:
        for level in ("township", "district"):
            for lo, hi in RANGES:
                tp = _tp(lo, hi)
                got = await regions(clickhouse, scope, level, tp, now)
                assert got == await reference_regions(clickhouse, scope, level, tp, now), (scope, level, lo, hi)
                answered += bool(got)
    assert answered >= 12  # the comparison is not of empty answers
    everything = await regions(clickhouse, Scope(), "district", TimeParams(), now + timedelta(minutes=11))
    assert sum(r["paid_orders"] for r in everything) == 13 + 35 and not any(r["live_channels"] for r in everything)


@pytest.mark.parametrize("upgrade", [True, False])
async def test_an_upgraded_store_gets_its_state_backfilled(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, upgrade: bool
) -> None:
    """Rows stored under migration 4 (no state) show in the list once 5 has run; rows
    stored after it are kept by the views, and nothing is counted twice."""
    first, second = dataset() + registry_events(), many_channels()
    if upgrade:
        monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS[:4])
    ch = ClickHouse(settings.clickhouse_dsn)
    await ch.open()
    try:
        await store_events(ch, first)
        assert await ch.query("EXISTS TABLE channel_state") == [{"result": 0 if upgrade else 1}]
    finally:
        await ch.close()
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS)
    ch = ClickHouse(settings.clickhouse_dsn)
    await ch.open()
    try:
        assert await ch.query("SELECT max(version) AS v FROM schema_migrations") == [{"v": MIGRATIONS[-1].version}]
        now = datetime.now(UTC)
        (page, _), = await _assert_same(ch, Scope(), TimeParams(), ListFilters(), 1000, now)
        assert len(page) == 9 and sum(c["paid_orders"] for c in page) == 13
        await _assert_same(ch, Scope(), _tp(*RANGES[5]), ListFilters(), 1000, now)
        await store_events(ch, second)
        (page, _), = await _assert_same(ch, Scope(), TimeParams(), ListFilters(), 1000, now)
        assert len(page) == 34
        await _assert_same(ch, Scope(district="宁海县"), _tp(*RANGES[2]), ListFilters(), 3, now)
    finally:
        await ch.close()


def moves() -> list[dict[str, Any]]:
    """After the first load: a registry move (m00 to another township, title and
    schedule), new orders on existing channels (they change places in the order), a new
    channel, and stream stats of a known one."""
    day = "2020-03-04T{}:00:00+08:00"
    return [
        channel("mv-0", "m00", "2020-03-05T00:00:00+08:00", "搬家了", platform="kuaishou", district="宁海县",
                township="桃源街道", start="2020-03-06T10:00:00+08:00"),
        order("mv-1", "mv-o1", "paid", day.format(10), "m07", [ONE], district="北仑区", township=None),
        order("mv-2", "mv-o2", "paid", day.format(10), "m13", [ONE]),
        order("mv-3", "mv-o3", "paid", day.format(11), "new-1", [ONE], district="象山县", township="石浦镇"),
        stats("mv-4", day.format(12), "m20", 3, 4),
    ]  # fmt: skip


async def _every_case(ch: ClickHouse, snapshots: ChannelSnapshots, now: datetime) -> None:
    """Every filter in every scope (short pages, so cursors cross ties), and a time zone."""
    later = now + timedelta(minutes=11)
    for f in FILTERS:
        for scope in SCOPES:
            limit = 4 if scope.is_all else 1000
            await _assert_same(ch, scope, TimeParams(), f, limit, later if f.status == "ended" else now, snapshots)
    await _assert_same(ch, Scope(), TimeParams(tz="-05:30"), ListFilters(), 1000, now, snapshots)
    for lo, hi in RANGES[1:]:  # from/to: the channels with events in it read then, the rest from the snapshot
        for scope in SCOPES:
            await _assert_same(ch, scope, _tp(lo, hi), ListFilters(), 3, now, snapshots)
        await _assert_same(ch, Scope(), _tp(lo, hi), ListFilters(status="ended", platform="douyin"), 1000, later,
                           snapshots)  # fmt: skip


async def test_the_snapshot_list_equals_the_raw_tables_list_after_new_stores(clickhouse: ClickHouse) -> None:
    await store_events(clickhouse, dataset() + registry_events() + many_channels())
    snapshots = ChannelSnapshots(clickhouse, 10_000)
    await snapshots.refresh()
    assert snapshots.snapshot is not None and len(snapshots.snapshot.rows) == 34
    for f in FILTERS[:5]:
        await _assert_same(clickhouse, Scope(), TimeParams(), f, 2, datetime.now(UTC), snapshots)
    seen = snapshots._seen
    await store_events(clickhouse, moves())
    await snapshots.refresh()  # incremental: only the channels in parts above `seen` are folded again
    assert snapshots._seen > seen and len(snapshots.snapshot.rows) == 35
    (page, _), = await _assert_same(clickhouse, Scope(district="宁海县", township="桃源街道"), TimeParams(),
                                    ListFilters(platform="kuaishou"), 1000, datetime.now(UTC), snapshots)  # fmt: skip
    assert "搬家了" in [c["title"] for c in page]
    await _every_case(clickhouse, snapshots, datetime.now(UTC))
    await clickhouse.run_in_thread(clickhouse.client.command, "OPTIMIZE TABLE channel_state FINAL")
    top = snapshots._seen
    await snapshots.refresh()  # a merge of seen blocks brings nothing new
    assert snapshots._seen == top
    await _assert_same(clickhouse, Scope(), TimeParams(), ListFilters(), 3, datetime.now(UTC), snapshots)


async def test_a_store_by_another_process_shows_in_both_apps_within_the_bound(
    api_settings: Settings, clickhouse: ClickHouse
) -> None:
    """Two API processes' snapshots over one store; rows stored by a third party (a
    consumer) show in both apps' pages once the bound has passed since they were stored,
    and each app then answers a page from a snapshot refreshed since, with the rows."""
    bound_ms = 400
    settings = tuned(api_settings, **{"api_max_age_ms": bound_ms})
    await store_events(clickhouse, dataset())
    apps = [create_app(api_config(settings), clickhouse, Metrics(), None, lambda: True) for _ in range(2)]
    async with TestClient(TestServer(apps[0])) as one, TestClient(TestServer(apps[1])) as two:

        async def ids(c: TestClient[Any, Any]) -> set[str]:
            resp = await c.get("/v1/channels?limit=1000", headers=auth("all"))
            assert resp.status == 200
            return {ch["channel_id"] for ch in (await resp.json())["channels"]}

        for c in (one, two):
            assert "new-1" not in await ids(c)
        for app in apps:  # both snapshots serve
            await wait_for(lambda app=app: _async(app[CHANNEL_SNAPSHOTS].fresh() is not None), 10, what="snapshot")
        await store_events(clickhouse, moves())
        stored = time.monotonic()
        await asyncio.sleep(bound_ms / 1000)  # the bound itself: any answer from now on has the rows
        for c in (one, two):
            assert "new-1" in await ids(c)
        for app, c in zip(apps, (one, two), strict=True):
            snaps = app[CHANNEL_SNAPSHOTS]

            async def from_a_later_snapshot(snaps: ChannelSnapshots = snaps, c: TestClient[Any, Any] = c) -> bool:
                """A page answered from a snapshot whose refresh began after the store: it must
                hold the rows (a page from the query path holds them too, but proves nothing)."""
                snap, before = snaps.snapshot, snaps.answered["snapshot"]
                assert "new-1" in await ids(c)
                return snap is not None and snap.as_of > stored and snaps.answered["snapshot"] == before + 1

            await wait_for(from_a_later_snapshot, 10, what="a page from a snapshot refreshed after the store")


async def test_a_ranged_page_comes_from_the_snapshot_and_equals_the_query(
    api_settings: Settings, clickhouse: ClickHouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store_events(clickhouse, dataset() + registry_events() + many_channels())
    settings = tuned(api_settings, **{"api_max_age_ms": 10_000})
    app = create_app(api_config(settings), clickhouse, Metrics(), None, lambda: True)
    async with TestClient(TestServer(app)) as client:
        snaps = app[CHANNEL_SNAPSHOTS]
        await wait_for(lambda: _async(snaps.fresh() is not None), 10, what="snapshot")
        answered = 0
        for lo, hi in RANGES[1:]:
            query = "&".join(f"{k}={v.replace('+', '%2B')}" for k, v in (("from", lo), ("to", hi)) if v)
            before = snaps.answered["snapshot"]
            resp = await client.get(f"/v1/channels?limit=1000&{query}", headers=auth("district"))
            assert resp.status == 200
            body = await resp.json()
            assert snaps.answered["snapshot"] == before + 1  # not the query path
            want, _ = await list_channels(clickhouse, Scope(district="宁海县"), _tp(lo, hi), ListFilters(limit=1000))
            assert body["channels"] == orjson.loads(orjson.dumps(want)), (lo, hi)
            answered += bool(want)
        assert answered >= 3  # the comparison is not of empty pages
        # more channels with events in the range than the cap: the query path answers, the same
        assert await active_ids(clickhouse, *_tp(*RANGES[1]).bounds(), cap=2) is None
        monkeypatch.setattr(channel_list, "ACTIVE_CAP", 2)
        queried = snaps.answered["query"]
        resp = await client.get("/v1/channels?limit=1000&from=2020-03-02T00:00:00Z&to=2020-03-03T00:00:00Z",
                                headers=auth("district"))  # fmt: skip
        want, _ = await list_channels(clickhouse, Scope(district="宁海县"), _tp("2020-03-02T00:00:00Z",
                                      "2020-03-03T00:00:00Z"), ListFilters(limit=1000))  # fmt: skip
        assert len(want) > 2 and (await resp.json())["channels"] == orjson.loads(orjson.dumps(want))
        assert snaps.answered["query"] == queried + 1


async def _async(value: Any) -> Any:
    return value


async def test_no_snapshot_older_than_the_bound_nor_with_a_zero_bound(clickhouse: ClickHouse) -> None:
    await store_events(clickhouse, dataset())
    bound_s = 0.25
    snapshots = ChannelSnapshots(clickhouse, int(bound_s * 1000))  # no refresh task: it only ages
    # A snapshot is as of a moment within its refresh: asked within the bound of the
    # refresh's start it must answer; past the bound of its end it must not. Under load a
    # refresh may take longer than the bound: that try shows nothing, so it tries again.
    young_checked = False
    for _ in range(20):
        began = time.monotonic()
        await snapshots.refresh()
        ended = time.monotonic()
        young = snapshots.fresh()
        if time.monotonic() - began <= bound_s:
            assert young is not None and young is snapshots.snapshot
            young_checked = True
            break
    while time.monotonic() - ended <= bound_s:  # the bound itself
        await asyncio.sleep(bound_s)
    queried = snapshots.answered["query"]
    assert snapshots.fresh() is None and snapshots.answered["query"] == queried + 1
    off = ChannelSnapshots(clickhouse, 0)
    await off.refresh()  # even loaded, a zero bound never answers
    assert off.snapshot is not None and not off.enabled and off.fresh() is None
    if not young_checked:
        pytest.skip(f"no refresh and ask within {bound_s} s in 20 tries: too loaded to check a young snapshot")
