"""Pivots over the four datasets; every dimension and measure name maps through a whitelist.

One query per pivot: GROUPING SETS compute the cells, the row totals, the column totals
and the grand total in a single scan, and ``group_by_use_nulls`` marks the dimensions a
set rolls up (no stored dimension is ever NULL), so totals stay right for measures that
do not add up, like ``firms_with_sales``. Every query runs through
``pivot_limits.limited_query``: what one request may cost is bounded inside ClickHouse.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from api.auth import Scope
from api.params import TimeParams
from api.queries import domestic, live_monitor
from api.queries.pivot_limits import LIMITS, PivotLimits, Shape, limited_query
from api.queries.scope import channel_scope, region_condition
from processors.store import ClickHouse

# ``t`` is the event time shifted into the requested offset (seconds bound as {off}).
_SHIFTED = "(occurred_at + toIntervalSecond({off:Int32}))"
TIME_DIMS = {
    "day": f"formatDateTime({_SHIFTED}, '%Y-%m-%d', 'UTC')",
    "week": f"concat(toString(toISOYear(toDateTime({_SHIFTED}, 'UTC'))), '-W', "
    f"leftPad(toString(toISOWeek(toDateTime({_SHIFTED}, 'UTC'))), 2, '0'))",
    "month": f"formatDateTime({_SHIFTED}, '%Y-%m', 'UTC')",
}


@dataclass(frozen=True)
class Dataset:
    source: str  # a FROM clause of fixed SQL
    dims: dict[str, str]
    measures: dict[str, str]
    default_measure: str
    district_col: str
    township_col: str | None


DATASETS: dict[str, Dataset] = {
    "orders": Dataset(
        source="order_steps",
        dims={
            "platform": "platform",
            "channel_id": "channel_id",
            "district": "district",
            "township": "township",
            "merchant_id": "merchant_id",
            **TIME_DIMS,
        },
        measures={
            "paid_orders": "countIf(status = 'paid')",
            "gmv_fen": "sumIf(amount_fen, status = 'paid')",
            "units": "sumIf(units, status = 'paid')",
            "weight_g": "sumIf(weight_g, status = 'paid')",
            "refunded_orders": "countIf(status = 'refunded')",
            "refund_fen": "sumIf(amount_fen, status = 'refunded')",
            "net_gmv_fen": "toInt64(sumIf(amount_fen, status = 'paid'))"
            " - toInt64(sumIf(amount_fen, status = 'refunded'))",
        },
        default_measure="gmv_fen",
        district_col="district",
        township_col="township",
    ),
    "onboarding": Dataset(
        source="onboarding_steps",
        dims={"platform": "platform", "district": "district", "export_oriented": "export_oriented", **TIME_DIMS},
        measures={
            "firms_onboarded": "countIf(status = 'onboarded')",
            "firms_withdrawn": "countIf(status = 'withdrawn')",
            "firms_net": "toInt64(countIf(status = 'onboarded')) - toInt64(countIf(status = 'withdrawn'))",
        },
        default_measure="firms_net",
        district_col="district",
        township_col=None,
    ),
    # Paid orders of export-oriented onboarded firms; the district is the firm's. The plain
    # form, over rows: api.queries.domestic answers most pivots from per-firm sums instead.
    "domestic_sales": Dataset(
        source="""(
            SELECT o.platform AS platform, f.firm_district AS district, o.occurred_at AS occurred_at,
                   o.amount_fen AS amount_fen, o.merchant_id AS firm_id
            FROM order_steps AS o
            INNER JOIN (
                SELECT platform, firm_id, argMax(district, occurred_at) AS firm_district
                FROM onboarding_steps WHERE status = 'onboarded' AND export_oriented
                GROUP BY platform, firm_id
            ) AS f ON o.platform = f.platform AND o.merchant_id = f.firm_id
            WHERE o.status = 'paid'
        )""",
        dims={"platform": "platform", "district": "district", "firm_id": "firm_id", **TIME_DIMS},
        measures={
            "gmv_fen": "sum(amount_fen)",
            "paid_orders": "count()",
            "firms_with_sales": "uniqExact(firm_id)",
        },
        default_measure="gmv_fen",
        district_col="district",
        township_col=None,
    ),
    "live_monitor": Dataset(**live_monitor.dataset(TIME_DIMS)),  # v1.2: 直播电商监测
}


@dataclass(frozen=True)
class PivotRequest:
    dataset: str
    rows: tuple[str, ...]
    cols: tuple[str, ...]
    measure: str
    fmt: str = "json"  # json, csv or xlsx: each has its cap on cells (PivotLimits)

    def shape(self) -> Shape:
        return Shape(self.rows, self.cols, DATASETS[self.dataset].dims, self.fmt)


def _key(value: Any) -> Any:
    return bool(value) if isinstance(value, bool) else value


# Orders measures are linear in per-status sums, so orders pivots ask ClickHouse only for
# (dimensions…, status) → count and sums, which the p_hour projection answers when the
# time keys can be taken from the hour (whole-hour offset, hour-aligned bounds), and
# add up the totals in Python.
_BY_STATUS: dict[str, Any] = {
    "paid_orders": lambda s: s["paid"][0],
    "gmv_fen": lambda s: s["paid"][1],
    "units": lambda s: s["paid"][2],
    "weight_g": lambda s: s["paid"][3],
    "refunded_orders": lambda s: s["refunded"][0],
    "refund_fen": lambda s: s["refunded"][1],
    "net_gmv_fen": lambda s: s["paid"][1] - s["refunded"][1],
}
_HOURLY_DIMS = {k: v.replace("occurred_at", "toStartOfHour(occurred_at)") for k, v in TIME_DIMS.items()}
_MINUTELY_DIMS = {k: v.replace("occurred_at", "minute") for k, v in TIME_DIMS.items()}


def _hour_aligned(t: datetime | None) -> bool:
    """On a UTC hour boundary (10:00+05:30 is 04:30Z: not aligned)."""
    if t is None:
        return True
    u = t.astimezone(UTC)
    return u.minute == 0 and u.second == 0 and u.microsecond == 0


def _minute_aligned(t: datetime | None) -> bool:
    """On a UTC minute boundary (RFC 3339 offsets are whole minutes)."""
    return t is None or (t.astimezone(UTC).second == 0 and t.microsecond == 0)


async def _orders_cells(
    ch: ClickHouse, req: PivotRequest, scope: Scope, tp: TimeParams, limits: PivotLimits
) -> dict[tuple[tuple[Any, ...], tuple[Any, ...]], int]:
    ds = DATASETS["orders"]
    dims = [*req.rows, *req.cols]
    if scope.is_all:
        hourly = tp.offset_seconds % 3600 == 0 and _hour_aligned(tp.from_) and _hour_aligned(tp.to)
        exprs = {**ds.dims, **(_HOURLY_DIMS if hourly else {})}
        time_col = "toStartOfHour(occurred_at)" if hourly else "occurred_at"
        cond, params = "1", dict[str, Any]()
    else:
        # A scoped token sees the orders of the channels placed inside its scope (all of
        # them, as on the channel's pages: api.queries.scope); p_minute, which has the
        # channel, answers when the bounds fall on minutes and no platform/merchant is asked.
        minutely = _minute_aligned(tp.from_) and _minute_aligned(tp.to)
        exprs = {**ds.dims, **(_MINUTELY_DIMS if minutely else {})}
        time_col = "minute" if minutely else "occurred_at"
        cond, params = channel_scope(scope)
    select = "".join(f"{exprs[d]} AS d{i}, " for i, d in enumerate(dims))
    if tp.from_ is not None:
        cond += f" AND {time_col} >= {{lo:DateTime64(3, 'UTC')}}"
    if tp.to is not None:
        cond += f" AND {time_col} < {{hi:DateTime64(3, 'UTC')}}"
    group = "".join(f"d{i}, " for i in range(len(dims)))
    sql = f"""
        SELECT {select}toString(status) AS st, count() AS n, sum(amount_fen) AS amount, sum(units) AS u,
               sum(weight_g) AS w
        FROM order_steps WHERE {cond} GROUP BY {group}st
    """  # noqa: S608 - every name comes from the whitelists above; values are bound
    lo, hi = tp.bounds()
    acc: dict[tuple[Any, ...], dict[str, list[int]]] = {}
    params = {"lo": lo, "hi": hi, "off": tp.offset_seconds, **params}
    for r in await limited_query(ch, sql, params, req.shape(), limits):
        key = tuple(r[f"d{i}"] for i in range(len(dims)))
        per_status = acc.setdefault(key, {s: [0, 0, 0, 0] for s in ("paid", "created", "refunded")})
        per_status[r["st"]] = [int(r["n"]), int(r["amount"]), int(r["u"]), int(r["w"])]
    measure = _BY_STATUS[req.measure]
    nr = len(req.rows)
    return {(key[:nr], key[nr:]): int(measure(s)) for key, s in acc.items()}


_NAMES = "SELECT firm_id, argMax(firm_name, occurred_at) AS name FROM onboarding_steps"
MANY_FIRMS = 1000


async def firm_names(ch: ClickHouse, firm_ids: list[str]) -> dict[str, str]:
    """Each firm's latest name (of its onboarding steps), for the ids a pivot shows."""
    if not firm_ids:
        return {}
    if len(firm_ids) > MANY_FIRMS:  # binding 10^4 ids costs ~3x reading every firm's name
        wanted = set(firm_ids)
        rows = await ch.query(f"{_NAMES} GROUP BY firm_id")
        return {r["firm_id"]: r["name"] for r in rows if r["firm_id"] in wanted}
    rows = await ch.query(f"{_NAMES} WHERE firm_id IN {{ids:Array(String)}} GROUP BY firm_id", {"ids": firm_ids})
    return {r["firm_id"]: r["name"] for r in rows}


