"""The ``live_monitor`` pivot (contract v1.2 §6, 直播电商监测): distinct counts counted over
each cell's and each total's own span, never added up. Real chDB."""

from __future__ import annotations

from typing import Any

import pytest

from api.auth import Scope
from api.params import TimeParams
from api.queries.pivot import PivotRequest, run_pivot
from processors.store import ClickHouse
from tests.api.conftest import order, store_events

CLAM = ("clam", "长街蛏子", 1, 6800, 2500)
SHRIMP = ("shrimp", "白虾", 2, 3000, 500)
FISH = ("fish", "大黄鱼", 1, 9900, 1000)
D1, D2 = "2026-05-01T10:00:00+08:00", "2026-05-02T10:00:00+08:00"


def registry(eid: str, channel: str, host: str, township: str) -> dict[str, Any]:
    return {"schema": "channel.v1", "event_id": eid, "occurred_at": D1, "channel_id": channel,
            "platform": "douyin", "title": f"{township}专场", "host": host,
            "region": {"district": "宁海县", "township": township}}  # fmt: skip


@pytest.fixture
async def sales(clickhouse: ClickHouse) -> ClickHouse:
    await store_events(clickhouse, [
        registry("reg-a", "a", "小蛏", "长街镇"),
        registry("reg-b", "b", "小蛏", "桃源街道"),  # the same host on another channel
        order("a1", "oa1", "paid", D1, "a", [CLAM, SHRIMP]),
        order("a2", "oa2", "paid", D2, "a", [CLAM]),
        order("a2r", "oa2", "refunded", D2, "a", [CLAM]),  # not a sale
        order("b1", "ob1", "paid", D1, "b", [CLAM], township="桃源街道"),
        order("c1", "oc1", "paid", D2, "c", [FISH], platform="kuaishou", district="象山县", township="石浦镇"),
    ])  # fmt: skip
    return clickhouse


async def pivot(store: ClickHouse, measure: str, scope: Scope | None = None) -> dict[str, Any]:
    req = PivotRequest("live_monitor", ("district",), ("day",), measure)
    return await run_pivot(store, req, scope or Scope(), TimeParams())


async def test_sessions_products_and_hosts_are_counted_over_their_own_span(sales: ClickHouse) -> None:
    s = await pivot(sales, "live_sessions")
    assert s["row_keys"] == [["宁海县"], ["象山县"]] and s["col_keys"] == [["2026-05-01"], ["2026-05-02"]]
    assert s["cells"] == [[2, 1], [0, 1]]
    assert s["row_totals"] == [2, 1]  # 宁海县: a and b, not 2 + 1
    assert s["col_totals"] == [2, 2] and s["total"] == 3
    p = await pivot(sales, "live_products")
    assert p["cells"] == [[2, 1], [0, 1]] and p["row_totals"] == [2, 1] and p["col_totals"] == [2, 2]
    assert p["total"] == 3  # (douyin, clam), (douyin, shrimp), (kuaishou, fish)
    h = await pivot(sales, "active_hosts")
    assert h["cells"] == [[1, 1], [0, 0]] and h["row_totals"] == [1, 0] and h["total"] == 1  # c: no registry
    g = await pivot(sales, "live_gmv_fen")
    assert g["cells"] == [[6800 + 6000 + 6800, 6800], [0, 9900]] and g["total"] == 6800 + 6000 + 6800 + 6800 + 9900


async def test_a_township_sees_its_own_live_commerce_only(sales: ClickHouse) -> None:
    s = await pivot(sales, "live_sessions", Scope.parse("township:宁海县/长街镇"))
    assert s["row_keys"] == [["宁海县"]] and s["cells"] == [[1, 1]] and s["total"] == 1
