"""Per-channel numbers: the list, the per-minute curve, the summary, a change marker.

Every counted row is stored once (processors.dedupe), so these are plain aggregations;
channel queries filter on ``channel_id``, the primary key's first column. A channel's
platform/district/township are those of its latest order event, and a scoped token sees
a channel only when that region is inside its scope: the check is a WHERE clause on that
latest region, so out-of-scope channels are indistinguishable from missing ones.

Queries are written so that ClickHouse answers them from the projections of
``order_steps`` (schemas.ddl): ``p_channel`` (per channel, region and status, with SKU
sums) for the existence check and the summary, ``p_minute`` for the per-minute curve.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from api.auth import Scope
from api.params import TimeParams
from api.queries.scope import region_condition
from processors.store import ClickHouse

# Grouped by status in "long form" so ClickHouse answers from the p_minute projection
# (schemas.ddl) instead of the rows; fold() turns the status rows into the contract's fields.
_BY_STATUS = """
    toString(status) AS status, count() AS n, sum(amount_fen) AS amount, sum(units) AS units,
    sum(weight_g) AS weight
"""
ZERO = {"paid_orders": 0, "gmv_fen": 0, "units": 0, "weight_g": 0, "created_orders": 0,
        "refunded_orders": 0, "refund_fen": 0}  # fmt: skip


def fold(cell: dict[str, Any], r: dict[str, Any]) -> None:
    """Add one (status, sums) row to a cell of the contract's counts."""
    n, amount = int(r["n"]), int(r["amount"])
    if r["status"] == "paid":
        cell["paid_orders"] += n
        cell["gmv_fen"] += amount
        cell["units"] += int(r["units"])
        cell["weight_g"] += int(r["weight"])
    elif r["status"] == "created":
        cell["created_orders"] += n
    else:
        cell["refunded_orders"] += n
        cell["refund_fen"] += amount

_CHANNEL_ATTRS = """
    argMax(platform, occurred_at) AS platform,
    argMax(district, occurred_at) AS district,
    argMax(township, occurred_at) AS township
"""


def _ceil_minute(t: datetime) -> datetime:
    """The first minute start at or after ``t`` (minute buckets are keyed by their start)."""
    floor = t.replace(second=0, microsecond=0)
    return floor if floor == t else floor + timedelta(minutes=1)


def _none_if_empty(value: str | None) -> str | None:
    return value or None


# Naming the projection spares the optimizer weighing every one of them (~1.5 ms a query).
_P_CHANNEL = "SETTINGS preferred_optimize_projection_name = 'p_channel'"

# The channel's newest order row is in the p_channel group with the greatest
# max(occurred_at); one tuple keeps platform and region from the same group. The scope is
# checked on that tuple in HAVING (region_condition over latest.2/latest.3).
_LATEST = "argMax(tuple(platform, district, township), last_at) AS latest"


async def channel_in_scope(ch: ClickHouse, channel_id: str, scope: Scope) -> dict[str, Any] | None:
    """The channel's attributes, or None when it does not exist for this scope."""
    cond, params = region_condition(scope, "latest.2", "latest.3")
    rows = await ch.query(
        f"""SELECT {_LATEST} FROM (
                SELECT platform, district, township, max(occurred_at) AS last_at FROM order_steps
                WHERE channel_id = {{c:String}} GROUP BY platform, district, township
            ) HAVING count() > 0 AND {cond} {_P_CHANNEL}""",  # noqa: S608 - fixed SQL; the scope is bound parameters
        {"c": channel_id, **params},
    )
    if rows:
        platform, district, township = rows[0]["latest"]
        return {"platform": platform, "district": district, "township": township}
    if scope.is_all:  # a channel known only from its stream stats
        stats = await ch.query(
            "SELECT any(platform) AS platform FROM stream_stats WHERE channel_id = {c:String} HAVING count() > 0",
            {"c": channel_id},
        )
        if stats:
            return {"platform": stats[0]["platform"], "district": "", "township": ""}
    return None


