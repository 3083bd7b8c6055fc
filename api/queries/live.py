"""What live screens show, for many channels at once, and the change markers that say
when to show it again.

A chDB query costs ~9 ms of CPU however little it reads (planning; docs/BENCHMARKS.md),
and a channel's payload is four of them (summary and minutes, orders and stream stats
each). Asked channel by channel, eleven watched channels cost ~500 ms of CPU a round;
asked together, grouped by ``channel_id``, ~50 ms. So the live hub computes the due
views that share a scope, tz and window in one round of these four queries.

The numbers are those of api.queries.channels (``summary`` and ``minutes``), with
``channel_id`` added to every grouping; tests/api/test_live_payload.py holds the two
equal, so a change to one that the other misses fails there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from api.auth import Scope
from api.params import TimeParams
from api.queries.alerts import alerts_of
from api.queries.channels import _BY_STATUS, _LATEST, _P_CHANNEL, ZERO, _ceil_minute, _none_if_empty, _top_skus, fold
from api.queries.scope import region_condition
from livesales.settings import Settings
from processors.store import ClickHouse

Marker = tuple[datetime | None, datetime | None]  # newest stored_at of the channel's orders, stats
Payload = dict[str, Any]

_SUMMARIES = """
    SELECT channel_id, {latest},
        sumIf(n, {paid}) AS paid_orders, sumIf(amount, {paid}) AS gmv_fen,
        sumIf(qty, {paid}) AS units, sumIf(grams, {paid}) AS weight_g,
        sumIf(n, {created}) AS created_orders,
        sumIf(n, {refunded}) AS refunded_orders, sumIf(amount, {refunded}) AS refund_fen,
        minIf(first_at, {paid}) AS first_paid_at, maxIf(last_at, {paid}) AS last_paid_at,
        sumMapIf(skus, {paid}) AS sku_sums, minMapIf(names, {paid}) AS sku_names
    FROM (
        SELECT channel_id, platform, district, township, status, count() AS n, sum(amount_fen) AS amount,
               sum(units) AS qty, sum(weight_g) AS grams, min(occurred_at) AS first_at,
               max(occurred_at) AS last_at, sumMap(`items.sku`, item_units, item_gmv_fen) AS skus,
               minMap(`items.sku`, `items.name`) AS names
        FROM order_steps WHERE channel_id IN {{ids:Array(String)}}
        GROUP BY channel_id, platform, district, township, status
    )
    GROUP BY channel_id
    HAVING count() > 0 AND {latest_in_scope} {hint}
