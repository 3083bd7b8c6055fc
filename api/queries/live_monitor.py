"""The ``live_monitor`` pivot dataset (contract v1.2 §6): what a commerce bureau reports
on live commerce (直播电商监测), by platform, region and day, week or month.

Every measure but the GMV is a distinct count, so none adds up across cells: the pivot's
GROUPING SETS count each total over its own span (api.queries.pivot.grouped_pivot).
The rows are the paid order steps; a channel's host is its latest registry entry's
(argMax by occurred_at, then event_id, as everywhere: contract §3).

Why two readings in one source: counting over the paid order rows costs a pass over
millions of them (p99 1-10 s at 10M stored steps; issue 21 asks ≤ 300 ms). When the
answer can be read from whole +08:00 days (tz +08:00 and each bound on a +08:00
midnight or outside the stored times, as in the bureau's reports), the source instead
yields one row per (day, platform, district, township, channel) from the ``p_live_keys``
projection (migration 14): the channel, its GMV that day and its distinct products. Every
measure gives the same answer over these rows as over the orders (a sum of sums; a
union of the sets), and the row carries the day's first instant, so the time keys and
the bounds applied to ``occurred_at`` outside select the same days. Otherwise it yields
the order rows as before. Which reading applies is decided from the bound parameters
inside the SQL (``_BY_DAY``), constant for the query, so the branch not taken reads no
part; the pivot builder, the scope condition and the limits stay the pivot's own.

A product is its 128-bit key, ``sipHash128(platform, sku)`` (schemas.ddl_v14.PRODUCT_KEYS),
in both readings: as exact as ``uniqExact`` over the (platform, sku) tuple, which keys its
set by a 128-bit SipHash of the values itself, and 2-3× faster to count than the strings
(the reasons and the collision odds are in schemas/ddl_v14.py).
"""

from __future__ import annotations

from typing import Any

from schemas.ddl_v13 import LIVE_DAY
from schemas.ddl_v14 import PRODUCT_KEYS

OFFSET_0800 = 8 * 3600
_DAY_MS = 86_400_000
_MIDNIGHT_0800_MS = 16 * 3_600_000  # a +08:00 midnight is 16:00Z: its Unix ms modulo a day
# Stored event times lie in [2000-01-01, 2200-01-01) UTC (schemas.events): a bound outside
# them excludes no row, so it needs no day alignment (an absent bound is bound as
# api.params.EARLIEST / LATEST, 1970 and 2262).
_STORED_FROM = "'2000-01-01 00:00:00'"
_STORED_TO = "'2200-01-01 00:00:00'"
_LO = "{lo:DateTime64(3, 'UTC')}"
_HI = "{hi:DateTime64(3, 'UTC')}"


def _aligned(bound: str) -> str:
    return f"toUnixTimestamp64Milli({bound}) % {_DAY_MS} = {_MIDNIGHT_0800_MS}"


# True when whole +08:00 days answer: a constant of the bound parameters.
_BY_DAY = (
    f"({{off:Int32}} = {OFFSET_0800} AND ({_aligned(_LO)} OR {_LO} <= {_STORED_FROM})"
    f" AND ({_aligned(_HI)} OR {_HI} >= {_STORED_TO}))"
)

# The day rows, read from p_live_keys: a plain GROUP BY on its keys is the shape ClickHouse
# answers from an aggregate projection. The day's first instant is never before the lower
# bound (a bound before every stored time stands in for it), so a row passes the bounds
# applied outside exactly when its day's orders do, and keeps its day in +08:00.
_DAYS = f"""
        SELECT platform, district, township,
               greatest(toDateTime64(d, 3, 'UTC') - toIntervalHour(8), {_LO}) AS occurred_at,
               channel_id, gmv AS amount_fen, products
        FROM (
            SELECT {LIVE_DAY} AS d, platform, district, township, channel_id,
                   sum(amount_fen) AS gmv, groupUniqArrayArray({PRODUCT_KEYS}) AS products
            FROM order_steps
            WHERE status = 'paid' AND {_BY_DAY}
              AND d >= toDate32({_LO} + toIntervalHour(8)) AND d < toDate32({_HI} + toIntervalHour(8))
            GROUP BY d, platform, district, township, channel_id
        )"""  # noqa: S608 - fixed SQL; values are bound
_ROWS = f"""
        SELECT platform, district, township, occurred_at, channel_id, amount_fen,
               {PRODUCT_KEYS} AS products
        FROM order_steps
        WHERE status = 'paid' AND NOT {_BY_DAY}"""  # noqa: S608 - fixed SQL; values are bound

SOURCE = f"""(
    SELECT o.platform AS platform, o.district AS district, o.township AS township,
           o.occurred_at AS occurred_at, o.channel_id AS channel_id, o.amount_fen AS amount_fen,
           o.products AS products, ifNull(h.host, '') AS host
    FROM ({_DAYS}
        UNION ALL{_ROWS}
    ) AS o
    LEFT JOIN (
        SELECT channel_id, argMax(host, (occurred_at, event_id)) AS host
        FROM channel_registry GROUP BY channel_id
    ) AS h ON o.channel_id = h.channel_id
)"""  # noqa: S608 - fixed SQL; values are bound

MEASURES: dict[str, str] = {
    "live_sessions": "uniqExact(channel_id)",  # 直播场次: channels with a paid order in the cell
    "live_gmv_fen": "sum(amount_fen)",  # 直播销售额
    "live_products": "uniqExactArray(products)",  # 直播商品数: distinct (platform, sku) sold, by their keys
    "active_hosts": "uniqExactIf((platform, host), host != '')",  # 活跃主播数: registered hosts
}


def dataset(time_dims: dict[str, str]) -> dict[str, Any]:
    """The Dataset's fields (api.queries.pivot builds it with its time dimensions)."""
    return {
        "source": SOURCE,
        "dims": {"platform": "platform", "district": "district", "township": "township", **time_dims},
        "measures": MEASURES,
        "default_measure": "live_gmv_fen",
        "district_col": "district",
        "township_col": "township",
    }
