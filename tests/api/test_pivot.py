"""Pivots: shapes, numbers, totals of non-additive measures, scopes in cells, CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

from aiohttp.test_utils import TestClient

from api.queries.pivot import DATASETS
from tests.api.conftest import auth
from tests.api.test_channels import get

Client = TestClient[Any, Any]


async def test_orders_platform_by_district(client: Client) -> None:
    p = await get(client, "/v1/pivot?dataset=orders&rows=platform&cols=district&measure=gmv_fen")
    assert p["dataset"] == "orders" and p["measure"] == "gmv_fen"
    assert p["rows"] == ["platform"] and p["cols"] == ["district"]
    assert p["row_keys"] == [["douyin"], ["kuaishou"], ["pinduoduo"], ["taobao"]]
    assert p["col_keys"] == [["北仑区"], ["宁海县"], ["象山县"]]
    assert p["cells"] == [[0, 61100, 0], [0, 0, 1000], [5000, 3000, 0], [0, 7000, 0]]
    assert p["row_totals"] == [61100, 1000, 8000, 7000]
    assert p["col_totals"] == [5000, 71100, 1000]
    assert p["total"] == 77100


async def test_net_gmv_and_time_dims_in_offset(client: Client) -> None:
    p = await get(client, "/v1/pivot?dataset=orders&rows=day&measure=net_gmv_fen&to=2020-03-01T00:00:00%2B08:00")
    assert p["row_keys"] == [["2020-02-29"]] and p["cells"] == [[61100 + 1000 - 20400]]
    # 09:30 +08:00 is 01:30Z, so in -05:00 the late order falls on the 28th
    p = await get(client, "/v1/pivot?dataset=orders&rows=day&measure=paid_orders&tz=-05:00&to=2020-03-01T00:00:00Z")
    assert p["row_keys"] == [["2020-02-28"]] and p["total"] == 6
    p = await get(client, "/v1/pivot?dataset=orders&cols=week,month&measure=paid_orders")
    assert p["col_keys"] == [["2020-W09", "2020-02"], ["2020-W16", "2020-04"], ["2020-W17", "2020-04"], ["2020-W18", "2020-05"]]
    assert p["row_keys"] == [[]] and p["cells"] == [[6, 1, 1, 1]] and p["total"] == 9


async def test_bounds_in_a_half_hour_offset(client: Client) -> None:
    """07:00+05:30 is 01:30Z: bounds that are whole hours only in the caller's offset must
    not take the hourly projection path, which would drop 01:30-02:00Z."""
    p = await get(client, "/v1/pivot?dataset=orders&measure=paid_orders&tz=%2B05:30"
                          "&from=2020-02-29T07:00:00%2B05:30&to=2020-02-29T08:00:00%2B05:30")
    assert p["total"] == 6  # o4 at 01:30:00Z (from is inclusive), o1, o2, o3, o5, o6


async def test_onboarding_dedupes_steps_and_nets_withdrawals(client: Client) -> None:
    p = await get(client, "/v1/pivot?dataset=onboarding&rows=district&cols=platform&measure=firms_net")
    assert p["row_keys"] == [["北仑区"], ["宁海县"]] and p["col_keys"] == [["pinduoduo"], ["taobao"]]
    assert p["cells"] == [[1, 0], [0, 1]] and p["total"] == 2
    p = await get(client, "/v1/pivot?dataset=onboarding&rows=export_oriented&measure=firms_onboarded")
    assert p["row_keys"] == [[False], [True]] and p["cells"] == [[1], [2]]


async def test_domestic_sales_uses_the_firms_district(client: Client) -> None:
    p = await get(client, "/v1/pivot?dataset=domestic_sales&rows=district&cols=platform&measure=gmv_fen")
    assert p["row_keys"] == [["北仑区"], ["宁海县"]] and p["col_keys"] == [["pinduoduo"]]
    assert p["cells"] == [[5000], [3000]] and p["total"] == 8000  # taobao's f2 is not export-oriented
    p = await get(client, "/v1/pivot?dataset=domestic_sales&cols=platform&measure=firms_with_sales")
    assert p["total"] == 2 and p["col_totals"] == [2]


async def test_scoped_pivots_hold_only_the_scope(client: Client) -> None:
    p = await get(client, "/v1/pivot?dataset=orders&rows=township&cols=channel_id&measure=paid_orders", role="township")
    assert p["row_keys"] == [["长街镇"]] and p["col_keys"] == [["nh-live"]] and p["total"] == 4
    p = await get(client, "/v1/pivot?dataset=onboarding&rows=district&measure=firms_onboarded", role="township")
    assert p["row_keys"] == [["宁海县"]] and p["total"] == 2  # township tokens see their district's onboarding
    p = await get(client, "/v1/pivot?dataset=domestic_sales&rows=district", role="district")
    assert p["row_keys"] == [["宁海县"]] and p["total"] == 3000


async def test_csv_has_bom_header_and_chinese(client: Client) -> None:
    resp = await client.get("/v1/pivot?dataset=orders&rows=platform&cols=district&format=csv", headers=auth("reader"))
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    raw = await resp.read()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == ["platform", "北仑区", "宁海县", "象山县", "total"]
    assert rows[1] == ["douyin", "0", "61100", "0", "61100"]
    assert rows[-1] == ["total", "5000", "71100", "1000", "77100"]


async def test_every_dimension_and_measure_answers(client: Client) -> None:
    for name, ds in DATASETS.items():
        for dim in ds.dims:
            for measure in ds.measures:
                await get(client, f"/v1/pivot?dataset={name}&rows={dim}&measure={measure}")


async def test_bad_pivot_parameters(client: Client) -> None:
    cases = {
        "/v1/pivot": "orders, onboarding, domestic_sales",
        "/v1/pivot?dataset=sales": "orders, onboarding, domestic_sales",
        "/v1/pivot?dataset=orders&rows=colour": "platform, channel_id",
        "/v1/pivot?dataset=onboarding&rows=channel_id": "export_oriented",
        "/v1/pivot?dataset=orders&rows=platform,district,day": "at most 2",
        "/v1/pivot?dataset=orders&rows=platform&cols=platform": "only once",
        "/v1/pivot?dataset=orders&measure=firms_net": "paid_orders, gmv_fen",
        "/v1/pivot?dataset=orders&format=pdf": "json, csv, xlsx",
        "/v1/pivot?dataset=orders&tz=8": "+08:00",
    }
    for path, allowed in cases.items():
        body = await get(client, path, status=400)
        assert allowed in body["error"]["message"], (path, body)
