"""ClickHouse DDL, as an ordered list of migrations applied once each.

Design (docs/DESIGN.md has the long form): every counted fact is one row, written once.
The writer decides "new or seen" before inserting (processors.dedupe), so tables are
plain MergeTrees and every aggregate is a GROUP BY over them; nothing is pre-summed that
a lost or doubled block could skew. Tables are unpartitioned so that one insert is one
part, which ClickHouse commits atomically.

``step_hash``/``event_hash`` are 64-bit BLAKE2b hashes computed in Python
(processors.keys); they feed the in-memory Bloom filters at start-up and the
bloom_filter skip indexes that make "is this key stored?" look-ups cheap.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


_DEDUP = "non_replicated_deduplication_window = 1000"

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "order steps, onboarding steps, stream stats",
        (
            f"""
            CREATE TABLE IF NOT EXISTS order_steps (
                step_hash      UInt64,
                event_hash     UInt64,
                event_id       String,
                platform       LowCardinality(String),
                order_id       String,
                status         Enum8('created' = 1, 'paid' = 2, 'refunded' = 3),
                occurred_at    DateTime64(3, 'UTC'),
                minute         DateTime('UTC') MATERIALIZED toStartOfMinute(occurred_at),
                channel_id     LowCardinality(String),
                merchant_id    String,
                district       LowCardinality(String),
                township       LowCardinality(String),
                amount_fen     UInt64,
                units          UInt64,
                weight_g       UInt64,
                `items.sku`            Array(String),
                `items.name`           Array(String),
                `items.quantity`       Array(UInt32),
                `items.unit_price_fen` Array(UInt64),
                `items.weight_g`       Array(UInt32),
                stored_at      DateTime64(3, 'UTC') DEFAULT now64(3),
                INDEX ix_step  step_hash  TYPE bloom_filter(0.001) GRANULARITY 1,
                INDEX ix_event event_hash TYPE bloom_filter(0.001) GRANULARITY 1
            ) ENGINE = MergeTree
            ORDER BY (channel_id, minute, step_hash)
            SETTINGS {_DEDUP}
            """,
            f"""
            CREATE TABLE IF NOT EXISTS onboarding_steps (
                step_hash       UInt64,
                event_hash      UInt64,
                event_id        String,
                platform        LowCardinality(String),
                firm_id         String,
                status          Enum8('onboarded' = 1, 'withdrawn' = 2),
                occurred_at     DateTime64(3, 'UTC'),
                firm_name       String,
                district        LowCardinality(String),
                export_oriented Bool,
                stored_at       DateTime64(3, 'UTC') DEFAULT now64(3),
                INDEX ix_event event_hash TYPE bloom_filter(0.001) GRANULARITY 1
            ) ENGINE = MergeTree
            ORDER BY (platform, firm_id, status)
            SETTINGS {_DEDUP}
            """,
            f"""
            CREATE TABLE IF NOT EXISTS stream_stats (
                event_hash     UInt64,
                event_id       String,
                channel_id     LowCardinality(String),
                platform       LowCardinality(String),
                occurred_at    DateTime64(3, 'UTC'),
                minute         DateTime('UTC') MATERIALIZED toStartOfMinute(occurred_at),
                viewers_online UInt64,
                views_total    UInt64,
                stored_at      DateTime64(3, 'UTC') DEFAULT now64(3),
                INDEX ix_event event_hash TYPE bloom_filter(0.001) GRANULARITY 1
            ) ENGINE = MergeTree
            ORDER BY (channel_id, minute, event_hash)
            SETTINGS {_DEDUP}
            """,
        ),
    ),
)

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     UInt32,
    description String,
    applied_at  DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree ORDER BY version
"""

LATEST_VERSION = MIGRATIONS[-1].version
