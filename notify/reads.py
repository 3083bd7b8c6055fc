"""What the detector reads from the store: the channels lately active, and per channel the
start of its live session and its stream figures.

Status is contract §3's, as the channel list computes it (api.queries.channel_list): live
while an order or stream-stats row was *stored* in the last ten minutes, read from the
per-channel state. A live session's start is the storage time of the first row after the
last gap of more than ten minutes between stored rows: where the status last turned
``live``. It is read from the stored rows themselves, so every process finds the same
moment and names the same 开播 the same way, however late it started.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from api.queries.channel_list import LIVE_WINDOW, NO_SUBCOLUMNS, state_params, state_rows
from processors.store import ClickHouse

_COLUMNS = ("platform", "district", "township", "title", "host", "paid_orders", "gmv_fen", "paid_weight_g",
            "refund_fen", "first_at", "last_at", "last_stored", "status")  # fmt: skip
_ACTIVE = f"""
    SELECT * FROM ({state_rows(*_COLUMNS)})
    WHERE last_stored >= {{since:DateTime64(3, 'UTC')}}
    {NO_SUBCOLUMNS}
"""  # noqa: S608 - fixed SQL; the bounds are bound parameters

# Per minute of storage time: the first and last storage time, and the first event time of
# the rows stored in it. A gap between rows stored in different minutes is exact from
# these (one minute is shorter than the live window, so no gap hides inside a minute).
_STORED_MINUTES = """
    SELECT toStartOfMinute(s) AS m, min(s) AS lo, max(s) AS hi, min(o) AS first_event
    FROM (
        SELECT stored_at AS s, occurred_at AS o FROM order_steps WHERE channel_id = {c:String}
        UNION ALL
        SELECT stored_at, occurred_at FROM stream_stats WHERE channel_id = {c:String}
    )
    GROUP BY m ORDER BY m
"""
_STREAM = """
    SELECT count() AS n, max(views_total) AS views, max(viewers_online) AS peak
    FROM stream_stats WHERE channel_id = {c:String}
"""


def utc(value: datetime) -> datetime:
    """The driver hands some UTC columns back naive."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def ms(value: datetime) -> int:
    return int(utc(value).timestamp() * 1000)


@dataclass(frozen=True)
class Session:
    start_ms: int  # storage time of its first row
    first_event_ms: int  # the earliest event stored in it (on the channel's clock)


async def active_channels(store: ClickHouse, since: datetime, now: datetime) -> list[dict[str, Any]]:
    """Every channel with a row stored since ``since``: its place, registry fields, totals,
    first/last event and last storage time, and ``status`` at ``now``."""
    return await store.query(_ACTIVE, state_params(now) | {"since": since})


def session_of(minutes: list[dict[str, Any]]) -> Session | None:
    """The last live session in per-minute storage rows (see the module's docstring)."""
    start: dict[str, Any] | None = None
    first_event: datetime | None = None
    prev_hi: datetime | None = None
    for row in minutes:
        lo, hi = utc(row["lo"]), utc(row["hi"])
        if prev_hi is None or lo - prev_hi > LIVE_WINDOW:
            start, first_event = row, utc(row["first_event"])
        else:
            first_event = min(first_event or utc(row["first_event"]), utc(row["first_event"]))
        prev_hi = hi
    if start is None or first_event is None:
        return None
    return Session(ms(start["lo"]), ms(first_event))


async def live_session(store: ClickHouse, channel_id: str) -> Session | None:
    return session_of(await store.query(_STORED_MINUTES, {"c": channel_id}))


async def stream_figures(store: ClickHouse, channel_id: str) -> tuple[int | None, int | None]:
    """(views_total, viewers_peak) of the channel's stream stats; (None, None) without any."""
    (row,) = await store.query(_STREAM, {"c": channel_id})
    if not row["n"]:
        return None, None
    return int(row["views"]), int(row["peak"])


def window_since(now: datetime, max_age: timedelta) -> datetime:
    """Channels stored since this are live, or ended within ``max_age`` (their 下播 and the
    alerts the end closed are still worth posting)."""
    return now - LIVE_WINDOW - max_age