async def run_pivot(
    ch: ClickHouse, req: PivotRequest, scope: Scope, tp: TimeParams, limits: PivotLimits = LIMITS
) -> dict[str, Any]:
    """The contract's pivot answer; with ``firm_id`` among the dimensions, also its names.
    Raises ``pivot_limits.PivotRefused`` when the request is over ``limits``."""
    result = await _run_pivot(ch, req, scope, tp, limits)
    dims = [*req.rows, *req.cols]
    if req.dataset == "domestic_sales" and "firm_id" in dims:
        i = dims.index("firm_id")
        keys = result["row_keys"] if i < len(req.rows) else result["col_keys"]
        j = i if i < len(req.rows) else i - len(req.rows)
        result["labels"] = {"firm_id": await firm_names(ch, sorted({k[j] for k in keys}))}
    return result


async def _run_pivot(
    ch: ClickHouse, req: PivotRequest, scope: Scope, tp: TimeParams, limits: PivotLimits
) -> dict[str, Any]:
    if req.dataset == "orders":
        linear = await _orders_cells(ch, req, scope, tp, limits)
        return shape(req, linear, *_add_up(linear))
    ds = DATASETS[req.dataset]
    dims = [*req.rows, *req.cols]
    sums = None
    if req.dataset == "domestic_sales" and domestic.applies(dims, tp.offset_seconds, tp.from_, tp.to):
        bounds = None if tp.from_ is None and tp.to is None else tp.bounds()
        sums = await domestic.firm_sums(ch, dims, tp.offset_seconds, bounds)
    if sums is not None:  # per-firm sums from the projections, bounds applied inside
        ds = replace(ds, source=sums[0], dims=domestic.DIMS, measures=domestic.MEASURES)
    return await grouped_pivot(ch, req, scope, tp, ds, sums[1] if sums else None, limits)


