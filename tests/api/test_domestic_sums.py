"""Domestic-sales pivots from per-firm sums (api.queries.domestic) against the plain join
over raw rows, on a store whose orders straddle month ends in several offsets; and the
per-firm sums are answered by the projections, not by rows."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from api.auth import Scope
from api.params import TimeParams
from api.queries import domestic
from api.queries.pivot import MANY_FIRMS, TIME_DIMS, PivotRequest, firm_names, run_pivot
from api.queries.scope import region_condition
from processors.store import ClickHouse

# The domestic_sales source as it was before the per-firm sums: every paid order row
# joined with the export-oriented firms. The reference the new answers must equal.
OLD_SOURCE = """(
    SELECT o.platform AS platform, f.firm_district AS district, o.occurred_at AS occurred_at,
           o.amount_fen AS amount_fen, o.merchant_id AS firm_id
    FROM order_steps AS o
    INNER JOIN (
        SELECT platform, firm_id, argMax(district, occurred_at) AS firm_district
        FROM onboarding_steps WHERE status = 'onboarded' AND export_oriented
        GROUP BY platform, firm_id
    ) AS f ON o.platform = f.platform AND o.merchant_id = f.firm_id
    WHERE o.status = 'paid'
)"""
OLD_MEASURES = {"gmv_fen": "sum(amount_fen)", "paid_orders": "count()", "firms_with_sales": "uniqExact(firm_id)"}
OLD_DIMS = {"platform": "platform", "district": "district", "firm_id": "firm_id", **TIME_DIMS}

# 3,000 order steps every 2,999.x s from 2020-01-25 (to early May), a third of them paid,
# over 4 platforms and 15 merchants (f13 and f14 are no firm); the order's own district
# is one no firm has, so a wrong join shows.
ORDERS_SQL = """
INSERT INTO order_steps (step_hash, event_hash, event_id, platform, order_id, status, occurred_at, channel_id,
    merchant_id, district, township, amount_fen, units, weight_g)
SELECT n, n, concat('e', toString(n)), ['douyin', 'taobao', 'pinduoduo', 'jd'][n % 4 + 1], toString(intDiv(n, 3)),
       ['created', 'paid', 'refunded'][n % 3 + 1],
       toDateTime64('2020-01-25 00:00:00', 3, 'UTC') + toIntervalMillisecond(n * 2999137),
       concat('c', toString(n % 5)), concat('f', toString(n % 15)), '象山县', '石浦镇', 100 + n % 997, 1, 0
FROM (SELECT number AS n FROM numbers(3000))
"""
# Paid orders of f1 on douyin on either side of the month ends in +08:00, +05:45 and -05:00.
EDGES = ["2020-02-29 15:59:59.999", "2020-02-29 16:00:00", "2020-03-31 18:14:59.999", "2020-03-31 18:15:00",
         "2020-04-01 04:59:59.999", "2020-04-01 05:00:00", "2020-04-30 23:59:59.999", "2020-05-01 00:00:00"]  # fmt: skip
EDGES_SQL = """
INSERT INTO order_steps (step_hash, event_hash, event_id, platform, order_id, status, occurred_at, channel_id,
    merchant_id, district, township, amount_fen, units, weight_g)
SELECT 10000 + n, 10000 + n, concat('x', toString(n)), 'douyin', concat('x', toString(n)), 'paid',
       toDateTime64({at:Array(String)}[n + 1], 3, 'UTC'), 'c9', 'f1', '象山县', '石浦镇', 7000 + n, 1, 0
FROM (SELECT number AS n FROM numbers(length({at:Array(String)})))
"""
# Each of f0..f12 on each platform, two in three export-oriented, in one of 5 districts;
# f0..f7 onboard on douyin again later, some elsewhere (the latest district counts), and
# f8 withdraws there (a withdrawal moves no firm).
FIRMS_SQL = """
INSERT INTO onboarding_steps (step_hash, event_hash, event_id, platform, firm_id, status, occurred_at, firm_name,
    district, export_oriented)
