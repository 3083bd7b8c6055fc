"""``GET /v1/channels``: one page of the channels in scope, read from the per-channel state.

The state (``channel_state``, schemas.ddl migration 5) holds one row per channel once
merged, kept by materialized views as orders, stream stats and registry entries are
stored; a page reads it instead of aggregating every order row of every channel. The
answers are those of the rules in api.queries.scope, applied to the folded state: the
place is the latest registry entry's, else the earliest order's, else (known from stream
stats only) the stream stats' platform and no region; ``live`` is "an order or
stream-stats row stored in the last ten minutes" (contract §3), computed from the last
storage time at query time, as is the status.

A page is two steps in one statement: the keys (``FINAL`` over the columns the filters,
scope and sort need; a channel's unmerged rows fold before any filter sees them), then
the page's fields for those keys only (the primary key prunes the read).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from api.auth import Scope
from api.params import TimeParams
from api.queries.scope import region_condition
from processors.store import ClickHouse

NO_SUBCOLUMNS = "SETTINGS optimize_functions_to_subcolumns = 0"
LIVE_WINDOW = timedelta(minutes=10)  # contract §3: live while rows keep being stored
STATUSES = ("scheduled", "live", "ended")

# One row per channel from the folded state: the place rule, registry fields, status and
# sort key, each an expression over the state's columns. The tuples' fields are read with
# tupleElement() on the whole column and never as subcolumns (``registry.title``):
# ClickHouse 26.9 reads a subcolumn under FINAL without folding it (it answered a
# channel's unfolded row), so queries over the state also set NO_SUBCOLUMNS.
_REG = "tupleElement(registry, '{0}')"
_FIRST = "tupleElement(first_order, '{0}')"
STATE_COLUMNS: dict[str, str] = {
    **{
        name: f"if(registered, {_REG.format(name)}, if(order_rows > 0, {_FIRST.format(name)}, {none}))"
        for name, none in (("platform", "stats_platform"), ("district", "''"), ("township", "''"))
    },
    **{
        name: f"if(registered, {_REG.format(name)}, NULL)"
        for name in ("title", "host", "scheduled_start", "scheduled_end")
    },
    **{
        name: name
        for name in ("paid_orders", "gmv_fen", "paid_weight_g", "refund_fen", "first_at", "last_at", "last_stored")
    },
    "live": "ifNull(last_stored >= {live_since:DateTime64(3, 'UTC')}, 0)",
    "status": "multiIf(live, 'live', scheduled_start IS NOT NULL AND scheduled_start > {now:DateTime64(3, 'UTC')},"
    " 'scheduled', 'ended')",
    "k": "coalesce(toUnixTimestamp64Milli(last_at), toInt64(-1))",
}
_NEEDS = {"status": ("live", "scheduled_start")}  # what a derived column reads besides the state


def state_rows(*names: str) -> str:
    """SELECT of ``channel_id`` and the named columns (default: all) per folded state row;
    needs {now} and {live_since} when they are named. Naming only what a query uses keeps
    FINAL from reading (and folding) the wide registry tuple when nothing needs it."""
    wanted = set(names or STATE_COLUMNS)
    for name in names:
        wanted.update(_NEEDS.get(name, ()))
    columns = "".join(
        f",\n        {expr}" + (f" AS {n}" if expr != n else "") for n, expr in STATE_COLUMNS.items() if n in wanted
    )
    return f"SELECT channel_id{columns}\n    FROM channel_state FINAL"  # noqa: S608 - fixed SQL


STATE_ROWS = state_rows()

# "Channels with events in [lo, hi)": an order or stream-stats event in it (per channel
# and minute, channel_minutes keeps the first and last event time: a minute row with
# last >= lo and first < hi holds an event in the range whenever lo and hi fall in
# different minutes, folded or not), or a schedule overlapping it (an announced sale
# belongs to the day it is planned for).
_SCHEDULED_IN_RANGE = (
    "(scheduled_start < {hi:DateTime64(3, 'UTC')}"
    " AND coalesce(scheduled_end, scheduled_start) >= {lo:DateTime64(3, 'UTC')})"
)
_MINUTES_ACTIVE = """SELECT channel_id FROM channel_minutes
    WHERE minute >= toStartOfMinute({lo:DateTime64(3, 'UTC')}) AND minute < {hi:DateTime64(3, 'UTC')}
      AND last_at >= {lo:DateTime64(3, 'UTC')} AND first_at < {hi:DateTime64(3, 'UTC')}"""
# Both bounds in one minute: the minute's first and last event may straddle the range,
# so the stored rows of that minute are checked.
_EVENTS = "occurred_at >= {lo:DateTime64(3, 'UTC')} AND occurred_at < {hi:DateTime64(3, 'UTC')}"
_ROWS_ACTIVE = (
    f"SELECT toString(channel_id) FROM order_steps WHERE {_EVENTS}"  # noqa: S608 - fixed SQL
    f" UNION DISTINCT SELECT toString(channel_id) FROM stream_stats WHERE {_EVENTS}"
)
_MINUTES_IN_RANGE = f"(channel_id IN ({_MINUTES_ACTIVE}) OR {_SCHEDULED_IN_RANGE})"
_ROWS_IN_RANGE = f"(channel_id IN ({_ROWS_ACTIVE}) OR {_SCHEDULED_IN_RANGE})"


def _same_minute(lo: datetime, hi: datetime) -> bool:
    """Both bounds in one minute: channel_minutes cannot tell, the rows must."""
    return lo.replace(second=0, microsecond=0) == hi.replace(second=0, microsecond=0)


def active_in_range(lo: datetime, hi: datetime) -> str:
    """The condition over a state row (bound ``{lo}``, ``{hi}``) for [lo, hi)."""
    return _ROWS_IN_RANGE if _same_minute(lo, hi) else _MINUTES_IN_RANGE


# Past this many channels with events in a range, a snapshot page costs more in Python
# (decoding and looking up every id: ~220 ms at 100,000) than the query path's fold.
ACTIVE_CAP = 20_000


async def active_ids(
    ch: ClickHouse, lo: datetime, hi: datetime, cap: int | None = None
) -> frozenset[str] | None:
    """The channels with an order or stream-stats event in [lo, hi): the events half of
    ``active_in_range``, for the snapshot (api.channel_snapshot), which has the schedules;
    None when there are more than ``cap`` (the caller queries instead)."""
    cap = ACTIVE_CAP if cap is None else cap
    # one row holding an array: decoded in bulk, not as a row per channel; capped at cap + 1
    by_rows = _same_minute(lo, hi)
    column, source = ("`toString(channel_id)`", _ROWS_ACTIVE) if by_rows else ("channel_id", _MINUTES_ACTIVE)
    sql = f"SELECT groupUniqArray({{cap:UInt32}})({column}) AS ids FROM ({source})"  # noqa: S608 - fixed SQL
    (row,) = await ch.query(sql, {"lo": lo, "hi": hi, "cap": cap + 1})
    ids = row["ids"]
    return None if len(ids) > cap else frozenset(ids)


def encode_cursor(key: tuple[int, str]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[int, str]:
    """The keyset ``(last event ms or -1, channel_id)`` of the last row of a page; ValueError if garbage."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        key = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise ValueError("cursor is not one this server gave out") from exc
    if (
        not isinstance(key, list) or len(key) != 2 or type(key[0]) is not int or not isinstance(key[1], str)
        or not -1 <= key[0] < 2**62 or not key[1]
    ):  # fmt: skip
        raise ValueError("cursor is not one this server gave out")
    return key[0], key[1]


