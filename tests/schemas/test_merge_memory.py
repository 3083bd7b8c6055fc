"""Migrations 7 and 8 bound what a merge holds (docs/BENCHMARKS.md "Memory soak"): every
table writes 64 KiB compression blocks (an order_steps merge took ~105 MiB at 1 MiB) and
merges column by column from the first row (30-34 MiB at p90 horizontally, 10 vertically)."""

from __future__ import annotations

import re

from processors.store import ClickHouse
from schemas.ddl import MIGRATIONS
from schemas.migration import COMPRESS_BLOCK_BYTES, VERTICAL_MERGE_SETTINGS

_MERGE_TREES = "SELECT name, create_table_query FROM system.tables WHERE database = currentDatabase() AND engine LIKE '%MergeTree'"


async def test_every_stored_table_writes_small_compression_blocks(clickhouse: ClickHouse) -> None:
    tables = {str(r["name"]): str(r["create_table_query"]) for r in await clickhouse.query(_MERGE_TREES)}
    stored = {t for t in tables if t != "schema_migrations"}
    assert {"order_steps", "channel_state", "channel_minutes"} <= stored
    for name in stored:  # a table added later without the setting fails here
        found = re.search(r"max_compress_block_size = (\d+)", tables[name])
        assert found and int(found[1]) == COMPRESS_BLOCK_BYTES, (name, tables[name][-200:])
        for setting in VERTICAL_MERGE_SETTINGS.split(", "):
            assert setting in tables[name], (name, setting, tables[name][-300:])


def test_the_migration_names_every_table_it_sets() -> None:
    seven = next(m for m in MIGRATIONS if m.version == 7)
    assert all(f"max_compress_block_size = {COMPRESS_BLOCK_BYTES}" in s for s in seven.statements)


def _altered(version: int) -> set[str]:
    migration = next(m for m in MIGRATIONS if m.version == version)
    return {re.findall(r"ALTER TABLE (\w+)", s)[0] for s in migration.statements}


def test_the_vertical_merge_migration_names_every_table_it_sets() -> None:
    eight = next(m for m in MIGRATIONS if m.version == 8)
    assert _altered(8) == _altered(7)
    assert all(VERTICAL_MERGE_SETTINGS in s for s in eight.statements)
