"""Migration 13: ``p_live``, the live_monitor pivot's projection (contract v1.2 §6, 直播电商监测).

Why: that pivot counts distinct channels, products and hosts, which no earlier projection
keeps, so it read every paid order row: p99 1-10 s at 10M stored steps (issue 21 asks
≤ 300 ms). ``p_live`` keeps, per status, day in +08:00, platform, place and channel, the GMV
and the distinct SKUs sold; api.queries.live_monitor counts the distinct sets from these
rows whenever the answer can be read from whole +08:00 days (the bureau's reports: tz
+08:00, bounds on midnights), and from the order rows otherwise.

Why these keys: a day in +08:00, not an hour, because a day holds several times fewer
rows and product entries than its hours (an earlier prototype measured the monthly products
report at p99 362 ms from hours, 179 ms from days, at 10M), and one projection is what every
insert can afford. Migration 14 replaces this projection by ``p_live_keys``: the same keys,
with each product as a 128-bit key instead of its SKU string (schemas/ddl_v14.py says why).
``toDate32``: stored event times lie in [2000, 2200) (schemas.events), past ``Date``'s
2149. Status and day lead the keys, so a range of days of paid rows is a range read of the
projection.
"""

from __future__ import annotations

from schemas.migration import Migration

# The day key; api.queries.live_monitor groups by this very text, which is how ClickHouse
# matches a query to the projection.
LIVE_DAY = "toDate32(occurred_at + toIntervalHour(8))"


def live_projection(name: str, products: str) -> tuple[str, str]:
    """The ADD and MATERIALIZE of a live-report projection: per status, +08:00 day,
    platform, place and channel, the GMV and the distinct ``products`` (an array
    expression of the order step). Migration 14 takes the same shape with hashed keys."""
    return (
        f"""
        ALTER TABLE order_steps ADD PROJECTION IF NOT EXISTS {name} (
            SELECT status, {LIVE_DAY}, platform, district, township, channel_id,
                   sum(amount_fen), groupUniqArrayArray({products})
            GROUP BY status, {LIVE_DAY}, platform, district, township, channel_id
        )
        """,
        # existing parts get it in the background; until then queries read their rows
        f"ALTER TABLE order_steps MATERIALIZE PROJECTION {name}",
    )


V13 = Migration(
    13,
    "per-day live-commerce projection (channels, GMV, SKUs by +08:00 day and place), for the live_monitor pivot",
    live_projection("p_live", "`items.sku`"),
)
