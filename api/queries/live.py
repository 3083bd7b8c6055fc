"""What a live screen shows, and the change markers that say when to show it again."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import datetime
from typing import Any

from api.auth import Scope
from api.params import TimeParams
from api.queries import channels as q
from processors.store import ClickHouse

Marker = tuple[datetime | None, datetime | None]  # newest stored_at of the channel's orders, stats


async def live_payload(ch: ClickHouse, channel_id: str, scope: Scope, tp: TimeParams) -> dict[str, Any] | None:
    """One ``update`` event's data, or None when the channel is not (or no longer) in scope.

    Built once per watcher and sent to all of its viewers (api.live_hub): anything the
    live screen needs goes here, as one more key."""
    summary, minutes = await asyncio.gather(q.summary(ch, channel_id, scope, tp), q.minutes(ch, channel_id, scope, tp))
    if summary is None:
        return None
    return {"summary": summary, "minutes": {"channel_id": channel_id, "tz": tp.tz, "minutes": minutes}}


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
