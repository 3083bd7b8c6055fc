"""A channel's alert episodes: read its per-minute series, then the pure rules of api.alerts.

Two reads, side by side: the paid/refunded counts per minute (from the ``p_minute``
projection, as the minutes curve) and, on the primary key, the channel's stream-stats
span and whether any of its rows was stored within the live window (contract §3).
Alerts describe the channel as a whole: the scope decides whether the caller may see
the channel (404 otherwise), not which of its orders count.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from api.alerts import Series, Thresholds, evaluate, message
from api.auth import Scope
from api.params import TimeParams
from api.queries.channels import channel_in_scope
from processors.store import ClickHouse

LIVE_WINDOW = timedelta(minutes=10)  # contract §3: stored within the last 10 minutes of processing time

_ORDERS = """
    SELECT toUnixTimestamp(minute) AS m, toString(status) AS st, count() AS n,
           min(occurred_at) AS lo, max(occurred_at) AS hi
    FROM order_steps WHERE channel_id = {c:String} GROUP BY minute, status
    SETTINGS preferred_optimize_projection_name = 'p_minute'
"""
# "stored since" rather than max(stored_at): a minmax index on stored_at can skip old granules
_STATS = """
    SELECT count() AS n, min(occurred_at) AS first_at, max(occurred_at) AS last_at,
           countIf(stored_at >= {live_since:DateTime64(3, 'UTC')})
           + (SELECT count() FROM order_steps
              WHERE channel_id = {c:String} AND stored_at >= {live_since:DateTime64(3, 'UTC')}) AS recent
    FROM stream_stats WHERE channel_id = {c:String}
"""


def _epoch(t: datetime) -> float:
    """Stored times are UTC; the driver may hand them over naive."""
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


async def load_series(ch: ClickHouse, channel_id: str, now: datetime | None = None) -> Series | None:
    """The channel's series, or None when it has no order or stream-stats event."""
    live_since = (now or datetime.now(UTC)) - LIVE_WINDOW
    orders, stats = await asyncio.gather(
        ch.query(_ORDERS, {"c": channel_id}),
        ch.query(_STATS, {"c": channel_id, "live_since": live_since}),
    )
    s = stats[0]
    spans = [(_epoch(r["lo"]), _epoch(r["hi"])) for r in orders]
    if s["n"]:
        spans.append((_epoch(s["first_at"]), _epoch(s["last_at"])))
    if not spans:
        return None
    paid: dict[int, int] = {}
    refunded: dict[int, int] = {}
    for r in orders:
        if r["st"] == "paid":
            paid[int(r["m"])] = int(r["n"])
        elif r["st"] == "refunded":
            refunded[int(r["m"])] = int(r["n"])
    return Series(paid, refunded, min(lo for lo, _ in spans), max(hi for _, hi in spans), int(s["recent"]) > 0)


async def alerts_of(
    store: ClickHouse, channel_id: str, th: Thresholds, tp: TimeParams | None = None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The contract's alert list of a channel the caller may see, newest first."""
    series = await load_series(store, channel_id, now)
    if series is None:
        return []
    tz = (tp or TimeParams()).tzinfo
    return [
        {
            "rule": ep.rule,
            "state": ep.state,
            "since": datetime.fromtimestamp(ep.since, tz).isoformat(),
            "until": None if ep.until is None else datetime.fromtimestamp(ep.until, tz).isoformat(),
            "message": message(ep, th),
        }
        for ep in evaluate(series, th)
    ]


async def channel_alerts(
    store: ClickHouse, channel_id: str, scope: Scope, th: Thresholds, tp: TimeParams | None = None
) -> list[dict[str, Any]]:
    """For callers that have not checked the scope (the live stream has): [] outside it."""
    if not scope.is_all and await channel_in_scope(store, channel_id, scope) is None:
        return []
    return await alerts_of(store, channel_id, th, tp)
