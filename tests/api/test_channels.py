"""Channel routes against a hand-computed dataset (tests/api/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.auth import Scope
from api.params import TimeParams
from api.queries import channel_list as cl
from api.queries import channels as q
from ground.metrics import Metrics
from ground.settings import Settings
from livesales.wiring import api_config
from processors.store import ClickHouse
from tests.api.conftest import auth, dataset, order, stats, store_events

Client = TestClient[Any, Any]


async def get(client: Client, path: str, role: str = "reader", status: int = 200) -> Any:
    resp = await client.get(path, headers=auth(role))
    body = await resp.json()
    assert resp.status == status, body
    return body


async def test_channel_list(client: Client) -> None:
    body = await get(client, "/v1/channels")
    by_id = {c["channel_id"]: c for c in body["channels"]}
    assert set(by_id) == {"nh-live", "xs-live", "nh-other", "store-f1", "store-f2", "store-f3"}
    a = by_id["nh-live"]
    assert a == {
        "channel_id": "nh-live", "platform": "douyin", "district": "宁海县", "township": "长街镇",
        "paid_orders": 4, "gmv_fen": 59600,
        "first_event_at": "2020-02-29T09:30:00+08:00", "last_event_at": "2020-02-29T11:00:00+08:00",
        "title": None, "host": None, "status": "live", "scheduled_start": None, "scheduled_end": None,
    }  # fmt: skip
    assert by_id["store-f1"]["township"] is None
    assert body["next_cursor"] is None


async def test_minutes_count_each_step_once_in_its_own_minute(client: Client) -> None:
    body = await get(client, "/v1/channels/nh-live/minutes")
    assert body["channel_id"] == "nh-live" and body["tz"] == "+08:00"
    zero = {"paid_orders": 0, "gmv_fen": 0, "units": 0, "weight_g": 0, "created_orders": 0,
            "refunded_orders": 0, "refund_fen": 0, "views_total": None, "viewers_peak": None}  # fmt: skip
    expected = [
        {**zero, "minute": "2020-02-29T09:30:00+08:00", "paid_orders": 1, "gmv_fen": 6800, "units": 1, "weight_g": 2500},
        {**zero, "minute": "2020-02-29T10:00:00+08:00", "created_orders": 1},
        {**zero, "minute": "2020-02-29T10:01:00+08:00", "paid_orders": 2, "gmv_fen": 32400, "units": 3,
         "weight_g": 12500, "views_total": 180, "viewers_peak": 70},
        {**zero, "minute": "2020-02-29T10:05:00+08:00", "paid_orders": 1, "gmv_fen": 20400, "units": 3, "weight_g": 7500},
        {**zero, "minute": "2020-02-29T10:07:00+08:00", "views_total": 300, "viewers_peak": 40},
        {**zero, "minute": "2020-02-29T11:00:00+08:00", "refunded_orders": 1, "refund_fen": 20400},
    ]  # fmt: skip
    assert body["minutes"] == expected


async def test_minutes_in_another_offset_and_range(client: Client) -> None:
    body = await get(client, "/v1/channels/nh-live/minutes?tz=%2B00:00&from=2020-02-29T02:00:00Z&to=2020-02-29T02:06:00Z")
    assert [m["minute"] for m in body["minutes"]] == [
        "2020-02-29T02:00:00+00:00", "2020-02-29T02:01:00+00:00", "2020-02-29T02:05:00+00:00",
    ]  # fmt: skip
    # an unencoded '+' arrives as a space and is still understood
    body = await get(client, "/v1/channels/nh-live/minutes?tz=+05:30&to=2020-02-29T01:00:00Z")
    assert body["minutes"] == [] and body["tz"] == "+05:30"


async def test_summary(client: Client) -> None:
    body = await get(client, "/v1/channels/nh-live/summary")
    assert body == {
        "channel_id": "nh-live", "platform": "douyin", "district": "宁海县", "township": "长街镇",
        "paid_orders": 4, "gmv_fen": 59600, "units": 7, "weight_g": 22500, "created_orders": 1,
        "refunded_orders": 1, "refund_fen": 20400, "net_gmv_fen": 39200, "views_total": 300, "viewers_peak": 70,
        "first_paid_at": "2020-02-29T09:30:00+08:00", "last_paid_at": "2020-02-29T10:05:00+08:00",
        "avg_order_fen": 14900, "seconds_per_order": 700.0,
        "title": None, "host": None, "status": "live", "scheduled_end": None,
        "projected_paid_orders": None, "projected_gmv_fen": None,
        "top_skus": [
            {"sku": "clam-2.5kg", "name": "长街蛏子 2.5kg 装", "units": 5, "gmv_fen": 34000},
            {"sku": "clam-5kg", "name": "长街蛏子 5kg 装", "units": 2, "gmv_fen": 25600},
        ],
        # 59600 × 1000 / 300 = 198666.67; (50 + 70 + 40) / 3 = 53.33; 1 refunded / 4 paid
        "gpm_fen": 198667, "viewers_avg": 53, "refund_rate": 0.25,
    }  # fmt: skip


async def test_summary_undefined_ratios_are_null(client: Client) -> None:
    body = await get(client, "/v1/channels/xs-live/summary")
    assert body["paid_orders"] == 1 and body["seconds_per_order"] is None
    assert body["views_total"] is None and body["viewers_peak"] is None
    assert body["weight_g"] == 0  # weight_g omitted -> 0


async def test_township_scope_sees_only_its_channels(client: Client) -> None:
    body = await get(client, "/v1/channels", role="township")
    assert [c["channel_id"] for c in body["channels"]] == ["nh-live"]
    for cid in ("xs-live", "nh-other", "store-f2"):
        for what in ("minutes", "summary", "live"):
            missing = await get(client, f"/v1/channels/{cid}/{what}", role="township", status=404)
            unknown = await get(client, f"/v1/channels/no-such-{cid}/{what}", role="township", status=404)
            assert missing["error"]["code"] == unknown["error"]["code"] == "not_found"
    assert (await get(client, "/v1/channels/nh-live/summary", role="township"))["gmv_fen"] == 59600


async def test_unscoped_token_existence(client: Client) -> None:
    # with the "all" scope the minutes route skips its existence query when rows came back
    for what in ("minutes", "summary"):
        missing = await get(client, f"/v1/channels/no-such-channel/{what}", status=404)
        assert missing["error"]["code"] == "not_found"
    window = "from=2021-01-01T00:00:00Z&to=2021-01-02T00:00:00Z"  # exists, nothing in the window
    assert (await get(client, f"/v1/channels/xs-live/minutes?{window}"))["minutes"] == []


async def test_district_scope(client: Client) -> None:
    body = await get(client, "/v1/channels", role="district")
    assert sorted(c["channel_id"] for c in body["channels"]) == ["nh-live", "nh-other", "store-f2", "store-f3"]
    await get(client, "/v1/channels/xs-live/summary", role="district", status=404)


async def test_auth_errors(client: Client) -> None:
    resp = await client.get("/v1/channels")
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "unauthorized"
    resp = await client.get("/v1/channels", headers={"Authorization": "Bearer nope-nope-nope"})
    assert resp.status == 401
    resp = await client.get("/v1/channels", headers={"Authorization": "Basic abc"})
    assert resp.status == 401


async def test_bad_parameters_name_the_allowed_values(client: Client) -> None:
    body = await get(client, "/v1/channels/nh-live/minutes?tz=Asia/Shanghai", status=400)
    assert "+08:00" in body["error"]["message"]
    body = await get(client, "/v1/channels/nh-live/minutes?from=2020-02-29T10:00:00", status=400)
    assert "from" in body["error"]["message"]
    body = await get(client, "/v1/channels/nh-live/minutes?from=2020-03-01T00:00:00Z&to=2020-02-01T00:00:00Z", status=400)
    assert body["error"]["code"] == "bad_request"


async def test_health_and_unknown_routes(client: Client) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    metrics = await client.get("/metrics")
    assert metrics.status == 200 and "livesales_api_request_seconds" in await metrics.text()
    resp = await client.get("/v1/nothing-here", headers=auth("reader"))
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"


# --- v1.1: the registry, status, filters, pages and the projection -------------------

def channel(eid: str, cid: str, at: str, title: str, host: str | None = None, platform: str = "douyin",
            district: str = "宁海县", township: str | None = "长街镇", start: str | None = None,
            end: str | None = None) -> dict[str, Any]:  # fmt: skip
    ev: dict[str, Any] = {
        "schema": "channel.v1", "event_id": eid, "occurred_at": at, "channel_id": cid, "platform": platform,
        "title": title, "region": {"district": district} | ({"township": township} if township else {}),
    }  # fmt: skip
    for name, value in (("host", host), ("scheduled_start", start), ("scheduled_end", end)):
        if value is not None:
            ev[name] = value
    return ev


ONE = ("clam-1kg", "长街蛏子 1kg 尝鲜装", 1, 1000, 1000)


def registry_events() -> list[dict[str, Any]]:
    return [
        # nh-live: registered, an older version first (the latest by occurred_at wins)
        channel("r-nh-0", "nh-live", "2020-02-27T10:00:00+08:00", "旧标题", "旧账号"),
        channel("r-nh-1", "nh-live", "2020-02-28T18:00:00+08:00", "宁海长街蛏子网络节", "直播宁海",
                start="2020-02-29T09:00:00+08:00", end="2020-02-29T15:00:00+08:00"),
        # registry-only: one still ahead, one long past
        channel("r-up", "upcoming", "2026-01-01T00:00:00+08:00", "明年的蛏子节", platform="kuaishou",
                start="2099-03-01T09:00:00+08:00", end="2099-03-01T12:00:00+08:00"),
        channel("r-old", "past-sale", "2019-01-01T00:00:00+08:00", "去年的直播", township="桃源街道",
                start="2019-03-01T09:00:00+08:00"),
        # proj: a scheduled sale with a steady pace, for the projection
        channel("r-proj", "proj", "2020-03-01T08:00:00+08:00", "望海茶直播",
                start="2020-03-01T10:00:00+08:00", end="2020-03-01T12:00:00+08:00"),
        *[order(f"p-{i}", f"po{i}", "paid", at, "proj", [ONE])
          for i, at in enumerate(["2020-03-01T10:00:00+08:00", "2020-03-01T10:30:00+08:00",
                                  "2020-03-01T10:40:00+08:00", "2020-03-01T10:50:00+08:00"])],
        stats("p-s", "2020-03-01T11:00:00+08:00", "proj", 10, 20),  # the channel's clock: 11:00
    ]  # fmt: skip


@pytest.fixture
async def reg_client(api_settings: Settings, clickhouse: ClickHouse) -> AsyncIterator[Client]:
    await store_events(clickhouse, dataset() + registry_events())
    app = create_app(api_config(api_settings), clickhouse, Metrics(), None, lambda: True)
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_registry_fields_and_status_in_the_list(reg_client: Client) -> None:
    body = await get(reg_client, "/v1/channels")
    by_id = {c["channel_id"]: c for c in body["channels"]}
    nh = by_id["nh-live"]
    assert (nh["title"], nh["host"], nh["status"]) == ("宁海长街蛏子网络节", "直播宁海", "live")
    assert (nh["scheduled_start"], nh["scheduled_end"]) == ("2020-02-29T09:00:00+08:00", "2020-02-29T15:00:00+08:00")
    up = by_id["upcoming"]  # registry only: listed, with its registry place and no sales
    assert up == {
        "channel_id": "upcoming", "platform": "kuaishou", "district": "宁海县", "township": "长街镇",
        "paid_orders": 0, "gmv_fen": 0, "first_event_at": None, "last_event_at": None,
        "title": "明年的蛏子节", "host": None, "status": "scheduled",
        "scheduled_start": "2099-03-01T09:00:00+08:00", "scheduled_end": "2099-03-01T12:00:00+08:00",
    }  # fmt: skip
    assert by_id["past-sale"]["status"] == "ended" and by_id["past-sale"]["township"] == "桃源街道"
    assert by_id["xs-live"]["title"] is None and by_id["xs-live"]["status"] == "live"  # fresh rows: live
    # the most recently active first, registry-only channels last, ties by channel_id
    ids = [c["channel_id"] for c in body["channels"]]
    assert ids[-2:] == ["past-sale", "upcoming"] and ids[0] == "store-f3"


async def test_status_follows_processing_time(clickhouse: ClickHouse) -> None:
    await store_events(clickhouse, dataset() + registry_events())
    tp = TimeParams()
    later = datetime.now(UTC) + timedelta(minutes=11)  # nothing stored in the last 10 minutes
    page, _ = await cl.list_channels(clickhouse, Scope(), tp, now=later)
    status = {c["channel_id"]: c["status"] for c in page}
    assert status["nh-live"] == "ended" and status["upcoming"] == "scheduled" and status["xs-live"] == "ended"
    page, _ = await cl.list_channels(clickhouse, Scope(), tp, cl.ListFilters(status="live"))
    assert "nh-live" in {c["channel_id"] for c in page} and "upcoming" not in {c["channel_id"] for c in page}


async def test_list_filters(reg_client: Client) -> None:
    async def ids(query: str, role: str = "reader") -> list[str]:
        return sorted(c["channel_id"] for c in (await get(reg_client, f"/v1/channels?{query}", role))["channels"])

    assert await ids("platform=kuaishou") == ["upcoming", "xs-live"]
    assert await ids("district=象山县") == ["xs-live"]
    assert await ids("township=桃源街道") == ["nh-other", "past-sale"]
    assert await ids("status=scheduled") == ["upcoming"]
    assert await ids("status=ended") == ["past-sale"]
    # events in [from, to): orders or stream stats, or a schedule overlapping the range
    assert await ids("from=2020-03-01T00:00:00%2B08:00&to=2020-03-02T00:00:00%2B08:00") == ["proj"]
    assert await ids("from=2099-03-01T00:00:00Z") == ["upcoming"]
    # xs-live sold at 10:02; nh-live's schedule (09:00-15:00) overlaps; nh-other's 10:03 is out
    assert await ids("from=2020-02-29T10:02:00%2B08:00&to=2020-02-29T10:03:00%2B08:00") == ["nh-live", "xs-live"]
    assert await ids("status=live&township=长街镇", role="township") == ["nh-live", "proj"]
    for bad in ("status=over", "limit=0", "limit=1001", "limit=ten", "limit=-1", "cursor=nope", "cursor=WzEsMl0",
                "from=1717200000"):
        body = await get(reg_client, f"/v1/channels?{bad}", status=400)
        assert body["error"]["code"] == "bad_request"


async def test_cursor_pages_cover_the_list_once(reg_client: Client) -> None:
    everything = [c["channel_id"] for c in (await get(reg_client, "/v1/channels?limit=1000"))["channels"]]
    assert len(everything) == 9
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = await get(reg_client, "/v1/channels?limit=3" + (f"&cursor={cursor}" if cursor else ""))
        assert len(page["channels"]) <= 3
        seen += [c["channel_id"] for c in page["channels"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything
    exact = await get(reg_client, "/v1/channels?limit=9")
    assert exact["next_cursor"] is None  # no empty last page
    # a cursor is opaque but checked: a well-formed key that was never given out still pages
    page = await get(reg_client, f"/v1/channels?cursor={cl.encode_cursor((-1, 'past-sale'))}")
    assert [c["channel_id"] for c in page["channels"]] == ["upcoming"]


async def test_summary_registry_fields_and_projection(reg_client: Client) -> None:
    body = await get(reg_client, "/v1/channels/proj/summary")
    assert (body["title"], body["host"], body["status"]) == ("望海茶直播", None, "live")
    assert body["scheduled_end"] == "2020-03-01T12:00:00+08:00"
    # clock 11:00 (the stream stats); window (10:30, 11:00]: 10:40 and 10:50 (10:30 is out),
    # 2 orders and 2,000 fen in 30 minutes; 60 minutes left -> 4 + 4 orders, 4,000 + 4,000 fen
    assert body["paid_orders"] == 4 and body["projected_paid_orders"] == 8
    assert body["gmv_fen"] == 4000 and body["projected_gmv_fen"] == 8000
    nh = await get(reg_client, "/v1/channels/nh-live/summary")
    # the clock (11:00, the refund) is past nothing: 15:00 is ahead, but the last 30 minutes
    # (10:30-11:00] hold no paid order -> the pace is 0 and the totals stay
    assert (nh["projected_paid_orders"], nh["projected_gmv_fen"]) == (4, 59600)
    assert nh["title"] == "宁海长街蛏子网络节" and nh["host"] == "直播宁海"
    up = await get(reg_client, "/v1/channels/upcoming/summary")  # registry only: no events, no clock
    assert up["status"] == "scheduled" and up["paid_orders"] == 0 and up["projected_paid_orders"] is None
    xs = await get(reg_client, "/v1/channels/xs-live/summary")  # no schedule
    assert xs["projected_paid_orders"] is None and xs["title"] is None


def test_projection_rules() -> None:
    at = datetime(2020, 3, 1, 3, tzinfo=UTC)
    end = at + timedelta(hours=1)
    assert q.project(10, 3, at, at - timedelta(hours=2), end) == 10 + 6  # 3 per 30 minutes
    assert q.project(10, 3, at, at - timedelta(minutes=10), end) == 10 + 18  # young: 3 per 10 minutes
    assert q.project(10, 3, at, at - timedelta(seconds=5), end) == 10 + 180  # at least one minute
    assert q.project(10, 3, end, at, end) is None  # the clock has reached the end
    assert q.project(10, 3, at, at, None) is None  # no schedule
    assert q.project(10, 3, None, None, end) is None  # no events


@pytest.mark.parametrize("scope", [Scope(), Scope(district="宁海县", township="长街镇")])
async def test_summaries_of_many_are_each_ones_summary(clickhouse: ClickHouse, scope: Scope) -> None:
    await store_events(clickhouse, dataset() + registry_events())
    ids = ["nh-live", "proj", "upcoming", "xs-live", "no-such", "past-sale"]
    tp = TimeParams()
    many = await q.summaries(clickhouse, ids, scope, tp)
    one = {c: await q.summary(clickhouse, c, scope, tp) for c in ids}
    assert many == {c: s for c, s in one.items() if s is not None}
    assert ("xs-live" in many) == scope.is_all and "no-such" not in many and "proj" in many
