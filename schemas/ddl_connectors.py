"""Tables of the platform connectors (contract §7): reconciliation watermarks per shop."""

from __future__ import annotations

from schemas.migration import COMPRESS_BLOCK_BYTES, VERTICAL_MERGE_SETTINGS, Migration

CONNECTORS = Migration(
    10,
    "platform connectors: each shop's reconciliation watermark",
    (
        f"""
CREATE TABLE IF NOT EXISTS connector_watermarks (
    platform       LowCardinality(String),
    shop_id        String,
    reconciled_to  DateTime64(3, 'UTC'),
    owner          String,
    seq            UInt64,
    written_at     DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(seq) ORDER BY (platform, shop_id)
SETTINGS max_compress_block_size = {COMPRESS_BLOCK_BYTES}, {VERTICAL_MERGE_SETTINGS}
""",
    ),
)
