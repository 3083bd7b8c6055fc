"""A channel's alert episodes: read its per-minute series, then the pure rules of api.alerts.

Two reads, side by side: the paid/refunded counts per minute (from the ``p_minute``
projection, as the minutes curve) and, on the primary key, the channel's stream-stats
span plus the newest ``stored_at`` of its rows against ClickHouse's own ``now64()``, so
every API process judges "live" by the same clock.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from api.alerts import Series, Thresholds, evaluate, message
from api.auth import Scope
from api.params import TimeParams
from api.queries.scope import region_condition
from livesales.settings import Settings
from processors.store import ClickHouse

LIVE_WINDOW_S = 600  # contract §3: stored within the last 10 minutes of processing time

_STATS = """
    SELECT count() AS n, min(occurred_at) AS first_at, max(occurred_at) AS last_at,
           greatest(max(stored_at),
                    (SELECT max(stored_at) FROM order_steps WHERE channel_id = {c:String})) AS stored,
           now64(3, 'UTC') AS now
    FROM stream_stats WHERE channel_id = {c:String}
"""


def thresholds(settings: Settings) -> Thresholds:
    return Thresholds(settings.alert_silence_minutes, settings.alert_refund_spike_pct)


def _epoch(t: datetime) -> float:
    """Stored times are UTC; the driver may hand them over naive."""
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


async def load_series(ch: ClickHouse, channel_id: str, scope: Scope) -> Series | None:
    """The channel's series, or None when it has no event (in this scope)."""
    cond, params = region_condition(scope, "district", "township")
    sql = f"""
        SELECT toUnixTimestamp(minute) AS m, toString(status) AS st, count() AS n,
               min(occurred_at) AS lo, max(occurred_at) AS hi
        FROM order_steps WHERE channel_id = {{c:String}} AND {cond} GROUP BY minute, status
        SETTINGS preferred_optimize_projection_name = 'p_minute'
    """  # noqa: S608 - fixed SQL; the scope is bound parameters
    orders, stats = await asyncio.gather(
        ch.query(sql, {"c": channel_id, **params}),
        ch.query(_STATS, {"c": channel_id}),
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
    live = _epoch(s["now"]) - _epoch(s["stored"]) <= LIVE_WINDOW_S
    return Series(paid, refunded, min(lo for lo, _ in spans), max(hi for _, hi in spans), live)


async def channel_alerts(
    store: ClickHouse, channel_id: str, scope: Scope, settings: Settings, tp: TimeParams | None = None
) -> list[dict[str, Any]]:
    """The contract's alert list for one channel, newest first ([] for an unknown channel).

    The caller checks the scope first (a 404 outside it), as for the other channel routes;
    the live SSE stream can push this list whenever it changes."""
    series = await load_series(store, channel_id, scope)
    if series is None:
        return []
    th = thresholds(settings)
    tp = tp or TimeParams()
    tz = tp.tzinfo
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
