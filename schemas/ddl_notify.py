"""Tables of the robot notifications (contract §8): what was posted to which robot."""

from __future__ import annotations

from schemas.migration import COMPRESS_BLOCK_BYTES, VERTICAL_MERGE_SETTINGS, Migration

NOTIFICATIONS = Migration(
    11,
    "robot notifications: one row per (robot, transition) and its latest state",
    (
        f"""
CREATE TABLE IF NOT EXISTS notifications (
    robot          String,
    notification_id String,
    channel_id     String,
    kind           LowCardinality(String),
    state          LowCardinality(String),
    attempts       UInt32,
    created_at     DateTime64(3, 'UTC'),
    updated_at     DateTime64(3, 'UTC'),
    last_error     Nullable(String),
    seq            UInt64
) ENGINE = ReplacingMergeTree(seq) ORDER BY (robot, notification_id)
SETTINGS max_compress_block_size = {COMPRESS_BLOCK_BYTES}, {VERTICAL_MERGE_SETTINGS}
""",
    ),
)