"""


async def live_payloads(
    ch: ClickHouse, channel_ids: Sequence[str], scope: Scope, tp: TimeParams, settings: Settings
) -> dict[str, Payload | None]:
    """Per channel, one ``update`` event's data, or None when it is not (or no longer)
    in scope. Anything the live screen needs goes into ``payload`` below, as one more key."""
    summaries, minutes = await asyncio.gather(
        _summaries(ch, channel_ids, scope, tp), _minutes(ch, channel_ids, scope, tp)
    )
    present = [c for c in channel_ids if summaries.get(c) is not None]
    alerts = await asyncio.gather(*(alerts_of(ch, c, settings, tp) for c in present))
    out: dict[str, Payload | None] = dict.fromkeys(channel_ids)
    for c, channel_alerts in zip(present, alerts, strict=True):
        out[c] = {
            "summary": summaries[c],
            "minutes": {"channel_id": c, "tz": tp.tz, "minutes": minutes.get(c, [])},
            "alerts": channel_alerts,
        }
    return out


async def _summaries(
    ch: ClickHouse, ids: Sequence[str], scope: Scope, tp: TimeParams
) -> dict[str, dict[str, Any]]:
    """api.queries.channels.summary for each channel that exists for the scope."""
    cond, params = region_condition(scope, "district", "township")
    latest_cond, _ = region_condition(scope, "latest.2", "latest.3")
    sql = _SUMMARIES.format(
        latest=_LATEST, latest_in_scope=latest_cond, hint=_P_CHANNEL, paid=f"status = 'paid' AND {cond}",
        created=f"status = 'created' AND {cond}", refunded=f"status = 'refunded' AND {cond}",
    )  # fmt: skip
    rows, stats = await asyncio.gather(
        ch.query(sql, {"ids": list(ids), **params}),
        ch.query(
            "SELECT channel_id, count() AS n, any(platform) AS platform, max(views_total) AS views_total,"
            " max(viewers_online) AS viewers_peak FROM stream_stats WHERE channel_id IN {ids:Array(String)}"
            " GROUP BY channel_id",
            {"ids": list(ids)},
        ),
    )
    orders = {r["channel_id"]: r for r in rows}
    stats_of = {r["channel_id"]: r for r in stats}
    out: dict[str, dict[str, Any]] = {}
    for c in ids:
        s = stats_of.get(c)
        if c in orders:
            o = orders[c]
            platform, district, township = o["latest"]
        elif scope.is_all and s is not None:  # a channel known only from its stream stats
            o = {**ZERO, "sku_sums": ([], [], []), "sku_names": ([], [])}
            platform, district, township = s["platform"], "", ""
        else:
            continue
        paid, gmv, refund = int(o["paid_orders"]), int(o["gmv_fen"]), int(o["refund_fen"])
        first, last = (o["first_paid_at"], o["last_paid_at"]) if paid else (None, None)
        out[c] = {
            "channel_id": c,
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
            "views_total": int(s["views_total"]) if s is not None else None,
            "viewers_peak": int(s["viewers_peak"]) if s is not None else None,
            "first_paid_at": tp.render(first),
            "last_paid_at": tp.render(last),
            "avg_order_fen": (2 * gmv + paid) // (2 * paid) if paid else None,  # round half up
            "seconds_per_order": (last - first).total_seconds() / (paid - 1) if paid > 1 and first and last else None,
            "top_skus": _top_skus(o["sku_sums"], o["sku_names"]),
        }
    return out


async def _minutes(
    ch: ClickHouse, ids: Sequence[str], scope: Scope, tp: TimeParams
) -> dict[str, list[dict[str, Any]]]:
    """api.queries.channels.minutes for each channel (no existence check: the summary's)."""
    cond, params = region_condition(scope, "district", "township")
    lo, hi = tp.bounds()
    bound = {"ids": list(ids), "lo": _ceil_minute(lo), "hi": _ceil_minute(hi), **params}
    where = ("channel_id IN {ids:Array(String)} AND minute >= {lo:DateTime('UTC')}"
             " AND minute < {hi:DateTime('UTC')}")  # fmt: skip
    orders, stats = await asyncio.gather(
        ch.query(
            f"SELECT channel_id, toUnixTimestamp(minute) AS m, {_BY_STATUS} FROM order_steps"  # noqa: S608
            f" WHERE {where} AND {cond} GROUP BY channel_id, minute, status"
            " SETTINGS preferred_optimize_projection_name = 'p_minute'",
            bound,
        ),
        ch.query(
            "SELECT channel_id, toUnixTimestamp(minute) AS m, max(views_total) AS views_total,"  # noqa: S608
            f" max(viewers_online) AS viewers_peak FROM stream_stats WHERE {where} GROUP BY channel_id, minute",
            bound,
        ),
    )
    empty = {**ZERO, "views_total": None, "viewers_peak": None}
    cells: dict[str, dict[int, dict[str, Any]]] = {}
    for r in orders:
        fold(cells.setdefault(r["channel_id"], {}).setdefault(r["m"], dict(empty)), r)
    for r in stats:
        cell = cells.setdefault(r["channel_id"], {}).setdefault(r["m"], dict(empty))
        cell["views_total"] = int(r["views_total"])
        cell["viewers_peak"] = int(r["viewers_peak"])
    tz = tp.tzinfo
    return {
        c: [{"minute": datetime.fromtimestamp(m, tz).isoformat(), **by_minute[m]} for m in sorted(by_minute)]
        for c, by_minute in cells.items()
    }


async def change_markers(ch: ClickHouse, channel_ids: Collection[str]) -> dict[str, Marker]:
    """Per channel, the newest ``stored_at`` of its order rows and of its stream stats:
    it moves whenever any process stores a row of the channel. One query for all the
    channels watched, each a primary-key range; a channel without rows is left out."""
    rows = await ch.query(
        "SELECT channel_id, max(stored_at) AS at, 0 AS stats FROM order_steps"
        " WHERE channel_id IN {ids:Array(String)} GROUP BY channel_id"
        " UNION ALL"
        " SELECT channel_id, max(stored_at) AS at, 1 AS stats FROM stream_stats"
        " WHERE channel_id IN {ids:Array(String)} GROUP BY channel_id",
        {"ids": list(channel_ids)},
    )
    markers: dict[str, list[datetime | None]] = {}
    for r in rows:
        markers.setdefault(r["channel_id"], [None, None])[int(r["stats"])] = r["at"]
    return {c: (m[0], m[1]) for c, m in markers.items()}
