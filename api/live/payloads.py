"""What live screens show, for many channels at once, and the change markers that say
when to show it again.

A chDB query costs ~9 ms of CPU however little it reads (planning; docs/BENCHMARKS.md),
and a channel's payload is four of them (summary and minutes, orders and stream stats
each). Asked channel by channel, eleven watched channels cost ~500 ms of CPU a round;
asked together, grouped by ``channel_id``, ~50 ms. So the live hub computes the due
views that share a scope, tz and window in one round of these four queries.

The summaries are api.queries.channels' own (``summaries``); the minutes are its
``minutes`` with ``channel_id`` added to the grouping; tests/api/test_live_payload.py
holds them equal, so a change to one that the other misses fails there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from api.alerts import Thresholds
from api.auth import Scope
from api.params import TimeParams
from api.queries.alerts import alerts_of
from api.queries.channels import _BY_STATUS, ZERO, _ceil_minute, fold, summaries
from processors.store import ClickHouse

# newest stored_at of the channel's orders, stream stats and registry entries
Marker = tuple[datetime | None, datetime | None, datetime | None]
Payload = dict[str, Any]

async def live_payloads(
    ch: ClickHouse, channel_ids: Sequence[str], scope: Scope, tp: TimeParams, th: Thresholds
) -> dict[str, Payload | None]:
    """Per channel, one ``update`` event's data, or None when it is not (or no longer)
    in scope. Anything the live screen needs goes into ``payload`` below, as one more key."""
    heads, minutes = await asyncio.gather(
        summaries(ch, channel_ids, scope, tp), _minutes(ch, channel_ids, tp)
    )
    present = [c for c in channel_ids if heads.get(c) is not None]
    alerts = await asyncio.gather(*(alerts_of(ch, c, th, tp) for c in present))
    out: dict[str, Payload | None] = dict.fromkeys(channel_ids)
    for c, channel_alerts in zip(present, alerts, strict=True):
        out[c] = {
            "summary": heads[c],
            "minutes": {"channel_id": c, "tz": tp.tz, "minutes": minutes.get(c, [])},
            "alerts": channel_alerts,
        }
    return out


async def _minutes(ch: ClickHouse, ids: Sequence[str], tp: TimeParams) -> dict[str, list[dict[str, Any]]]:
    """api.queries.channels.minutes for each channel (no existence check: the summary's;
    a visible channel shows all its orders, api.queries.scope)."""
    lo, hi = tp.bounds()
    bound = {"ids": list(ids), "lo": _ceil_minute(lo), "hi": _ceil_minute(hi)}
    where = ("channel_id IN {ids:Array(String)} AND minute >= {lo:DateTime('UTC')}"
             " AND minute < {hi:DateTime('UTC')}")  # fmt: skip
    orders, stats = await asyncio.gather(
        ch.query(
            f"SELECT channel_id, toUnixTimestamp(minute) AS m, {_BY_STATUS} FROM order_steps"  # noqa: S608
            f" WHERE {where} GROUP BY channel_id, minute, status"
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
    """Per channel, the newest ``stored_at`` of its order rows, of its stream stats and of
    its registry entries (title, host, region, schedule: a move changes who may see it):
    it moves whenever any process stores a row of the channel. One query for all the
    channels watched, each a primary-key range; a channel without rows is left out."""
    rows = await ch.query(
        "SELECT channel_id, max(stored_at) AS at, 0 AS part FROM order_steps"
        " WHERE channel_id IN {ids:Array(String)} GROUP BY channel_id"
        " UNION ALL"
        " SELECT channel_id, max(stored_at) AS at, 1 AS part FROM stream_stats"
        " WHERE channel_id IN {ids:Array(String)} GROUP BY channel_id"
        " UNION ALL"
        " SELECT channel_id, max(stored_at) AS at, 2 AS part FROM channel_registry"
        " WHERE channel_id IN {ids:Array(String)} GROUP BY channel_id",
        {"ids": list(channel_ids)},
    )
    markers: dict[str, list[datetime | None]] = {}
    for r in rows:
        markers.setdefault(r["channel_id"], [None, None, None])[int(r["part"])] = r["at"]
    return {c: (m[0], m[1], m[2]) for c, m in markers.items()}
