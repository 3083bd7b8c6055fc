"""One migration: a version, what it is for, and its statements, applied once each
(processors.store records the versions applied in ``schema_migrations``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


# the tables of counted facts and their views (settings migrations apply to each)
STORED_TABLES = (
    "order_steps", "onboarding_steps", "stream_stats", "channel_registry", "channel_state", "channel_minutes",
)  # fmt: skip

# every table: a retried insert of the same block (same dedup token) is stored once
DEDUP = "non_replicated_deduplication_window = 1000"

COMPRESS_BLOCK_BYTES = 64 * 1024  # every table's compression blocks (migration 7)
# Migration 8: merge column by column from the first row (ClickHouse's defaults: from 131,072
# rows, which the 5-15k-row parts of a live sale's inserts seldom reach).
VERTICAL_MERGE_SETTINGS = (
    "vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_bytes_to_activate = 0"
)
