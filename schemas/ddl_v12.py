"""Migration 12 (contract v1.2 §2/§3): partial refunds, each counted once by its ``refund_id``;
and a registered channel's ``platform_room_id``, the live room connectors map to it (§7).

A refunded step that names its refund is keyed ``(platform, order_id, refunded,
refund_id)``; every other step keeps its key, and so its ``step_hash``: the rows stored
before this migration dedupe against new copies exactly as before. The view's hash must
equal the writer's (processors.rows: the fields joined by ``\\x1f``).
"""

from __future__ import annotations

from schemas.migration import Migration

V12 = Migration(
    12,
    "v1.2 fields: refund_id on order steps (a refunded step keyed by its refund); platform_room_id on channels",
    (
        "ALTER TABLE order_events_in ADD COLUMN IF NOT EXISTS refund_id String DEFAULT ''",
        "ALTER TABLE order_steps ADD COLUMN IF NOT EXISTS refund_id String DEFAULT '' AFTER status",
        """
        ALTER TABLE order_events_mv MODIFY QUERY
        SELECT
            xxh3(if(status = 'refunded' AND refund_id != '',
                    concat(platform, '\x1f', order_id, '\x1f', status, '\x1f', refund_id),
                    concat(platform, '\x1f', order_id, '\x1f', status))) AS step_hash,
            xxh3(event_id) AS event_hash, event_id, platform, order_id, status, refund_id, occurred_at,
            channel_id, merchant_id,
            tupleElement(region, 'district') AS district,
            ifNull(tupleElement(region, 'township'), '') AS township,
            amount_fen,
            arraySum(i -> toUInt64(i.quantity), items) AS units,
            arraySum(i -> toUInt64(i.quantity) * i.weight_g, items) AS weight_g,
            arrayMap(i -> i.sku, items) AS `items.sku`,
            arrayMap(i -> i.name, items) AS `items.name`,
            arrayMap(i -> i.quantity, items) AS `items.quantity`,
            arrayMap(i -> i.unit_price_fen, items) AS `items.unit_price_fen`,
            arrayMap(i -> i.weight_g, items) AS `items.weight_g`
        FROM order_events_in
        """,
        "ALTER TABLE channel_events_in ADD COLUMN IF NOT EXISTS platform_room_id String DEFAULT ''",
        "ALTER TABLE channel_registry ADD COLUMN IF NOT EXISTS platform_room_id String DEFAULT ''",
        """
        ALTER TABLE channel_events_mv MODIFY QUERY
        SELECT xxh3(event_id) AS event_hash, event_id, channel_id, platform, title, host,
               tupleElement(region, 'district') AS district,
               ifNull(tupleElement(region, 'township'), '') AS township,
               scheduled_start, scheduled_end, occurred_at, platform_room_id
        FROM channel_events_in
        """,
    ),
)
