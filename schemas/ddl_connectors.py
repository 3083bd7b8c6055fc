"""Tables of the platform connectors (contract §7).

``connector_watermarks``: per (platform, shop) the reconciliation watermark (``kind`` =
'watermark', ``writer`` = ''), and each process's cumulative push counters for the shop
(``kind`` = 'process', ``writer`` = its process id) that ``GET /v1/connectors`` sums. A
ReplacingMergeTree on ``seq``: a writer only ever replaces its own row with a later one,
so a read takes the row of the greatest ``seq`` per key (``argMax``), folded or not.
Small and replicated to every node in cluster mode (schemas/cluster.py EVERYWHERE_TABLES).

``connector_steps``: every step a connector published, by whom first (``push`` or
``reconcile``); recovered steps are the event ids first written by reconciliation. Sharded
by ``channel_id`` in cluster mode like ``order_steps`` (schemas/cluster.py's generic rule).
"""

from __future__ import annotations

from schemas.migration import COMPRESS_BLOCK_BYTES, VERTICAL_MERGE_SETTINGS, Migration

CONNECTORS = Migration(
    10,
    "platform connectors: each shop's reconciliation watermark and push counters; the steps they published",
    (
        f"""
CREATE TABLE IF NOT EXISTS connector_watermarks (
    platform       LowCardinality(String),
    shop_id        String,
    kind           Enum8('watermark' = 1, 'process' = 2),
    writer         String,
    reconciled_to  Nullable(DateTime64(3, 'UTC')),
    owner          String,
    pushes         UInt64,
    bad_signatures UInt64,
    last_push_at   Nullable(DateTime64(3, 'UTC')),
    last_error     Nullable(String),
    last_error_at  Nullable(DateTime64(3, 'UTC')),
    seq            UInt64,
    written_at     DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(seq) ORDER BY (platform, shop_id, kind, writer)
SETTINGS max_compress_block_size = {COMPRESS_BLOCK_BYTES}, {VERTICAL_MERGE_SETTINGS}
""",
        f"""
CREATE TABLE IF NOT EXISTS connector_steps (
    platform       LowCardinality(String),
    shop_id        String,
    event_id       String,
    channel_id     String,
    source         Enum8('push' = 1, 'reconcile' = 2),
    seen_at        DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX ix_event event_id TYPE bloom_filter(0.001) GRANULARITY 1
) ENGINE = ReplacingMergeTree ORDER BY (platform, shop_id, source, event_id)
SETTINGS max_compress_block_size = {COMPRESS_BLOCK_BYTES}, {VERTICAL_MERGE_SETTINGS}
""",
    ),
)
