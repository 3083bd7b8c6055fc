"""Pivots have a bound (issue 23, OWASP API4): over the cells a format allows, or over
ClickHouse's limits on groups, memory and time, a pivot answers a JSON error that names
the limit, the figure and how to narrow the request — counted inside ClickHouse, so no
row over the cap reaches Python — and the dashboard shows its Chinese message."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, cast

import jsonschema
import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.auth import Scope
from api.openapi import build_spec
from api.params import TimeParams
from api.queries.pivot import DATASETS, PivotRequest, run_pivot
from api.queries.pivot_limits import PivotLimits, PivotRefused, Shape, from_clickhouse, too_many_cells
from ground.metrics import Metrics
from ground.settings import Settings
from livesales.wiring import api_config
from processors.store import ClickHouse
from tests.api.conftest import auth
from tests.api.test_channels import get

Client = TestClient[Any, Any]
# The test store: orders of 4 platforms × 3 districts, 6 channels, on 4 days.
SMALL = PivotLimits(json_cells=6, xlsx_cells=6, csv_cells=12)
WEB = Path(__file__).resolve().parents[2] / "api" / "web"


@pytest.fixture
async def small(api_settings: Settings, loaded: ClickHouse) -> AsyncIterator[Client]:
    app = create_app(api_config(api_settings), loaded, Metrics(), None, lambda: True, pivot_limits=SMALL)
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_under_the_cap_answers_as_before(small: Client, client: Client) -> None:
    for query in (
        "dataset=orders&rows=channel_id&measure=paid_orders",  # 6 cells: at the cap
        "dataset=orders&rows=platform&cols=district&format=json&from=2020-04-01T00:00:00%2B08:00",
        "dataset=onboarding&rows=district&cols=platform",
        "dataset=domestic_sales&rows=firm_id&measure=gmv_fen",
    ):
        assert await get(small, f"/v1/pivot?{query}") == await get(client, f"/v1/pivot?{query}"), query
    scoped = "/v1/pivot?dataset=orders&rows=township&cols=channel_id&measure=paid_orders"
    assert await get(small, scoped, role="township") == await get(client, scoped, role="township")


async def test_over_the_cap_answers_400_naming_the_limit_and_how_to_narrow(small: Client) -> None:
    body = await get(small, "/v1/pivot?dataset=orders&rows=platform&cols=district", status=400)
    assert list(body) == ["error"]  # no rows, no partial answer
    err = body["error"]
    assert err["code"] == "too_large" and err["limit"] == {"name": "cells", "max": 6, "estimate": 12}
    assert err["message"] == (
        "pivot too large: 4 rows × 3 columns = 12 cells, over the limit of 6 cells per json request; "
        "narrow it: a shorter from/to range; or fewer dimensions; or ask format=csv (up to 12 cells)"
    )
    assert err["message_zh"] == (
        "结果过大：4 行 × 3 列 = 12 个单元格，超过每次查询的上限 6 个。请缩短时间范围，或减少维度；"
        "也可下载 CSV（上限 12 个单元格）。"
    )
    # CSV may hold more; Excel, which costs more a cell to write, is refused the same way
    resp = await small.get("/v1/pivot?dataset=orders&rows=platform&cols=district&format=csv", headers=auth("reader"))
    assert resp.status == 200 and resp.content_type == "text/csv"
    body = await get(small, "/v1/pivot?dataset=orders&rows=platform&cols=district&format=xlsx", status=400)
    assert "per xlsx request" in body["error"]["message"] and body["error"]["limit"]["max"] == 6
    jsonschema.validate(body, _schema(400))


async def test_hints_follow_the_dimensions_asked(small: Client) -> None:
    # by channel and day: the time and the channel can be coarser
    err = (await get(small, "/v1/pivot?dataset=orders&rows=channel_id&cols=day", status=400))["error"]
    assert err["limit"]["estimate"] == 6 * 4
    assert "week or month instead of day; platform, district or township instead of channel_id" in err["message"]
    assert "改用按周或按月汇总，改用平台、区县或乡镇代替渠道/直播间，或减少维度" in err["message_zh"]
    err = (await get(small, "/v1/pivot?dataset=onboarding&rows=week&cols=platform", status=400))["error"]
    assert err["limit"] == {"name": "cells", "max": 6, "estimate": 4 * 2} and "month instead of week" in err["message"]


class Counting:
    """The store, counting the rows each query hands to Python."""

    def __init__(self, ch: ClickHouse) -> None:
        self.ch, self.returned = ch, list[int]()

    async def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        rows = await self.ch.query(sql, parameters)
        self.returned.append(len(rows))
        return rows


async def test_over_the_cap_only_the_count_leaves_clickhouse(loaded: ClickHouse) -> None:
    """One row, whatever the size: the orders path, grouping sets, and per-firm sums
    (firms × months: (f1, April), (f3, May) × (pinduoduo, 北仑区), (pinduoduo, 宁海县))."""
    for dataset, rows, cols, cells in (
        ("orders", ("channel_id",), ("day",), 24),
        ("onboarding", ("week",), ("platform",), 8),
        ("domestic_sales", ("firm_id", "month"), ("platform", "district"), 4),
    ):
        store = Counting(loaded)
        req = PivotRequest(dataset, rows, cols, DATASETS[dataset].default_measure)
        with pytest.raises(PivotRefused) as caught:
            await run_pivot(cast(ClickHouse, store), req, Scope(), TimeParams(), PivotLimits(json_cells=3))
        assert caught.value.limit == {"name": "cells", "max": 3, "estimate": cells}
        assert store.returned[-1] == 1, (dataset, store.returned)  # domestic reads its months first


async def test_clickhouse_stops_a_query_over_the_groups_limit(loaded: ClickHouse) -> None:
    """The backstop for a count that would itself cost too much: ClickHouse throws part-way."""
    req = PivotRequest("orders", ("channel_id",), (), "gmv_fen")
    with pytest.raises(PivotRefused) as caught:
        await run_pivot(loaded, req, Scope(), TimeParams(), PivotLimits(groups=3))
    refused = caught.value
    assert (refused.status, refused.code, refused.limit) == (400, "too_large", {"name": "groups", "max": 3,
                                                                                "estimate": None})  # fmt: skip
    assert "more than 3 groups" in refused.message and "分组超过每次查询的上限 3 个" in refused.message_zh


def test_clickhouse_timeouts_and_memory_become_answers_not_500s() -> None:
    shape = Shape(("merchant_id",), ("day",), DATASETS["orders"].dims, "json")
    limits = PivotLimits()
    timeout = from_clickhouse("Code: 159. DB::Exception: Timeout exceeded: elapsed 10.0 s (TIMEOUT_EXCEEDED)",
                              shape, limits)  # fmt: skip
    assert timeout is not None and (timeout.status, timeout.code, timeout.limit["name"]) == (503, "timeout", "seconds")
    assert "longer than 10 s" in timeout.message and "查询超时" in timeout.message_zh
    memory = from_clickhouse("Code: 241. Query memory limit exceeded: would use 2.1 GiB (MEMORY_LIMIT_EXCEEDED)",
                             shape, limits)  # fmt: skip
    assert memory is not None and (memory.status, memory.limit["name"]) == (400, "memory")
    # the server short of memory as a whole, or storage down: not the request's fault (503 as before)
    assert from_clickhouse("(total) memory limit exceeded (MEMORY_LIMIT_EXCEEDED)", shape, limits) is None
    assert from_clickhouse("Connection refused", shape, limits) is None


def test_the_issues_example_reads_as_a_person_needs() -> None:
    """rows=channel_id&cols=day over 100,000 channels (issue 23), at the default limits."""
    shape = Shape(("channel_id",), ("day",), DATASETS["orders"].dims, "json")
    refused = too_many_cells(shape, PivotLimits(), 100_000, 1)
    assert refused.message == (
        "pivot too large: 100,000 rows × 1 column = 100,000 cells, over the limit of 50,000 cells per json "
        "request; narrow it: a shorter from/to range; week or month instead of day; platform, district or "
        "township instead of channel_id; or fewer dimensions; or ask format=csv (up to 200,000 cells)"
    )
    assert refused.message_zh == (
        "结果过大：100,000 行 × 1 列 = 100,000 个单元格，超过每次查询的上限 50,000 个。请缩短时间范围，"
        "改用按周或按月汇总，改用平台、区县或乡镇代替渠道/直播间，或减少维度；也可下载 CSV（上限 200,000 个单元格）。"
    )


def _schema(status: int) -> dict[str, Any]:
    schema: dict[str, Any] = build_spec()["paths"]["/v1/pivot"]["get"]["responses"][str(status)]["content"][
        "application/json"]["schema"]  # fmt: skip
    return schema


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the dashboard's module")
def test_the_dashboard_shows_the_chinese_message(tmp_path: Path) -> None:
    """app.js's errorOf/describe, which every bureau view's note goes through, in node."""
    (tmp_path / "app.mjs").write_text((WEB / "app.js").read_text(encoding="utf-8"), encoding="utf-8")
    body = {"error": {"code": "too_large", "message": "pivot too large", "message_zh": "结果过大：请缩短时间范围。",
                      "limit": {"name": "cells", "max": 6, "estimate": 12}}}  # fmt: skip
    script = f"""
        import {{ errorOf, describe }} from "./app.mjs";
        const err = await errorOf(new Response({json.dumps(json.dumps(body))}, {{ status: 400 }}));
        const plain = await errorOf(new Response('{{"error": {{"code": "bad_request", "message": "m"}}}}',
                                                 {{ status: 400 }}));
        console.log(JSON.stringify([describe(err), err.limit, describe(plain)]));
    """
    out = subprocess.run(["node", "--input-type=module", "-e", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=30, check=True)  # fmt: skip
    shown, limit, plain = json.loads(out.stdout)
    assert shown == "结果过大：请缩短时间范围。" and limit == body["error"]["limit"]
    assert plain == "接口错误 400（bad_request）：m"
    bureau = (WEB / "bureau.js").read_text(encoding="utf-8")
    assert "note(v, describe(err))" in bureau and "clearView(v)" in bureau


# The issue's shape, scaled down: order steps over 100,000 channels on one day (+08:00).
CHANNELS_SQL = """
INSERT INTO order_steps (step_hash, event_hash, event_id, platform, order_id, status, occurred_at, channel_id,
    merchant_id, district, township, amount_fen, units, weight_g)
