"""Per-channel numbers: the list, the per-minute curve, the summary, a change marker.

Every counted row is stored once (processors.dedupe), so these are plain aggregations;
channel queries filter on ``channel_id``, the primary key's first column. A channel's
platform/district/township are those of its latest order event, and a scoped token sees
a channel only when that region is inside its scope: the check is a HAVING clause, so
out-of-scope channels are indistinguishable from missing ones.
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
    sum(weight_g) AS weight, min(occurred_at) AS first_at, max(occurred_at) AS last_at
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


async def channel_in_scope(ch: ClickHouse, channel_id: str, scope: Scope) -> dict[str, Any] | None:
    """The channel's attributes, or None when it does not exist for this scope."""
    cond, params = region_condition(scope, "district", "township")
    # the latest order row, read backwards along the primary key (channel_id, minute, …)
    rows = await ch.query(
        "SELECT platform, district, township FROM (SELECT platform, district, township FROM order_steps"  # noqa: S608
        " WHERE channel_id = {c:String} ORDER BY minute DESC, occurred_at DESC LIMIT 1)"
        f" WHERE {cond}",
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
    # a minute is in [from, to) when its start is
    where = "channel_id = {c:String} AND minute >= {lo:DateTime('UTC')} AND minute < {hi:DateTime('UTC')}"
    bound = {**bound, "lo": _ceil_minute(lo), "hi": _ceil_minute(hi)}
    orders, stats = await asyncio.gather(  # independent: run them side by side
        ch.query(
            f"SELECT minute, {_BY_STATUS} FROM order_steps WHERE {where} AND {cond}"  # noqa: S608
            " GROUP BY minute, status",
            bound,
        ),
        ch.query(
            f"SELECT minute, max(views_total) AS views_total, max(viewers_online) AS viewers_peak"  # noqa: S608
            f" FROM stream_stats WHERE {where} GROUP BY minute",
            bound,
        ),
    )
    empty = {**ZERO, "views_total": None, "viewers_peak": None}
    by_minute: dict[datetime, dict[str, Any]] = {}
    for r in orders:
        fold(by_minute.setdefault(r["minute"], dict(empty)), r)
    for r in stats:
        cell = by_minute.setdefault(r["minute"], dict(empty))
        cell["views_total"] = int(r["views_total"])
        cell["viewers_peak"] = int(r["viewers_peak"])
    return [{"minute": tp.render(m), **by_minute[m]} for m in sorted(by_minute)]


async def summary(ch: ClickHouse, channel_id: str, scope: Scope, tp: TimeParams) -> dict[str, Any] | None:
    """The channel's running totals, or None when it does not exist for this scope.

    The four queries are independent and run side by side; each applies the scope itself,
    so nothing out of scope is read even before the existence check answers."""
    cond, params = region_condition(scope, "district", "township")
    bound = {"c": channel_id, **params}
    attrs, by_status, stats, skus = await asyncio.gather(
        channel_in_scope(ch, channel_id, scope),
        ch.query(
            f"SELECT {_BY_STATUS} FROM order_steps WHERE channel_id = {{c:String}} AND {cond}"  # noqa: S608
            " GROUP BY status",
            bound,
        ),
        ch.query(
            "SELECT count() AS n, max(views_total) AS views_total, max(viewers_online) AS viewers_peak"
            " FROM stream_stats WHERE channel_id = {c:String}",
            {"c": channel_id},
        ),
        # any(name): a SKU's name is the same on its orders; argMax by time cost 40% more
        ch.query(
            f"""SELECT sku, any(name) AS name, sum(toUInt64(q)) AS units, sum(q * p) AS gmv_fen
                FROM order_steps ARRAY JOIN items.sku AS sku, items.name AS name, items.quantity AS q,
                     items.unit_price_fen AS p
                WHERE channel_id = {{c:String}} AND status = 'paid' AND {cond}
                GROUP BY sku ORDER BY gmv_fen DESC, sku ASC LIMIT 10""",  # noqa: S608
            bound,
        ),
    )
    if attrs is None:
        return None
    o = dict(ZERO)
    first = last = None
    for r in by_status:
        fold(o, r)
        if r["status"] == "paid":
            first, last = r["first_at"], r["last_at"]
    s = stats[0]
    paid, gmv, refund = o["paid_orders"], o["gmv_fen"], o["refund_fen"]
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
