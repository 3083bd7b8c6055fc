"""The platform connectors' table (contract §7): each shop's durable connector state.

One small table, ``connector_watermarks``, replicated to every node in cluster mode
(schemas/cluster.py EVERYWHERE_TABLES), one row per (platform, shop, kind, writer):

- ``watermark`` (writer ''): how far the shop is reconciled (``reconciled_to``), by whom
  (``owner``) and when (``written_at``: "reconciled within the interval" for every process);
- ``process`` (writer = a process id): that process's cumulative push counters and last
  error for the shop, summed by ``GET /v1/connectors`` over processes;
- ``pushed`` / ``recovered`` (writer = an ``order.v1`` event id): a step a connector
  published, by the push path or first by reconciliation; ``recovered_steps`` counts the
  distinct ``recovered`` ids. ``pushed`` rows only answer "was it published already?" for
  a reconciliation window, so they go after 120 days (the platforms' lists reach 90 back).

A ReplacingMergeTree on ``seq``: a writer only replaces its own row with a later one, and
every read takes ``argMax(…, seq)`` or distinct keys, folded or not.
"""

from __future__ import annotations

from schemas.migration import COMPRESS_BLOCK_BYTES, VERTICAL_MERGE_SETTINGS, Migration

CONNECTORS = Migration(
    10,
    "platform connectors: each shop's reconciliation watermark, push counters and published steps",
    (
        f"""
CREATE TABLE IF NOT EXISTS connector_watermarks (
    platform       LowCardinality(String),
    shop_id        String,
    kind           Enum8('watermark' = 1, 'process' = 2, 'pushed' = 3, 'recovered' = 4),
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
TTL toDateTime(written_at) + INTERVAL 120 DAY DELETE WHERE kind = 'pushed'
SETTINGS max_compress_block_size = {COMPRESS_BLOCK_BYTES}, {VERTICAL_MERGE_SETTINGS}
""",
    ),
)