SELECT xxh3(concat('s', toString(number))), xxh3(concat('e', toString(number))), concat('e', toString(number)),
       ['douyin', 'kuaishou', 'taobao'][number % 3 + 1], toString(intDiv(number, 2)),
       if(number % 2 = 0, 'created', 'paid'),
       toDateTime64('2020-02-28 16:00:00', 3, 'UTC') + toIntervalMillisecond(number * 86399999 DIV {n:UInt64}),
       concat('ch-', toString(number % 100000)), concat('m-', toString(number % 20000)), '宁海县', '长街镇',
       1000, 1, 500
FROM numbers({n:UInt64})
"""


@pytest.mark.slow
async def test_an_over_cap_pivot_is_refused_before_it_is_computed_in_python(
    api_settings: Settings, clickhouse: ClickHouse
) -> None:
    """docs/RELIABILITY.md "Pivots: bounded cost per request": rows=channel_id&cols=day
    over 100,000 channels, refused at the default limits against answered with the cap
    lifted (run with -s for the figures)."""
    await clickhouse.run_in_thread(clickhouse.client.command, CHANNELS_SQL, parameters={"n": 1_000_000})
    url = "/v1/pivot?dataset=orders&rows=channel_id&cols=day&measure=paid_orders"
    took = {}
    for name, limits in (("refused", PivotLimits()), ("answered", PivotLimits(json_cells=1_000_000))):
        app = create_app(api_config(api_settings), clickhouse, Metrics(), None, lambda: True, pivot_limits=limits)
        async with TestClient(TestServer(app)) as c:
            await c.get("/v1/pivot?dataset=orders&rows=platform", headers=auth("reader"))  # warm up
            runs = []
            for _ in range(3):
                started = time.perf_counter()
                resp = await c.get(url, headers=auth("reader"))
                body = await resp.json()
                runs.append(time.perf_counter() - started)
            took[name] = sorted(runs)[1]
            if name == "refused":
                assert resp.status == 400 and body["error"]["limit"] == {"name": "cells", "max": 50_000,
                                                                         "estimate": 100_000}  # fmt: skip
            else:
                assert resp.status == 200 and len(body["row_keys"]) == 100_000 and body["total"] == 500_000
    print(f"\nrows=channel_id&cols=day, 1,000,000 steps over 100,000 channels (median of 3): "
          f"refused in {took['refused'] * 1000:.0f} ms, answered in {took['answered'] * 1000:.0f} ms")  # fmt: skip
    assert took["refused"] < took["answered"]
