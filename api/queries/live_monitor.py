"""The ``live_monitor`` pivot dataset (contract v1.2 §6): what a commerce bureau reports
on live commerce (直播电商监测), by platform, region and day, week or month.

Every measure but the GMV is a distinct count, so none adds up across cells: the pivot's
GROUPING SETS count each total over its own span (api.queries.pivot.grouped_pivot).
The rows are the paid order steps; a channel's host is its latest registry entry's
(argMax by occurred_at, then event_id, as everywhere: contract §3).
"""

from __future__ import annotations

from typing import Any

SOURCE = """(
    SELECT o.platform AS platform, o.district AS district, o.township AS township,
           o.occurred_at AS occurred_at, o.channel_id AS channel_id, o.amount_fen AS amount_fen,
           arrayMap(s -> tuple(o.platform, s), o.`items.sku`) AS products,
           ifNull(h.host, '') AS host
    FROM order_steps AS o
    LEFT JOIN (
        SELECT channel_id, argMax(host, (occurred_at, event_id)) AS host
        FROM channel_registry GROUP BY channel_id
    ) AS h ON o.channel_id = h.channel_id
    WHERE o.status = 'paid'
)"""

MEASURES: dict[str, str] = {
    "live_sessions": "uniqExact(channel_id)",  # 直播场次: channels with a paid order in the cell
    "live_gmv_fen": "sum(amount_fen)",  # 直播销售额
    "live_products": "uniqExactArray(products)",  # 直播商品数: distinct (platform, sku) sold
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
