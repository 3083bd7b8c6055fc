"""Per-channel numbers: the per-minute curve, the summary, a change marker (the list: api.queries.channel_list).

Every counted row is stored once (processors.dedupe), so these are plain aggregations;
channel queries filter on ``channel_id``, the primary key's first column. A channel's
platform/district/township are its registry entry's, else its earliest order's
(api.queries.scope), and a scoped token sees a channel, with all of its orders, only when
that place is inside its scope: the check is a WHERE clause on that place, so
out-of-scope channels are indistinguishable from missing ones.

Queries are written so that ClickHouse answers them from the projections of
``order_steps`` (schemas.ddl): ``p_channel`` (per channel, region and status, with SKU
sums) for the existence check and the summary, ``p_minute`` for the per-minute curve.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from api.auth import Scope
from api.params import TimeParams
from api.queries.channel_list import LIVE_WINDOW
from api.queries.scope import in_scope
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

def _ceil_minute(t: datetime) -> datetime:
    """The first minute start at or after ``t`` (minute buckets are keyed by their start)."""
    floor = t.replace(second=0, microsecond=0)
    return floor if floor == t else floor + timedelta(minutes=1)


def _none_if_empty(value: str | None) -> str | None:
    return value or None


def _utc(value: datetime | None) -> datetime | None:
    """The driver hands some UTC columns back naive (inside tuples, through views)."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


# Naming the projection spares the optimizer weighing every one of them (~1.5 ms a query).
_P_CHANNEL = "SETTINGS preferred_optimize_projection_name = 'p_channel'"


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


# One channel's parts, each a small read pruned by a primary key, run side by side and
# merged by the rule of api.queries.scope (the union in channel_rows() costs several
# times their sum for one channel: measured on the 2M-row API benchmark store).
_PLACE = f"""
    SELECT channel_id,
           argMin(tuple(platform, district, township), tuple(f, district, township, platform)) AS place,
           min(f) AS first_any, max(l) AS last_any
    FROM (
        SELECT toString(channel_id) AS channel_id, platform, district, township, status, count() AS n,
               min(occurred_at) AS f, max(occurred_at) AS l
        FROM order_steps WHERE channel_id IN {{ids:Array(String)}}
        GROUP BY channel_id, platform, district, township, status
    )
    GROUP BY channel_id {_P_CHANNEL}
"""  # noqa: S608 - fixed SQL; the channels are a bound parameter
_STATS = """
    SELECT toString(channel_id) AS channel_id, any(platform) AS platform, max(views_total) AS views_total,
           max(viewers_online) AS viewers_peak, sum(viewers_online) AS viewers_sum, count() AS samples,
           min(occurred_at) AS first_at, max(occurred_at) AS last_at
    FROM stream_stats WHERE channel_id IN {ids:Array(String)} GROUP BY channel_id
"""
_REGISTRY = """
    SELECT channel_id, platform, title, host, district, township, scheduled_start, scheduled_end
    FROM channels_current WHERE channel_id IN {ids:Array(String)}
"""
_LIVE = """
    SELECT DISTINCT channel_id FROM (
        SELECT toString(channel_id) AS channel_id FROM order_steps
        WHERE channel_id IN {ids:Array(String)} AND stored_at >= {since:DateTime64(3, 'UTC')} LIMIT 1 BY channel_id
        UNION ALL
        SELECT toString(channel_id) FROM stream_stats
        WHERE channel_id IN {ids:Array(String)} AND stored_at >= {since:DateTime64(3, 'UTC')} LIMIT 1 BY channel_id
    )
"""


def _earliest(*times: datetime | None) -> datetime | None:
    known = [t for t in times if t is not None]
    return min(known) if known else None


def _latest(*times: datetime | None) -> datetime | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


Parts = tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]  # head, orders row, stats row


