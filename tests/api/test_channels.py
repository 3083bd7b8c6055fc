"""Channel routes against a hand-computed dataset (tests/api/conftest.py)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.api.conftest import auth

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