async def grouped_pivot(
    ch: ClickHouse,
    req: PivotRequest,
    scope: Scope,
    tp: TimeParams,
    ds: Dataset,
    bounded: dict[str, Any] | None,
    limits: PivotLimits = LIMITS,
) -> dict[str, Any]:
    """The pivot as GROUPING SETS over ``ds.source``; ``bounded``: the parameters of a
    source that applies the time bounds itself (else they are applied to occurred_at)."""
    dims = [*req.rows, *req.cols]
    aliases = {d: f"d{i}" for i, d in enumerate(dims)}
    select = ", ".join(f"{ds.dims[d]} AS {aliases[d]}" for d in dims)
    sets = []
    for group in (dims, list(req.rows), list(req.cols), []):
        text = "(" + ", ".join(aliases[d] for d in group) + ")"
        if text not in sets:
            sets.append(text)
    cond, params = region_condition(scope, ds.district_col, ds.township_col)
    lo, hi = tp.bounds()
    # only the bounds asked for: an always-true range test still costs a pass over 10^7 rows
    if tp.from_ is not None and bounded is None:
        cond += " AND occurred_at >= {lo:DateTime64(3, 'UTC')}"
    if tp.to is not None and bounded is None:
        cond += " AND occurred_at < {hi:DateTime64(3, 'UTC')}"
    params.update(bounded or {})
    sql = f"""
        SELECT {select + ", " if select else ""}{ds.measures[req.measure]} AS v
        FROM {ds.source} AS src
        WHERE {cond}
        {"GROUP BY GROUPING SETS (" + ", ".join(sets) + ")" if dims else ""}
    """  # noqa: S608 - every name comes from the whitelists above; values are bound
    is_cell = " AND ".join(f"{a} IS NOT NULL" for a in aliases.values()) or "1"  # not a total's row
    params = {"lo": lo, "hi": hi, "off": tp.offset_seconds, **params}
    rows = await limited_query(ch, sql, params, req.shape(), limits, is_cell, "group_by_use_nulls = 1")

    nr = len(req.rows)
    cells: dict[tuple[tuple[Any, ...], tuple[Any, ...]], int] = {}
    row_totals: dict[tuple[Any, ...], int] = {}
    col_totals: dict[tuple[Any, ...], int] = {}
    total = 0
    for r in rows:
        values = [r[aliases[d]] for d in dims]
        rk, ck = tuple(values[:nr]), tuple(values[nr:])
        v = int(r["v"])
        has_r = all(x is not None for x in rk)
        has_c = all(x is not None for x in ck)
        if not dims or (not any(x is not None for x in values)):
            total = v
        if has_r and has_c and (rk or ck):
            cells[(rk, ck)] = v
        if has_r and rk and not any(x is not None for x in ck):
            row_totals[rk] = v
        if has_c and ck and not any(x is not None for x in rk):
            col_totals[ck] = v
    if not req.rows and not req.cols:
        pass
    elif not req.cols:
        row_totals = {rk: v for (rk, _), v in cells.items()}
    elif not req.rows:
        col_totals = {ck: v for (_, ck), v in cells.items()}
    return shape(req, cells, row_totals, col_totals, total)