async def _channel_parts(
    ch: ClickHouse, ids: Sequence[str], scope: Scope, orders_sql: str, now: datetime | None
) -> dict[str, Parts]:
    """Per channel that exists for this scope: ``(head, orders row or None, stats row or
    None)``. ``orders_sql`` must answer ``channel_id``, ``place``, ``first_any`` and
    ``last_any`` per channel in ``{ids}``."""
    at = _now(now)
    bound = {"ids": list(ids)}
    orders, stats, registry, live = await asyncio.gather(
        ch.query(orders_sql, bound),
        ch.query(_STATS, bound),
        ch.query(_REGISTRY, bound),
        ch.query(_LIVE, {**bound, "since": at - LIVE_WINDOW}),
    )
    orders_of = {r["channel_id"]: r for r in orders}
    stats_of = {r["channel_id"]: r for r in stats}
    registry_of = {r["channel_id"]: r for r in registry}
    live_ids = {r["channel_id"] for r in live}
    out: dict[str, Parts] = {}
    for c in ids:
        o, s, reg = orders_of.get(c), stats_of.get(c), registry_of.get(c)
        head: dict[str, Any] = {"title": None, "host": None, "scheduled_start": None, "scheduled_end": None}
        if reg is not None:  # the registry places the channel (contract §3) ...
            head |= reg
        elif o is not None:  # ... else its earliest order does
            head["platform"], head["district"], head["township"] = o["place"]
        elif s is not None:  # known only from stream stats: no place
            head |= {"platform": s["platform"], "district": "", "township": ""}
        else:
            continue
        if not in_scope(scope, head["district"], head["township"]):
            continue
        head["channel_id"] = c
        head["scheduled_start"], head["scheduled_end"] = _utc(head["scheduled_start"]), _utc(head["scheduled_end"])
        head["first_at"] = _earliest(_utc(o["first_any"]) if o else None, _utc(s["first_at"]) if s else None)
        head["last_at"] = _latest(_utc(o["last_any"]) if o else None, _utc(s["last_at"]) if s else None)
        start = head["scheduled_start"]
        head["status"] = "live" if c in live_ids else "scheduled" if start is not None and start > at else "ended"
        out[c] = (head, o, s)
    return out


async def channel_row(
    ch: ClickHouse, channel_id: str, scope: Scope, now: datetime | None = None
) -> dict[str, Any] | None:
    """The channel's place, registry fields, status and clock (``last_at``), or None when
    it does not exist for this scope (api.queries.scope: placed by registry, else
    earliest order)."""
    parts = (await _channel_parts(ch, [channel_id], scope, _PLACE, now)).get(channel_id)
    return parts[0] if parts is not None else None


async def channel_in_scope(ch: ClickHouse, channel_id: str, scope: Scope) -> dict[str, Any] | None:
    """The channel's attributes, or None when it does not exist for this scope."""
    return await channel_row(ch, channel_id, scope)


