"""The region overview (contract §6, ``GET /v1/regions``): per township or district in
the token's scope, its channels, live ones, sales in a range and the top channels.

Channels are placed as everywhere else (api.queries.scope: registry, else earliest
order) and bring all their orders in the range with them, so a region's numbers are the
sums of its channels' pages. One query over the per-channel state (api.queries.channel_list,
schemas.ddl migration 5): all-time sums are the state's own; a range's come from
channel_minutes when its bounds fall on minutes, else from the stored rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api.auth import Scope
from api.params import TimeParams
from api.queries.channel_list import NO_SUBCOLUMNS, STATE_ROWS, active_in_range, state_params
from api.queries.scope import region_condition
from processors.store import ClickHouse

LEVELS = ("township", "district")
TOP_CHANNELS = 10


def _minute_aligned(t: datetime | None) -> bool:
    return t is None or (t.astimezone(UTC).second == 0 and t.microsecond == 0)


# A range's order sums per channel: from channel_minutes when both bounds fall on minutes
# (a minute is in the range when its start is), else from the stored rows.
_MINUTE_SUMS = """
    SELECT channel_id, sum(paid_orders) AS paid, sum(gmv_fen) AS gmv, sum(paid_weight_g) AS weight,
           sum(refund_fen) AS refund
    FROM channel_minutes
    WHERE minute >= {lo:DateTime64(3, 'UTC')} AND minute < {hi:DateTime64(3, 'UTC')}
    GROUP BY channel_id
"""
_ROW_SUMS = """
    SELECT toString(channel_id) AS channel_id, countIf(status = 'paid') AS paid,
           sumIf(amount_fen, status = 'paid') AS gmv, sumIf(weight_g, status = 'paid') AS weight,
           sumIf(amount_fen, status = 'refunded') AS refund
    FROM order_steps
    WHERE occurred_at >= {lo:DateTime64(3, 'UTC')} AND occurred_at < {hi:DateTime64(3, 'UTC')}
    GROUP BY channel_id
"""


async def regions(
    ch: ClickHouse, scope: Scope, level: str, tp: TimeParams, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Regions ranked by GMV in the range (ties by district, township)."""
    at = now if now is not None else datetime.now(UTC)
    cond, params = region_condition(scope, "c.district", "c.township")
    params |= state_params(at)
    where = [cond, "c.district != ''"]  # channels known only from stream stats have no place
    if tp.from_ is not None or tp.to is not None:
        lo, hi = tp.bounds()
        params |= {"lo": lo, "hi": hi}
        sums = _MINUTE_SUMS if _minute_aligned(tp.from_) and _minute_aligned(tp.to) else _ROW_SUMS
        sums_of = "o"
        source = f"""
            (SELECT * FROM ({STATE_ROWS}) WHERE {active_in_range(lo, hi)}) AS c
            LEFT JOIN ({sums}) AS o ON c.channel_id = o.channel_id
        """  # noqa: S608 - fixed SQL; the bounds are bound parameters
    else:  # all time: the state's own totals
        sums_of = "c"
        source = f"""(
            SELECT *, paid_orders AS paid, gmv_fen AS gmv, paid_weight_g AS weight, refund_fen AS refund
            FROM ({STATE_ROWS})
        ) AS c"""  # noqa: S608 - fixed SQL
    township = "c.township" if level == "township" else "''"
    sql = f"""
        SELECT c.district AS district, {township} AS township, count() AS channels,
               countIf(c.live) AS live_channels, sum({sums_of}.paid) AS paid_orders, sum({sums_of}.gmv) AS gmv_fen,
               sum({sums_of}.weight) AS weight_g, sum({sums_of}.refund) AS refund_fen,
               arraySlice(arraySort(x -> (-toInt64(x.3), x.1),
                                    groupArray(tuple(c.channel_id, c.title, {sums_of}.gmv, {sums_of}.paid))),
                          1, {TOP_CHANNELS}) AS top
        FROM {source}
        WHERE {" AND ".join(where)}
        GROUP BY district, township
        ORDER BY gmv_fen DESC, district, township
        {NO_SUBCOLUMNS}
    """  # noqa: S608 - fixed SQL; the level picks one of two fixed expressions; values are bound
    rows = await ch.query(sql, params)
    return [render_region(r, level) for r in rows]


def render_region(r: dict[str, Any], level: str) -> dict[str, Any]:
    """A region's row (district, township, the sums and ``top``) as the contract's region."""
    return {
        "district": r["district"],
        "township": (r["township"] or None) if level == "township" else None,
        "channels": int(r["channels"]),
        "live_channels": int(r["live_channels"]),
        "paid_orders": int(r["paid_orders"]),
        "gmv_fen": int(r["gmv_fen"]),
        "weight_g": int(r["weight_g"]),
        "refund_fen": int(r["refund_fen"]),
        "top_channels": [
            {"channel_id": cid, "title": title, "paid_orders": int(paid), "gmv_fen": int(gmv)}
            for cid, title, gmv, paid in r["top"]
        ],
    }