def _add_up(
    cells: dict[tuple[tuple[Any, ...], tuple[Any, ...]], int],
) -> tuple[dict[tuple[Any, ...], int], dict[tuple[Any, ...], int], int]:
    rows: dict[tuple[Any, ...], int] = {}
    cols: dict[tuple[Any, ...], int] = {}
    for (rk, ck), v in cells.items():
        rows[rk] = rows.get(rk, 0) + v
        cols[ck] = cols.get(ck, 0) + v
    return rows, cols, sum(cells.values())


def shape(
    req: PivotRequest,
    cells: dict[tuple[tuple[Any, ...], tuple[Any, ...]], int],
    row_totals: dict[tuple[Any, ...], int],
    col_totals: dict[tuple[Any, ...], int],
    total: int,
) -> dict[str, Any]:
    """The contract's dense matrix with sorted keys and totals."""
    row_keys = sorted({rk for rk, _ in cells} | set(row_totals)) if req.rows else [()]
    col_keys = sorted({ck for _, ck in cells} | set(col_totals)) if req.cols else [()]
    if not req.rows:
        row_totals = {(): total}
    if not req.cols:
        col_totals = {(): total}
    return {
        "dataset": req.dataset,
        "measure": req.measure,
        "rows": list(req.rows),
        "cols": list(req.cols),
        "row_keys": [[_key(x) for x in rk] for rk in row_keys],
        "col_keys": [[_key(x) for x in ck] for ck in col_keys],
        "cells": [[cells.get((rk, ck), 0) if (rk or ck) else total for ck in col_keys] for rk in row_keys],
        "row_totals": [row_totals.get(rk, 0) for rk in row_keys],
        "col_totals": [col_totals.get(ck, 0) for ck in col_keys],
        "total": total,
    }