async def minutes(ch: ClickHouse, channel_id: str, scope: Scope, tp: TimeParams) -> list[dict[str, Any]]:
    """The channel's minutes in [from, to); the caller checks that the channel exists for
    the scope (a visible channel shows all its orders: api.queries.scope)."""
    lo, hi = tp.bounds()
    # a minute is in [from, to) when its start is
    bound = {"c": channel_id, "lo": _ceil_minute(lo), "hi": _ceil_minute(hi)}
    where = "channel_id = {c:String} AND minute >= {lo:DateTime('UTC')} AND minute < {hi:DateTime('UTC')}"
    # minutes as epoch seconds, rendered with one tzinfo: aware datetimes cost ~5 ms of Python here
    orders, stats = await asyncio.gather(  # independent: run them side by side
        ch.query(
            f"SELECT toUnixTimestamp(minute) AS m, {_BY_STATUS} FROM order_steps WHERE {where}"  # noqa: S608
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


# The summary's sums in one read of p_channel: every order of the channel (its place, not
# each order's region, decides the scope: channel_row), and the SKU maps. sumMap's units
# are never 0, so no SKU is dropped; minMap picks one name per SKU deterministically (a
# SKU's orders carry the same name).
_SUMMARY = f"""
    SELECT channel_id,
        sumIf(n, status = 'paid') AS paid_orders, sumIf(amount, status = 'paid') AS gmv_fen,
        sumIf(qty, status = 'paid') AS units, sumIf(grams, status = 'paid') AS weight_g,
        sumIf(n, status = 'created') AS created_orders,
        sumIf(n, status = 'refunded') AS refunded_orders, sumIf(amount, status = 'refunded') AS refund_fen,
        minIf(first_at, status = 'paid') AS first_paid_at, maxIf(last_at, status = 'paid') AS last_paid_at,
        sumMapIf(skus, status = 'paid') AS sku_sums, minMapIf(names, status = 'paid') AS sku_names,
        argMin(tuple(platform, district, township), tuple(first_at, district, township, platform)) AS place,
        min(first_at) AS first_any, max(last_at) AS last_any
    FROM (
        SELECT toString(channel_id) AS channel_id, platform, district, township, status, count() AS n,
               sum(amount_fen) AS amount, sum(units) AS qty, sum(weight_g) AS grams, min(occurred_at) AS first_at,
               max(occurred_at) AS last_at, sumMap(`items.sku`, item_units, item_gmv_fen) AS skus,
               minMap(`items.sku`, `items.name`) AS names
        FROM order_steps WHERE channel_id IN {{ids:Array(String)}}
        GROUP BY channel_id, platform, district, township, status
    )
    GROUP BY channel_id {_P_CHANNEL}
"""  # noqa: S608 - fixed SQL; the channels are a bound parameter

# Paid orders in the pace window (clock - 30 min, clock]; the minute bound lets the
# primary key prune to the window's granules, so this reads a few rows of one channel,
# never the table.
PACE_WINDOW = timedelta(minutes=30)
_PACE = """
    SELECT count() AS n, sum(amount_fen) AS gmv FROM order_steps
    WHERE channel_id = {c:String} AND status = 'paid'
      AND minute >= toStartOfMinute({lo:DateTime64(3, 'UTC')})
      AND occurred_at > {lo:DateTime64(3, 'UTC')} AND occurred_at <= {clock:DateTime64(3, 'UTC')}
"""


def _top_skus(sums: tuple[list[str], list[int], list[int]], names: tuple[list[str], list[str]]) -> list[dict[str, Any]]:
    """Top 10 by GMV, ties by SKU (str order = UTF-8 byte order, as ClickHouse sorts)."""
    name_of = dict(zip(*names, strict=True))
    top = sorted(zip(*sums, strict=True), key=lambda s: (-s[2], s[0]))[:10]
    return [{"sku": sku, "name": name_of[sku], "units": int(u), "gmv_fen": int(g)} for sku, u, g in top]


def half_up(num: int, den: int) -> int:
    """``num / den`` rounded half up, in integers (contract §6 says "rounded"; a float
    would misround ties such as 0.5 and lose exactness past 2**53 fen)."""
    return (2 * num + den) // (2 * den)


def live_figures(gmv: int, paid: int, refunded: int, stats: dict[str, Any] | None) -> dict[str, Any]:
    """The 直播大屏 figures of contract v1.2 §6, each null where it is undefined.

    ``gpm_fen`` (千次观看成交) = round(gmv × 1000 / views_total): null without stream stats
    or with 0 views; ``viewers_avg`` (平均在线) = the mean of every stored
    ``viewers_online`` sample, rounded; ``refund_rate`` (退款率) = refunded steps / paid
    orders to 4 decimals (above 1 when partial refunds each count), null with no paid order.
    """
    views = int(stats["views_total"]) if stats is not None else 0
    samples = int(stats["samples"]) if stats is not None else 0
    return {
        "gpm_fen": half_up(gmv * 1000, views) if views else None,
        "viewers_avg": half_up(int(stats["viewers_sum"]), samples) if stats is not None and samples else None,
        "refund_rate": half_up(refunded * 10_000, paid) / 10_000 if paid else None,
    }


def project(
    total: int, in_window: int, clock: datetime | None, first_at: datetime | None, end: datetime | None
) -> int | None:
    """``total`` at ``end`` if the pace of the window holds (docs/DESIGN.md, "Channels").

    The window is the last 30 minutes of the channel's clock, shortened to the time since
    its first event when the channel is younger (at least one minute); None without a
    scheduled end, without events, or once the clock has reached the end."""
    if end is None or clock is None or first_at is None or clock >= end:
        return None
    window = max(60.0, min(PACE_WINDOW.total_seconds(), (clock - first_at).total_seconds()))
    return total + round(in_window * (end - clock).total_seconds() / window)


async def summary(
    ch: ClickHouse, channel_id: str, scope: Scope, tp: TimeParams, now: datetime | None = None
) -> dict[str, Any] | None:
    """The channel's running totals, or None when it does not exist for this scope."""
    return (await summaries(ch, [channel_id], scope, tp, now)).get(channel_id)


async def summaries(
    ch: ClickHouse, channel_ids: Sequence[str], scope: Scope, tp: TimeParams, now: datetime | None = None
) -> dict[str, dict[str, Any]]:
    """The summary of each channel that exists for this scope (the live screens ask for
    many at once: a chDB query costs ~9 ms of planning however little it reads).

    Four small reads side by side, each pruned to the channels by a primary key (orders
    sums and place from p_channel, stream stats, registry, "stored lately"), then, only
    for channels with a scheduled end still ahead of their clock, the pace windows."""
    parts = await _channel_parts(ch, channel_ids, scope, _SUMMARY, now)
    heads = [h for h, _, _ in parts.values()]
    due = [(h["channel_id"], h["last_at"]) for h in heads if _ends_after_clock(h)]
    paces = await asyncio.gather(
        *(ch.query(_PACE, {"c": c, "lo": clock - PACE_WINDOW, "clock": clock}) for c, clock in due)
    )
    pace_of = {c: (int(p[0]["n"]), int(p[0]["gmv"])) if p else (0, 0) for (c, _), p in zip(due, paces, strict=True)}
    return {c: _summary(h, o, s, pace_of.get(c), tp) for c, (h, o, s) in parts.items()}


def _ends_after_clock(head: dict[str, Any]) -> bool:
    clock, end = head["last_at"], head["scheduled_end"]
    return clock is not None and end is not None and bool(clock < end)


def _summary(
    head: dict[str, Any], orders: dict[str, Any] | None, s: dict[str, Any] | None, pace: tuple[int, int] | None,
    tp: TimeParams,
) -> dict[str, Any]:  # fmt: skip
    o: dict[str, Any] = orders if orders is not None else {**ZERO, "sku_sums": ([], [], []), "sku_names": ([], [])}
    paid, gmv, refund = int(o["paid_orders"]), int(o["gmv_fen"]), int(o["refund_fen"])
    first, last = (_utc(o["first_paid_at"]), _utc(o["last_paid_at"])) if paid else (None, None)
    clock, end, since = head["last_at"], head["scheduled_end"], head["first_at"]
    n, window_gmv = pace if pace is not None else (0, 0)
    return {
        "channel_id": head["channel_id"],
        "platform": head["platform"],
        "district": _none_if_empty(head["district"]),
        "township": _none_if_empty(head["township"]),
        "title": head["title"],
        "host": head["host"],
        "status": head["status"],
        "scheduled_end": tp.render(end),
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
        "avg_order_fen": half_up(gmv, paid) if paid else None,
        "seconds_per_order": (last - first).total_seconds() / (paid - 1) if paid > 1 and first and last else None,
        "projected_paid_orders": project(paid, n, clock, since, end) if pace is not None else None,
        "projected_gmv_fen": project(gmv, window_gmv, clock, since, end) if pace is not None else None,
        "top_skus": _top_skus(o["sku_sums"], o["sku_names"]),
        **live_figures(gmv, paid, int(o["refunded_orders"]), s),
    }

