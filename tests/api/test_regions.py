"""GET /v1/regions against the hand-computed dataset plus registry entries and many channels."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.openapi import build_spec
from ground.metrics import Metrics
from ground.settings import Settings
from livesales.wiring import api_config
from processors.store import ClickHouse
from tests.api.conftest import auth, dataset, order, store_events
from tests.api.test_channels import channel

Client = TestClient[Any, Any]


def events() -> list[dict[str, Any]]:
    out = dataset()
    out.append(channel("r-nh", "nh-live", "2020-02-28T18:00:00+08:00", "宁海长街蛏子网络节", "直播宁海"))
    # twelve small channels in 长街镇 on 2020-03-01, GMV 100..1200 fen: only ten make the top
    for n in range(1, 13):
        out.append(order(f"s-{n}", f"so{n}", "paid", "2020-03-01T10:00:00+08:00", f"small-{n:02d}",
                         [("egg", "鸭蛋", 1, 100 * n, 50)]))  # fmt: skip
    out.append(order("s-r", "so12", "refunded", "2020-03-01T11:00:00+08:00", "small-12", [("egg", "鸭蛋", 1, 1200, 50)]))
    # registry only, 桃源街道, scheduled on 2020-03-01
    out.append(channel("r-up", "tao-up", "2020-02-01T00:00:00+08:00", "桃源杨梅预告", township="桃源街道",
                       start="2020-03-01T19:00:00+08:00", end="2020-03-01T21:00:00+08:00"))  # fmt: skip
    return out


@pytest.fixture
async def client(api_settings: Settings, clickhouse: ClickHouse) -> AsyncIterator[Client]:
    await store_events(clickhouse, events())
    app = create_app(api_config(api_settings), clickhouse, Metrics(), None, lambda: True)
    async with TestClient(TestServer(app)) as c:
        yield c


async def get(client: Client, path: str, role: str = "reader", status: int = 200) -> Any:
    resp = await client.get(path, headers=auth(role))
    body = await resp.json()
    assert resp.status == status, body
    spec = build_spec()["paths"]["/v1/regions"]["get"]["responses"][str(status)]
    jsonschema.validate(body, spec["content"]["application/json"]["schema"])
    return body


def key(r: dict[str, Any]) -> tuple[str, str | None]:
    return r["district"], r["township"]


async def test_a_township_token_sees_only_its_township(client: Client) -> None:
    body = await get(client, "/v1/regions?level=township", role="township")
    assert body["level"] == "township" and [key(r) for r in body["regions"]] == [("宁海县", "长街镇")]
    r = body["regions"][0]
    small = sum(100 * n for n in range(1, 13))
    assert r["channels"] == 13 and r["live_channels"] == 13  # every row was stored just now
    assert (r["paid_orders"], r["gmv_fen"]) == (4 + 12, 59600 + small)
    assert r["weight_g"] == 22500 + 12 * 50 and r["refund_fen"] == 20400 + 1200
    top = r["top_channels"]
    assert len(top) == 10
    assert top[0] == {"channel_id": "nh-live", "title": "宁海长街蛏子网络节", "paid_orders": 4, "gmv_fen": 59600}
    assert [t["channel_id"] for t in top[1:]] == [f"small-{n:02d}" for n in range(12, 3, -1)]
    assert top[1]["title"] is None


async def test_a_district_token_sees_its_townships(client: Client) -> None:
    body = await get(client, "/v1/regions", role="district")  # level defaults to township
    assert {key(r) for r in body["regions"]} == {("宁海县", "长街镇"), ("宁海县", "桃源街道"), ("宁海县", None)}
    by = {key(r): r for r in body["regions"]}
    assert by[("宁海县", None)]["channels"] == 2  # store-f2, store-f3: no township
    tao = by[("宁海县", "桃源街道")]
    assert tao["channels"] == 2 and tao["live_channels"] == 1 and tao["gmv_fen"] == 1500  # nh-other + tao-up
    assert body["regions"][0]["township"] == "长街镇"  # ranked by GMV
    district = await get(client, "/v1/regions?level=district", role="district")
    assert [key(r) for r in district["regions"]] == [("宁海县", None)]
    assert district["regions"][0]["channels"] == 17 and len(district["regions"][0]["top_channels"]) == 10


async def test_a_range_counts_its_sales_and_its_channels(client: Client) -> None:
    day = "from=2020-03-01T00:00:00%2B08:00&to=2020-03-02T00:00:00%2B08:00"
    body = await get(client, f"/v1/regions?{day}", role="district")
    by = {key(r): r for r in body["regions"]}
    assert set(by) == {("宁海县", "长街镇"), ("宁海县", "桃源街道")}  # the store channels sold in April
    assert by[("宁海县", "长街镇")]["channels"] == 12 and by[("宁海县", "长街镇")]["refund_fen"] == 1200
    assert by[("宁海县", "桃源街道")]["channels"] == 1 and by[("宁海县", "桃源街道")]["gmv_fen"] == 0  # tao-up
    # a range not on minute bounds reads the rows and gives the same sums
    odd = "from=2020-03-01T09:59:59.5%2B08:00&to=2020-03-01T10:00:00.5%2B08:00"
    body = await get(client, f"/v1/regions?{odd}&level=district", role="all")
    assert [(key(r), r["paid_orders"]) for r in body["regions"]] == [(("宁海县", None), 12)]


async def test_all_sees_every_region_and_bad_parameters_are_400(client: Client) -> None:
    body = await get(client, "/v1/regions?level=district&tz=%2B00:00")
    assert [key(r) for r in body["regions"]] == [("宁海县", None), ("北仑区", None), ("象山县", None)]
    for bad in ("level=city", "from=1717200000", "tz=Asia/Shanghai", "from=2020-03-02T00:00:00Z&to=2020-03-01T00:00:00Z"):
        assert (await get(client, f"/v1/regions?{bad}", status=400))["error"]["code"] == "bad_request"
    resp = await client.get("/v1/regions")
    assert resp.status == 401
