"""Per-channel numbers: the list, the per-minute curve, the summary, a change marker.

Every counted row is stored once (processors.dedupe), so these are plain aggregations;
channel queries filter on ``channel_id``, the primary key's first column. A channel's
platform/district/township are those of its latest order event, and a scoped token sees
a channel only when that region is inside its scope: the check is a HAVING clause, so
out-of-scope channels are indistinguishable from missing ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.auth import Scope
from api.params import TimeParams
from api.queries.scope import region_condition
from processors.store import ClickHouse

_ORDER_MEASURES = """
    countIf(status = 'paid') AS paid_orders,
    sumIf(amount_fen, status = 'paid') AS gmv_fen,
    sumIf(units, status = 'paid') AS units,
    sumIf(weight_g, status = 'paid') AS weight_g,
    countIf(status = 'created') AS created_orders,
    countIf(status = 'refunded') AS refunded_orders,
    sumIf(amount_fen, status = 'refunded') AS refund_fen
"""

_CHANNEL_ATTRS = """
    argMax(platform, occurred_at) AS platform,
    argMax(district, occurred_at) AS district,
    argMax(township, occurred_at) AS township
"""


def _none_if_empty(value: str | None) -> str | None:
    return value or None


async def channel_in_scope(ch: ClickHouse, channel_id: str, scope: Scope) -> dict[str, Any] | None:
    """The channel's attributes, or None when it does not exist for this scope."""
    cond, params = region_condition(scope, "district", "township")
    rows = await ch.query(
        f"SELECT {_CHANNEL_ATTRS} FROM order_steps WHERE channel_id = {{c:String}}"  # noqa: S608 - fixed SQL
        f" HAVING count() > 0 AND {cond}",
        {"c": channel_id, **params},
    )
    if rows:
        return rows[0]
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
    cond, params = region_condition(scope, "district", "township")
    lo, hi = tp.bounds()
    bound = {"c": channel_id, "lo": lo, "hi": hi, **params}
    where = (
        "channel_id = {c:String} AND occurred_at >= {lo:DateTime64(3, 'UTC')}"
        " AND occurred_at < {hi:DateTime64(3, 'UTC')}"
    )
    orders = await ch.query(
        f"SELECT minute, {_ORDER_MEASURES} FROM order_steps WHERE {where} AND {cond} GROUP BY minute",  # noqa: S608
        bound,
    )
    stats = await ch.query(
        f"SELECT minute, max(views_total) AS views_total, max(viewers_online) AS viewers_peak"  # noqa: S608
        f" FROM stream_stats WHERE {where} GROUP BY minute",
        bound,
    )
    zero = {k: 0 for k in ("paid_orders", "gmv_fen", "units", "weight_g", "created_orders",
                           "refunded_orders", "refund_fen")}  # fmt: skip
    by_minute: dict[datetime, dict[str, Any]] = {}
    for r in orders:
        by_minute[r["minute"]] = {**{k: int(r[k]) for k in zero}, "views_total": None, "viewers_peak": None}
    for r in stats:
        cell = by_minute.setdefault(r["minute"], {**zero, "views_total": None, "viewers_peak": None})
        cell["views_total"] = int(r["views_total"])
        cell["viewers_peak"] = int(r["viewers_peak"])
    return [{"minute": tp.render(m), **by_minute[m]} for m in sorted(by_minute)]


async def summary(
    ch: ClickHouse, channel_id: str, attrs: dict[str, Any], scope: Scope, tp: TimeParams
) -> dict[str, Any]:
    cond, params = region_condition(scope, "district", "township")
    bound = {"c": channel_id, **params}
    o = (
        await ch.query(
            f"SELECT {_ORDER_MEASURES}, minIf(occurred_at, status = 'paid') AS first_paid_at,"  # noqa: S608
            f" maxIf(occurred_at, status = 'paid') AS last_paid_at"
            f" FROM order_steps WHERE channel_id = {{c:String}} AND {cond}",
            bound,
        )
    )[0]
    s = (
        await ch.query(
            "SELECT count() AS n, max(views_total) AS views_total, max(viewers_online) AS viewers_peak"
            " FROM stream_stats WHERE channel_id = {c:String}",
            {"c": channel_id},
        )
    )[0]
    skus = await ch.query(
        f"""SELECT sku, argMax(name, occurred_at) AS name, sum(toUInt64(q)) AS units, sum(q * p) AS gmv_fen
            FROM order_steps ARRAY JOIN items.sku AS sku, items.name AS name, items.quantity AS q,
                 items.unit_price_fen AS p
            WHERE channel_id = {{c:String}} AND status = 'paid' AND {cond}
            GROUP BY sku ORDER BY gmv_fen DESC, sku ASC LIMIT 10""",  # noqa: S608
        bound,
    )
    paid, gmv, refund = int(o["paid_orders"]), int(o["gmv_fen"]), int(o["refund_fen"])
    first, last = (o["first_paid_at"], o["last_paid_at"]) if paid else (None, None)
    return {
        "channel_id": channel_id,
        "platform": attrs["platform"],
        "district": _none_if_empty(attrs["district"]),
        "township": _none_if_empty(attrs["township"]),
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
        "top_skus": [
            {"sku": r["sku"], "name": r["name"], "units": int(r["units"]), "gmv_fen": int(r["gmv_fen"])}
            for r in skus
        ],
    }


async def change_marker(ch: ClickHouse, channel_id: str) -> tuple[Any, ...]:
    """Changes whenever a row of the channel is stored; cheap on the primary key."""
    rows = await ch.query(
        "SELECT (SELECT max(stored_at) FROM order_steps WHERE channel_id = {c:String}) AS o,"
        " (SELECT max(stored_at) FROM stream_stats WHERE channel_id = {c:String}) AS s",
        {"c": channel_id},
    )
    return (rows[0]["o"], rows[0]["s"])