@dataclass(frozen=True)
class ListFilters:
    platform: str | None = None
    district: str | None = None
    township: str | None = None
    status: str | None = None
    limit: int = 100
    cursor: tuple[int, str] | None = None


def _utc(value: datetime | None) -> datetime | None:
    """The driver hands some UTC columns back naive (inside tuples, through views)."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def state_params(at: datetime) -> dict[str, Any]:
    return {"now": at, "live_since": at - LIVE_WINDOW}


def render_row(r: dict[str, Any], tp: TimeParams) -> dict[str, Any]:
    """A folded state row (STATE_COLUMNS, with ``status``) as the contract's channel."""
    return {
        "channel_id": r["channel_id"],
        "platform": r["platform"],
        "district": r["district"] or None,
        "township": r["township"] or None,
        "paid_orders": int(r["paid_orders"]),
        "gmv_fen": int(r["gmv_fen"]),
        "first_event_at": tp.render(_utc(r["first_at"])),
        "last_event_at": tp.render(_utc(r["last_at"])),
        "title": r["title"],
        "host": r["host"],
        "status": r["status"],
        "scheduled_start": tp.render(_utc(r["scheduled_start"])),
        "scheduled_end": tp.render(_utc(r["scheduled_end"])),
    }


async def list_channels(
    ch: ClickHouse, scope: Scope, tp: TimeParams, filters: ListFilters | None = None, now: datetime | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the channels in scope, and the cursor of the next page (None: last page).

    Pages are in a stable order: the most recently active first (last order or
    stream-stats event, descending; channels without any, i.e. registry-only, last), ties
    by channel_id."""
    f = filters or ListFilters()
    at = now if now is not None else datetime.now(UTC)
    cond, params = region_condition(scope, "district", "township")
    params |= state_params(at) | {"n": f.limit + 1}
    where = [cond]
    for name in ("platform", "district", "township", "status"):
        value = getattr(f, name)
        if value is not None:
            where.append(f"{name} = {{f_{name}:String}}")
            params[f"f_{name}"] = value
    if tp.from_ is not None or tp.to is not None:
        lo, hi = tp.bounds()
        params |= {"lo": lo, "hi": hi}
        where.append(active_in_range(lo, hi))
    if f.cursor is not None:
        where.append("(k < {ck:Int64} OR (k = {ck:Int64} AND channel_id > {cc:String}))")
        params |= {"ck": f.cursor[0], "cc": f.cursor[1]}
    named = " ".join(where)
    needed = ["k", *(n for n in ("platform", "district", "township", "status") if f"{n} =" in named)]
    if tp.from_ is not None or tp.to is not None:
        needed += ["scheduled_start", "scheduled_end"]
    keys = f"""
        SELECT channel_id FROM ({state_rows(*needed)})
        WHERE {" AND ".join(where)}
        ORDER BY k DESC, channel_id
        LIMIT {{n:UInt32}}
    """  # noqa: S608 - fixed SQL; filters, scope and cursor are bound parameters
    sql = f"""
        SELECT * FROM ({STATE_ROWS} WHERE channel_id IN ({keys}))
        ORDER BY k DESC, channel_id
        {NO_SUBCOLUMNS}
    """  # noqa: S608 - fixed SQL
    rows = await ch.query(sql, params)
    more = len(rows) > f.limit
    rows = rows[: f.limit]
    page = [render_row(r, tp) for r in rows]
    cursor = encode_cursor((int(rows[-1]["k"]), rows[-1]["channel_id"])) if more and rows else None
    return page, cursor