async def list_channels(ch: ClickHouse, scope: Scope, tp: TimeParams) -> list[dict[str, Any]]:
    cond, params = region_condition(scope, "o.district", "o.township")
    join = "LEFT" if not scope.is_all else "FULL OUTER"
    sql = f"""
        SELECT
            if(o.channel_id != '', o.channel_id, s.channel_id) AS channel_id,
            if(o.channel_id != '', o.platform, s.platform) AS platform,
            o.district AS district, o.township AS township,
            o.paid_orders AS paid_orders, o.gmv_fen AS gmv_fen,
            multiIf(o.channel_id = '', s.first_at, s.channel_id = '', o.first_at, least(o.first_at, s.first_at))
                AS first_event_at,
            multiIf(o.channel_id = '', s.last_at, s.channel_id = '', o.last_at, greatest(o.last_at, s.last_at))
                AS last_event_at
        FROM (
            SELECT channel_id, {_CHANNEL_ATTRS},
                   countIf(status = 'paid') AS paid_orders, sumIf(amount_fen, status = 'paid') AS gmv_fen,
                   min(occurred_at) AS first_at, max(occurred_at) AS last_at
            FROM order_steps GROUP BY channel_id
        ) AS o
        {join} JOIN (
            SELECT channel_id, any(platform) AS platform, min(occurred_at) AS first_at, max(occurred_at) AS last_at
            FROM stream_stats GROUP BY channel_id
        ) AS s ON o.channel_id = s.channel_id
        WHERE {cond}
        ORDER BY channel_id
    """  # noqa: S608 - fixed SQL; the scope is bound parameters
    rows = await ch.query(sql, params)
    return [
        {
            "channel_id": r["channel_id"],
            "platform": r["platform"],
            "district": _none_if_empty(r["district"]),
            "township": _none_if_empty(r["township"]),
            "paid_orders": int(r["paid_orders"]),
            "gmv_fen": int(r["gmv_fen"]),
            "first_event_at": tp.render(r["first_event_at"]),
            "last_event_at": tp.render(r["last_event_at"]),
        }
        for r in rows
    ]


async def minutes(ch: ClickHouse, channel_id: str, scope: Scope, tp: TimeParams) -> list[dict[str, Any]]:
    """The channel's minutes in [from, to); the caller checks that the channel exists."""
    cond, params = region_condition(scope, "district", "township")
    lo, hi = tp.bounds()
    # a minute is in [from, to) when its start is
    bound = {"c": channel_id, "lo": _ceil_minute(lo), "hi": _ceil_minute(hi), **params}
    where = "channel_id = {c:String} AND minute >= {lo:DateTime('UTC')} AND minute < {hi:DateTime('UTC')}"
    # minutes as epoch seconds, rendered with one tzinfo: aware datetimes cost ~5 ms of Python here
    orders, stats = await asyncio.gather(  # independent: run them side by side
        ch.query(
            f"SELECT toUnixTimestamp(minute) AS m, {_BY_STATUS} FROM order_steps WHERE {where} AND {cond}"  # noqa: S608
            " GROUP BY minute, status SETTINGS preferred_optimize_projection_name = 'p_minute'",
            bound,
        ),
        ch.query(
            f"SELECT toUnixTimestamp(minute) AS m, max(views_total) AS views_total,"  # noqa: S608
            f" max(viewers_online) AS viewers_peak FROM stream_stats WHERE {where} GROUP BY minute",
            bound,
        ),
    )
    empty = {**ZERO, "views_total": None, "viewers_peak": None}
    by_minute: dict[int, dict[str, Any]] = {}
    for r in orders:
        fold(by_minute.setdefault(r["m"], dict(empty)), r)
    for r in stats:
        cell = by_minute.setdefault(r["m"], dict(empty))
        cell["views_total"] = int(r["views_total"])
        cell["viewers_peak"] = int(r["viewers_peak"])
    tz = tp.tzinfo
    return [{"minute": datetime.fromtimestamp(m, tz).isoformat(), **by_minute[m]} for m in sorted(by_minute)]


