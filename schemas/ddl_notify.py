"""Tables of the robot notifications (contract §8): what was posted to which robot.

One row per (robot, transition id) once merged: its latest state. Every state change
inserts a new row; ``seq`` decides which row a merge (and ``FINAL``) keeps: a terminal
state (``sent`` > ``dropped``) outranks ``retrying`` whatever the times, so a late write
by a member that lost its partition can never make a sent notification look pending
again; within one rank the later update wins (notify/records.py builds ``seq``). The
senders read a row before posting (docs/NOTIFY.md), so it is tiny and keyed for that
look-up; ``GET /v1/notifications`` reads the newest updates.
"""

from __future__ import annotations

from schemas.migration import COMPRESS_BLOCK_BYTES, VERTICAL_MERGE_SETTINGS, Migration

NOTIFICATIONS = Migration(
    11,
    "robot notifications: one row per (robot, transition) and its latest state",
    (
        f"""
CREATE TABLE IF NOT EXISTS notifications (
    robot           String,
    notification_id String,
    channel_id      String,
    rule            LowCardinality(String),
    kind            LowCardinality(String),
    state           LowCardinality(String),
    attempts        UInt32,
    created_at      DateTime64(3, 'UTC'),
    happened_at     DateTime64(3, 'UTC'),
    updated_at      DateTime64(3, 'UTC'),
    last_error      Nullable(String),
    seq             UInt64
) ENGINE = ReplacingMergeTree(seq) ORDER BY (robot, notification_id)
SETTINGS max_compress_block_size = {COMPRESS_BLOCK_BYTES}, {VERTICAL_MERGE_SETTINGS}
""",
    ),
)
