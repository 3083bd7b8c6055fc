"""The region overview (contract §6, ``GET /v1/regions``): per township or district in
the token's scope, its channels, live ones, sales in a range and the top channels.

Channels are placed as everywhere else (api.queries.scope: registry, else earliest
order) and bring all their orders in the range with them, so a region's numbers are the
sums of its channels' pages. One query: the channel rows (p_channel), the orders in the
range per channel (p_minute when the bounds fall on minutes), grouped by place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api.auth import Scope
from api.params import TimeParams
from api.queries.channels import _P_CHANNEL, ACTIVE_IN_RANGE, live_ids
from api.queries.scope import channel_rows, region_condition
from processors.store import ClickHouse

LEVELS = ("township", "district")
TOP_CHANNELS = 10


def _minute_aligned(t: datetime | None) -> bool:
    return t is None or (t.astimezone(UTC).second == 0 and t.microsecond == 0)


async def regions(
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
    return [
        {
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
        for r in rows
    ]