SELECT n, n, concat('o', toString(n)), ['douyin', 'taobao', 'pinduoduo', 'jd'][intDiv(n, 13) % 4 + 1],
       concat('f', toString(n % 13)), if(n = 60, 'withdrawn', 'onboarded'),
       toDateTime64('2020-01-01 00:00:00', 3, 'UTC') + toIntervalHour(n), concat('企业', toString(n % 13)),
       if(n = 54, '宁海县', ['北仑区', '鄞州区', '海曙区', '江北区', '宁海县'][n % 5 + 1]), n % 3 != 0 OR n >= 52
FROM (SELECT number AS n FROM numbers(61))
"""


@pytest.fixture
async def store(clickhouse: ClickHouse) -> ClickHouse:
    for sql, params in ((ORDERS_SQL, {}), (EDGES_SQL, {"at": EDGES}), (FIRMS_SQL, {})):
        await clickhouse.run_in_thread(clickhouse.client.command, sql, parameters=params)
    return clickhouse


async def reference(ch: ClickHouse, req: PivotRequest, scope: Scope, tp: TimeParams) -> dict[str, Any]:
    """Cells, row and column totals and the total, each by its own GROUP BY over rows."""
    cond, params = region_condition(scope, "district", None)
    if tp.from_ is not None:
        cond += " AND occurred_at >= {lo:DateTime64(3, 'UTC')}"
    if tp.to is not None:
        cond += " AND occurred_at < {hi:DateTime64(3, 'UTC')}"
    lo, hi = tp.bounds()
    params |= {"lo": lo, "hi": hi, "off": tp.offset_seconds}

    async def grouped(dims: tuple[str, ...]) -> dict[tuple[Any, ...], int]:
        keys = "".join(f"{OLD_DIMS[d]} AS k{i}, " for i, d in enumerate(dims))
        group = f"GROUP BY {', '.join(f'k{i}' for i in range(len(dims)))}" if dims else ""
        sql = f"SELECT {keys}{OLD_MEASURES[req.measure]} AS v FROM {OLD_SOURCE} WHERE {cond} {group}"  # noqa: S608
        rows = await ch.query(sql, params)
        return {tuple(r[f"k{i}"] for i in range(len(dims))): int(r["v"]) for r in rows}

    cells = await grouped((*req.rows, *req.cols))
    nr = len(req.rows)
    return {
        "cells": {(k[:nr], k[nr:]): v for k, v in cells.items()},
        "row_totals": await grouped(req.rows) if req.rows else {},
        "col_totals": await grouped(req.cols) if req.cols else {},
        "total": sum((await grouped(())).values()),
    }


def answered(p: dict[str, Any]) -> dict[str, Any]:
    rks, cks = [tuple(k) for k in p["row_keys"]], [tuple(k) for k in p["col_keys"]]
    return {
        "cells": {(rk, ck): v for rk, line in zip(rks, p["cells"], strict=True)
                  for ck, v in zip(cks, line, strict=True) if v},
        "row_totals": dict(zip(rks, p["row_totals"], strict=True)) if p["rows"] else {},
        "col_totals": dict(zip(cks, p["col_totals"], strict=True)) if p["cols"] else {},
        "total": p["total"],
    }  # fmt: skip


SHAPES = [
    (("platform",), ("district",), "gmv_fen"),
    (("firm_id",), (), "gmv_fen"),
    (("month",), ("platform",), "firms_with_sales"),
    (("district",), ("month",), "paid_orders"),
    ((), ("month", "district"), "firms_with_sales"),
    (("district",), (), "firms_with_sales"),
]
BOUNDS = [(None, None), ("2020-02-10T00:00:00+08:00", "2020-04-20T00:00:00+08:00"),
          ("2020-03-01T00:00:00Z", "2020-05-01T00:00:00Z")]  # fmt: skip


@pytest.mark.parametrize("tz", ["+08:00", "+05:45", "-05:00", "+00:00"])
async def test_per_firm_sums_equal_the_join_over_rows(store: ClickHouse, tz: str) -> None:
    fast = 0
    for rows, cols, measure in SHAPES:
        for lo, hi in BOUNDS:
            req = PivotRequest("domestic_sales", rows, cols, measure)
            tp = TimeParams.model_validate({"from_": lo, "to": hi, "tz": tz})
            want = await reference(store, req, Scope(), tp)
            assert answered(await run_pivot(store, req, Scope(), tp)) == want, (rows, cols, measure, lo, hi)
            assert want["total"] > 0
            fast += domestic.applies([*rows, *cols], tp.offset_seconds, tp.from_, tp.to)
    # every shape but the month ones in +05:45 takes the per-firm sums
    assert fast == len(SHAPES) * len(BOUNDS) - (3 * len(BOUNDS) if tz == "+05:45" else 0)


async def test_what_the_sums_cannot_answer_reads_rows_the_same(store: ClickHouse) -> None:
    """Day and week dimensions, bounds off the hour, a district scope."""
    cases = [
        (PivotRequest("domestic_sales", ("day",), ("platform",), "gmv_fen"), {"tz": "+08:00"}, Scope()),
        (PivotRequest("domestic_sales", ("week",), (), "firms_with_sales"), {"tz": "-05:00"}, Scope()),
        (PivotRequest("domestic_sales", ("firm_id",), ("month",), "paid_orders"),
         {"from_": "2020-02-29T21:30:00+05:45", "to": "2020-04-01T10:00:00+05:30", "tz": "+05:45"}, Scope()),
        (PivotRequest("domestic_sales", ("platform",), ("month",), "gmv_fen"),
         {"from_": "2020-02-10T00:00:00+08:00", "tz": "+08:00"}, Scope(district="宁海县")),
    ]  # fmt: skip
    for req, time, scope in cases:
        tp = TimeParams.model_validate(time)
        want = await reference(store, req, scope, tp)
        assert answered(await run_pivot(store, req, scope, tp)) == want, (req, time, scope)
        assert want["total"] > 0


def test_month_ends_move_by_the_offset() -> None:
    months = [date(2020, 2, 1), date(2020, 3, 1), date(2020, 4, 1)]
    lo, hi = datetime(2020, 2, 9, 16, tzinfo=UTC), datetime(2020, 4, 30, 16, tzinfo=UTC)
    whole, hours, moved = domestic.plan(months, lo, hi, 8 * 3600, by_month=True)
    assert whole == [date(2020, 3, 1)]
    assert hours == [(lo, datetime(2020, 3, 1, tzinfo=UTC)), (datetime(2020, 4, 1, tzinfo=UTC), hi)]
    assert moved == [(datetime(2020, 3, 31, 16, tzinfo=UTC), datetime(2020, 4, 1, tzinfo=UTC))]
    _, _, moved = domestic.plan(months, lo, hi, -5 * 3600, by_month=True)
    assert moved == [(datetime(2020, 3, 1, tzinfo=UTC), datetime(2020, 3, 1, 5, tzinfo=UTC))]
    assert domestic.plan(months, lo, hi, 8 * 3600, by_month=False)[2] == []


async def test_the_projections_answer_the_per_firm_sums(store: ClickHouse) -> None:
    """Each per-firm SELECT of a plan with whole months, edge hours and moved hours runs
    with force_optimize_projection_name: ClickHouse refuses it unless that projection
    answers it."""
    lo, hi = datetime(2020, 2, 9, 16, tzinfo=UTC), datetime(2020, 4, 30, 16, tzinfo=UTC)
    months = [r["m"] for r in await store.query(domestic.MONTHS_SQL + " SETTINGS force_optimize_projection = 1")]
    assert sorted(months) == [date(2020, m, 1) for m in (1, 2, 3, 4, 5)]
    for by_month in (True, False):
        plan = domestic.plan(months, lo, hi, 8 * 3600, by_month)
        selects, params = domestic.branches(*plan, by_month=by_month)
        assert [p for _, p in selects] == ["p_firm_month", "p_firm_hour", "p_firm_hour"][: 3 if by_month else 2]
        for sql, projection in [*selects, (domestic.sums(None, "1"), "p_firm_month")]:
            forced = f"{sql} SETTINGS force_optimize_projection_name = '{projection}'"
            assert await store.query(forced, {**params, "off": 8 * 3600})


async def test_names_of_many_firms_are_read_all_at_once_the_same(store: ClickHouse) -> None:
    few = await firm_names(store, ["f1", "f12", "f99"])
    assert few == {"f1": "企业1", "f12": "企业12"}
    many = [f"f{i}" for i in range(MANY_FIRMS + 1)]
    assert (
        await firm_names(store, many) == await firm_names(store, many[:13]) == {f"f{i}": f"企业{i}" for i in range(13)}
    )
    assert await firm_names(store, [*many[13:], "f1"]) == {"f1": "企业1"}
