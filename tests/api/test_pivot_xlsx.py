"""Excel exports: every cell of the workbook against the JSON answer of the same query;
firm names for the firm_id dimension; the display-name table served as JSON."""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import unquote

import openpyxl
from aiohttp.test_utils import TestClient

from api import labels
from tests.api.conftest import auth
from tests.api.test_channels import get

Client = TestClient[Any, Any]
SCALE = {"gmv_fen": 100, "refund_fen": 100, "net_gmv_fen": 100, "weight_g": 1000}
PLATFORMS = {"douyin": "抖音", "kuaishou": "快手", "taobao": "淘宝", "pinduoduo": "拼多多"}
DIMS = {"platform": "平台", "district": "区县", "firm_id": "企业", "export_oriented": "是否外贸", "day": "日",
        "month": "月", "channel_id": "渠道/直播间"}  # fmt: skip


def shown(dim: str, value: Any, p: dict[str, Any]) -> str:
    if isinstance(value, bool):
        return "是" if value else "否"
    if dim == "platform":
        return PLATFORMS[value]
    return str(p.get("labels", {}).get(dim, {}).get(value, value))


async def workbook(client: Client, query: str) -> tuple[dict[str, Any], Any, Any]:
    p = await get(client, f"/v1/pivot?{query}")
    resp = await client.get(f"/v1/pivot?{query}&format=xlsx", headers=auth("reader"))
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    wb = openpyxl.load_workbook(io.BytesIO(await resp.read()))
    return p, wb.worksheets[0], resp.headers["Content-Disposition"]


def assert_matches(p: dict[str, Any], ws: Any) -> None:
    """Row 3 is the header, then one row per row key, then 合计; values scaled to yuan/kg."""
    rows, cols = p["rows"], p["cols"]
    scale = SCALE.get(p["measure"], 1)
    n = max(1, len(rows))
    grid = [[c.value for c in line] for line in ws.iter_rows(min_row=3)]
    head = grid[0]
    assert head[:n] == ([DIMS[d] for d in rows] or [None])
    if cols:
        assert head[n:] == ["/".join(shown(d, v, p) for d, v in zip(cols, ck, strict=True)) for ck in p["col_keys"]] + ["合计"]
    else:
        assert head[n:] == [labels.MEASURES[p["measure"]]]
    body = grid[1:]
    expect_rows = len(p["row_keys"]) + 1 if rows else 1
    assert len(body) == expect_rows and ws.max_column == len(head)
    for i, rk in enumerate(p["row_keys"] if rows else []):
        line = body[i]
        assert line[:n] == [shown(d, v, p) for d, v in zip(rows, rk, strict=True)]
        values = line[n:]
        want = [*p["cells"][i], *([p["row_totals"][i]] if cols else [])]
        assert [round(v * scale) for v in values] == want, (i, values, want)
    last = body[-1]
    assert last[0] == "合计"
    want = [*p["col_totals"], *([p["total"]] if cols else [])]
    assert [round(v * scale) for v in last[n:]] == want


async def test_orders_gmv_in_yuan_with_platform_names_totals_and_a_frozen_header(client: Client) -> None:
    p, ws, disposition = await workbook(client, "dataset=orders&rows=platform&cols=district&measure=gmv_fen"
                                                "&from=2020-02-01T00:00:00%2B08:00")
    assert_matches(p, ws)
    assert ws.title == "订单-成交额（元）"
    assert ws["A1"].value == "订单 · 成交额（元） · 2020-02-01 00:00 至 最新 · 时区 UTC+08:00"
    assert ws["A4"].value == "抖音" and ws["C4"].value == 611.0 and ws["C4"].number_format == "#,##0.00"
    assert ws.freeze_panes == "B4"
    assert "filename=" in disposition and unquote(disposition.split("UTF-8''")[1]) == "订单-成交额（元）.xlsx"


async def test_every_shape_matches_the_json_answer(client: Client) -> None:
    for query in (
        "dataset=orders&rows=day,platform&cols=month&measure=weight_g",
        "dataset=orders&cols=platform&measure=paid_orders",
        "dataset=orders&rows=channel_id&measure=net_gmv_fen",
        "dataset=orders&measure=refund_fen",
        "dataset=onboarding&rows=export_oriented&cols=platform&measure=firms_net",
        "dataset=domestic_sales&rows=firm_id&cols=platform&measure=gmv_fen",
        "dataset=domestic_sales&cols=firm_id,month&measure=firms_with_sales",
    ):
        p, ws, _ = await workbook(client, query)
        assert_matches(p, ws)


async def test_firm_id_dimension_carries_the_firms_names(client: Client) -> None:
    p = await get(client, "/v1/pivot?dataset=domestic_sales&rows=firm_id&measure=gmv_fen")
    assert p["row_keys"] == [["f1"], ["f3"]] and p["cells"] == [[5000], [3000]]
    assert p["labels"] == {"firm_id": {"f1": "宁波f1有限公司", "f3": "宁波f3有限公司"}}
    scoped = await get(client, "/v1/pivot?dataset=domestic_sales&cols=firm_id&measure=paid_orders", role="district")
    assert scoped["col_keys"] == [["f3"]] and scoped["labels"] == {"firm_id": {"f3": "宁波f3有限公司"}}
    resp = await client.get("/v1/pivot?dataset=domestic_sales&rows=firm_id&format=csv", headers=auth("reader"))
    text = (await resp.read()).decode("utf-8-sig")
    assert "宁波f1有限公司,5000" in text
    assert "labels" not in await get(client, "/v1/pivot?dataset=domestic_sales&rows=platform")


async def test_labels_are_served_from_the_one_table(client: Client) -> None:
    assert (await client.get("/v1/labels")).status == 401
    served = await get(client, "/v1/labels", role="township")
    assert served == labels.as_json()
    assert served["platforms"]["douyin"] == "抖音" and served["platforms"]["wechat"] == "微信视频号"
    assert labels.platform_name("newplatform") == "newplatform"


async def test_bureau_trends_onboarding_by_week_and_month_per_platform(client: Client) -> None:
    p = await get(client, "/v1/pivot?dataset=onboarding&rows=week&cols=platform&measure=firms_onboarded")
    assert p["row_keys"] == [["2020-W16"], ["2020-W17"], ["2020-W18"], ["2020-W21"]]  # W21: f3 withdrew
    assert p["col_keys"] == [["pinduoduo"], ["taobao"]] and p["cells"] == [[1, 0], [0, 1], [1, 0], [0, 0]]
    p = await get(client, "/v1/pivot?dataset=onboarding&rows=month&cols=platform&measure=firms_net")
    assert p["row_keys"] == [["2020-04"], ["2020-05"]] and p["cells"] == [[1, 1], [0, 0]]  # f3 joined and left in May
    p, ws, _ = await workbook(client, "dataset=onboarding&rows=month&cols=platform&measure=firms_net")
    assert_matches(p, ws)
    assert [c.value for c in ws[3]] == ["月", "拼多多", "淘宝", "合计"]


def test_sheet_names_follow_excels_rules() -> None:
    from api.xlsx import sheet_name

    assert sheet_name("domestic_sales", "firms_with_sales") == "出口转内销-有销售的企业数"
    long = sheet_name("a" * 40, "x/y:z")
    assert len(long) <= 31 and not set("[]:*?/\\") & set(sheet_name("d[1]", "m*?/\\:"))
