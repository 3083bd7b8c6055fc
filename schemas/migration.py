"""One migration: a version, what it is for, and its statements, applied once each
(processors.store records the versions applied in ``schema_migrations``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


# every table: a retried insert of the same block (same dedup token) is stored once
DEDUP = "non_replicated_deduplication_window = 1000"
