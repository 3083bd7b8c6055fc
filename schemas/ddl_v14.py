"""Migration 14: ``p_live_keys`` replaces ``p_live`` (migration 13): the same day rows, with
each product kept as a 128-bit key instead of its SKU string (contract v1.2 §6, 直播电商监测).

Why: with ``p_live`` the live_monitor pivot's 直播商品数 (distinct (platform, sku) per
cell) was the one measure over issue 21's p99 ≤ 300 ms at 10M stored steps (year by month
× district: p99 436 ms; the other measures 92-126 ms). It read ~30k day rows holding
~390k SKU strings, rebuilt a string set per row from the stored states, then hashed every
(platform, sku) tuple again into each of the pivot's four grouping sets. Stored as
``UInt128`` keys, the states read as fixed-size numbers and the distinct count inserts
them as they are. ``bench live-monitor`` at 10M, on the same 2-core host at load 1-2:
the year's products pivot p50 / p99 481 / 585 ms with ``p_live``, 176-234 / 218-300 ms
with ``p_live_keys``; the other measures unchanged.

Why 128 bits, and why that is exact: ``uniqExact`` over a ``(platform, sku)`` tuple, which
the measure used before, already keys its set by the 128-bit SipHash of the tuple's values
(ClickHouse's ``UniqVariadicHash<true, …>``), so the count was never more exact than a
128-bit hash; the key here is ``sipHash128(platform, sku)``, the same kind of key. Two of n
distinct products share one with probability about n²/2¹²⁹: ~10⁻²⁷ at a million products.
A 64-bit key (n²/2⁶⁵: ~10⁻⁸ at a million) is not taken: the answer must equal the rows'.
``sipHash128`` is one ClickHouse keeps stable across versions (it added
``sipHash128Reference`` rather than change it); a change would make old parts' keys differ
from new ones, so that is what to check before a ClickHouse upgrade.

Why replace rather than add: one projection of these keys serves every measure (sessions
and hosts need only its keys, GMV its sum), and each insert pays for every projection.
Until ``MATERIALIZE`` has run on a part, queries read that part's rows (slower, the same
answers), as when migration 13 came.
"""

from __future__ import annotations

from schemas.ddl_v13 import live_projection
from schemas.migration import Migration

# A product's key: 128-bit SipHash of (platform, sku), one per item of an order step.
# api.queries.live_monitor aggregates this very text, which is how ClickHouse matches a
# query to the projection; the order-rows reading computes the same keys.
PRODUCT_KEYS = "arrayMap(s -> reinterpretAsUInt128(sipHash128(platform, s)), `items.sku`)"

V14 = Migration(
    14,
    "p_live_keys replaces p_live: the live_monitor day rows with 128-bit product keys instead of SKU strings",
    (*live_projection("p_live_keys", PRODUCT_KEYS), "ALTER TABLE order_steps DROP PROJECTION IF EXISTS p_live"),
)