# The whole summary in one read of p_channel: the latest group's region and platform
# (scope-checked in HAVING, as in channel_in_scope) and, over the groups inside the scope,
# the contract's sums and the SKU maps. sumMap's units are never 0, so no SKU is dropped;
# minMap picks one name per SKU deterministically (a SKU's orders carry the same name).
_SUMMARY = """
    SELECT {latest},
        sumIf(n, {paid}) AS paid_orders, sumIf(amount, {paid}) AS gmv_fen,
        sumIf(qty, {paid}) AS units, sumIf(grams, {paid}) AS weight_g,
        sumIf(n, {created}) AS created_orders,
        sumIf(n, {refunded}) AS refunded_orders, sumIf(amount, {refunded}) AS refund_fen,
        minIf(first_at, {paid}) AS first_paid_at, maxIf(last_at, {paid}) AS last_paid_at,
        sumMapIf(skus, {paid}) AS sku_sums, minMapIf(names, {paid}) AS sku_names
    FROM (
        SELECT platform, district, township, status, count() AS n, sum(amount_fen) AS amount,
               sum(units) AS qty, sum(weight_g) AS grams, min(occurred_at) AS first_at,
               max(occurred_at) AS last_at, sumMap(`items.sku`, item_units, item_gmv_fen) AS skus,
               minMap(`items.sku`, `items.name`) AS names
        FROM order_steps WHERE channel_id = {{c:String}}
        GROUP BY platform, district, township, status
    )
    HAVING count() > 0 AND {latest_in_scope} {hint}
"""


def _top_skus(sums: tuple[list[str], list[int], list[int]], names: tuple[list[str], list[str]]) -> list[dict[str, Any]]:
    """Top 10 by GMV, ties by SKU (str order = UTF-8 byte order, as ClickHouse sorts)."""
    name_of = dict(zip(*names, strict=True))
    top = sorted(zip(*sums, strict=True), key=lambda s: (-s[2], s[0]))[:10]
    return [{"sku": sku, "name": name_of[sku], "units": int(u), "gmv_fen": int(g)} for sku, u, g in top]


async def summary(ch: ClickHouse, channel_id: str, scope: Scope, tp: TimeParams) -> dict[str, Any] | None:
    """The channel's running totals, or None when it does not exist for this scope.

    Two independent queries, run side by side: the orders (existence, scope and sums in
    one read of the p_channel projection) and the stream stats."""
    cond, params = region_condition(scope, "district", "township")
    latest_cond, _ = region_condition(scope, "latest.2", "latest.3")
    sql = _SUMMARY.format(
        latest=_LATEST, latest_in_scope=latest_cond, hint=_P_CHANNEL, paid=f"status = 'paid' AND {cond}",
        created=f"status = 'created' AND {cond}", refunded=f"status = 'refunded' AND {cond}",
    )  # fmt: skip
    rows, stats = await asyncio.gather(
        ch.query(sql, {"c": channel_id, **params}),
        ch.query(
            "SELECT count() AS n, any(platform) AS platform, max(views_total) AS views_total,"
            " max(viewers_online) AS viewers_peak FROM stream_stats WHERE channel_id = {c:String}",
            {"c": channel_id},
        ),
    )
    s = stats[0]
    if rows:
        o = rows[0]
        platform, district, township = o["latest"]
    elif scope.is_all and s["n"]:  # a channel known only from its stream stats
        o = {**ZERO, "sku_sums": ([], [], []), "sku_names": ([], [])}
        platform, district, township = s["platform"], "", ""
    else:
        return None
    paid, gmv, refund = int(o["paid_orders"]), int(o["gmv_fen"]), int(o["refund_fen"])
    first, last = (o["first_paid_at"], o["last_paid_at"]) if paid else (None, None)
    return {
        "channel_id": channel_id,
        "platform": platform,
        "district": _none_if_empty(district),
        "township": _none_if_empty(township),
        "paid_orders": paid,
        "gmv_fen": gmv,
        "units": int(o["units"]),
        "weight_g": int(o["weight_g"]),
        "created_orders": int(o["created_orders"]),
        "refunded_orders": int(o["refunded_orders"]),
        "refund_fen": refund,
        "net_gmv_fen": gmv - refund,
        "views_total": int(s["views_total"]) if s["n"] else None,
        "viewers_peak": int(s["viewers_peak"]) if s["n"] else None,
        "first_paid_at": tp.render(first),
        "last_paid_at": tp.render(last),
        "avg_order_fen": (2 * gmv + paid) // (2 * paid) if paid else None,  # round half up
        "seconds_per_order": (last - first).total_seconds() / (paid - 1) if paid > 1 and first and last else None,
        "top_skus": _top_skus(o["sku_sums"], o["sku_names"]),
    }

