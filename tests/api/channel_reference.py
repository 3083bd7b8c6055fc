"""The channel list as it was computed before migration 5: straight from the raw tables
(registry, order rows through p_channel, stream stats) per request. The tests compare
the state-backed list (api.queries.channel_list) with it, page by page. Only the SQL is
the reference's own: its rows are rendered by the API's own ``render_row`` and
``render_region``, so a difference the tests find is one of what the queries read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api.auth import Scope
from api.params import TimeParams
from api.queries.channel_list import LIVE_WINDOW, ListFilters, encode_cursor, render_row
from api.queries.regions import TOP_CHANNELS, _minute_aligned, render_region
from api.queries.scope import LIVE_IDS_SQL, STATUS_SQL, channel_rows, region_condition
from processors.store import ClickHouse

_P_CHANNEL = "SETTINGS preferred_optimize_projection_name = 'p_channel'"


async def live_ids(ch: ClickHouse, at: datetime) -> list[str]:
    return [r["channel_id"] for r in await ch.query(LIVE_IDS_SQL, {"live_since": at - LIVE_WINDOW})]


_IN_RANGE = "occurred_at >= {lo:DateTime64(3, 'UTC')} AND occurred_at < {hi:DateTime64(3, 'UTC')}"
ACTIVE_IN_RANGE = (
    f"(channel_id IN (SELECT toString(channel_id) FROM order_steps WHERE {_IN_RANGE}"  # noqa: S608
    f" UNION DISTINCT SELECT toString(channel_id) FROM stream_stats WHERE {_IN_RANGE})"
    " OR (scheduled_start < {hi:DateTime64(3, 'UTC')}"
    " AND coalesce(scheduled_end, scheduled_start) >= {lo:DateTime64(3, 'UTC')}))"
)

_SORT_KEY = "coalesce(toUnixTimestamp64Milli(last_at), toInt64(-1))"


async def reference_list(
    ch: ClickHouse, scope: Scope, tp: TimeParams, filters: ListFilters | None = None, now: datetime | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the channels in scope, and the cursor of the next page (None: last page)."""
    f = filters or ListFilters()
    at = now if now is not None else datetime.now(UTC)
    cond, params = region_condition(scope, "district", "township")
    params |= {"live_ids": await live_ids(ch, at), "now": at, "n": f.limit + 1}
    where = [cond]
    for name in ("platform", "district", "township", "status"):
        value = getattr(f, name)
        if value is not None:
            where.append(f"{name} = {{f_{name}:String}}")
            params[f"f_{name}"] = value
    if tp.from_ is not None or tp.to is not None:
        lo, hi = tp.bounds()
        params |= {"lo": lo, "hi": hi}
        where.append(ACTIVE_IN_RANGE)
    if f.cursor is not None:
        where.append("(k < {ck:Int64} OR (k = {ck:Int64} AND channel_id > {cc:String}))")
        params |= {"ck": f.cursor[0], "cc": f.cursor[1]}
    sql = f"""
        SELECT * FROM (
            SELECT *, {STATUS_SQL} AS status, {_SORT_KEY} AS k FROM ({channel_rows()})
        )
        WHERE {" AND ".join(where)}
        ORDER BY k DESC, channel_id
        LIMIT {{n:UInt32}}
        {_P_CHANNEL}
    """  # noqa: S608 - fixed SQL; filters, scope and cursor are bound parameters
    rows = await ch.query(sql, params)
    more = len(rows) > f.limit
    rows = rows[: f.limit]
    page = [render_row(r, tp) for r in rows]
    cursor = encode_cursor((int(rows[-1]["k"]), rows[-1]["channel_id"])) if more and rows else None
    return page, cursor


# regions as computed before migration 5 (api/queries/regions.py at that commit)
async def reference_regions(
    ch: ClickHouse, scope: Scope, level: str, tp: TimeParams, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Regions ranked by GMV in the range (ties by district, township)."""
    at = now if now is not None else datetime.now(UTC)
    cond, params = region_condition(scope, "c.district", "c.township")
    lo, hi = tp.bounds()
    params |= {"live_ids": await live_ids(ch, at), "lo": lo, "hi": hi}
    where = [cond, "c.district != ''"]  # channels known only from stream stats have no place
    time_cond = active = "1"
    if tp.from_ is not None or tp.to is not None:
        active = ACTIVE_IN_RANGE
        col = "minute" if _minute_aligned(tp.from_) and _minute_aligned(tp.to) else "occurred_at"
        time_cond = f"{col} >= {{lo:DateTime64(3, 'UTC')}} AND {col} < {{hi:DateTime64(3, 'UTC')}}"
    township = "c.township" if level == "township" else "''"
    sql = f"""
        SELECT c.district AS district, {township} AS township, count() AS channels,
               countIf(c.live) AS live_channels, sum(o.paid) AS paid_orders, sum(o.gmv) AS gmv_fen,
               sum(o.weight) AS weight_g, sum(o.refund) AS refund_fen,
               arraySlice(arraySort(x -> (-toInt64(x.3), x.1),
                                    groupArray(tuple(c.channel_id, c.title, o.gmv, o.paid))), 1, {TOP_CHANNELS}) AS top
        FROM (SELECT * FROM ({channel_rows()}) WHERE {active}) AS c
        LEFT JOIN (
            SELECT channel_id, sumIf(n, status = 'paid') AS paid, sumIf(a, status = 'paid') AS gmv,
                   sumIf(w, status = 'paid') AS weight, sumIf(a, status = 'refunded') AS refund
            FROM (
                SELECT toString(channel_id) AS channel_id, status, count() AS n, sum(amount_fen) AS a,
                       sum(weight_g) AS w
                FROM order_steps WHERE {time_cond} GROUP BY channel_id, status
            )
            GROUP BY channel_id
        ) AS o ON c.channel_id = o.channel_id
        WHERE {" AND ".join(where)}
        GROUP BY district, township
        ORDER BY gmv_fen DESC, district, township
        {_P_CHANNEL}
    """  # noqa: S608 - fixed SQL; the level picks one of two fixed expressions; values are bound
    rows = await ch.query(sql, params)
    return [render_region(r, level) for r in rows]
