"""chDB's caches are bounded by Tuning.chdb_cache_mb (docs/BENCHMARKS.md "Memory soak"):
left to ClickHouse's defaults the mark and primary-index caches may each reach 5 GiB.
Tuning.chdb_merge_nice reaches the engine the same way."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from processors.store import CHDB_CACHE_SHARES, ClickHouse, StorageError, chdb_cache_options, jemalloc_figures

_MIB = 1024 * 1024


def test_cache_budget_is_shared_out_and_zero_keeps_clickhouse_defaults() -> None:
    options = chdb_cache_options(256)
    assert options["mark_cache_size"] == 128 * _MIB
    assert sum(options.values()) <= 256 * _MIB
    assert set(options) == set(CHDB_CACHE_SHARES)
    assert chdb_cache_options(0) == {}


async def _server_setting(ch: ClickHouse, name: str) -> int:
    rows = await ch.query("SELECT value FROM system.server_settings WHERE name = {n:String}", {"n": name})
    return int(rows[0]["value"])


async def test_the_budget_reaches_the_engine_and_its_figures_are_read(tmp_path: Path) -> None:
    bounded = ClickHouse(f"chdb://{tmp_path / 'bounded'}", chdb_cache_mb=64, chdb_merge_nice=10)
    await bounded.open()
    try:
        assert await _server_setting(bounded, "mark_cache_size") == 32 * _MIB
        assert await _server_setting(bounded, "os_threads_nice_value_merge_mutate") == 10
        assert await _server_setting(bounded, "primary_index_cache_size") == 16 * _MIB
        assert await _server_setting(bounded, "query_condition_cache_size") == 8 * _MIB
        figures = await bounded.memory_bytes()
        assert {"MemoryTracking", "MarkCacheBytes", "PrimaryIndexCacheBytes"} <= set(figures)
        assert figures["MemoryTracking"] > 0
        # chDB's own allocator: what it holds in use sits inside what is resident
        assert 0 < figures["JemallocAllocated"] <= figures["JemallocActive"] <= figures["JemallocResident"]
    finally:
        await bounded.close()
    unbounded = ClickHouse(f"chdb://{tmp_path / 'defaults'}")  # 0: ClickHouse's own, 5 GiB of marks
    await unbounded.open()
    try:
        assert await _server_setting(unbounded, "mark_cache_size") == 5 * 1024 * _MIB
        assert await _server_setting(unbounded, "os_threads_nice_value_merge_mutate") == 0
    finally:
        await unbounded.close()


def test_jemalloc_summary_line_is_read() -> None:
    text = (
        "___ Begin jemalloc statistics ___\nVersion: 5.3-RC\nArenas: 4\n"
        "Allocated: 32690184, active: 35082240, metadata: 7626992 (n_thp 0, edata 212480, rtree 6291456),"
        " resident: 55582720, mapped: 65138688, retained: 7213056\n"
    )
    assert jemalloc_figures(text) == {
        "JemallocAllocated": 32690184, "JemallocActive": 35082240,
        "JemallocMetadata": 7626992, "JemallocResident": 55582720,
    }  # fmt: skip
    assert jemalloc_figures("no summary here") == {}


class _NoJemalloc(ClickHouse):
    """A chDB whose build has no system.jemalloc_stats (the table is optional in ClickHouse)."""

    async def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        if "jemalloc_stats" in sql:
            raise StorageError("Code: 60. Unknown table system.jemalloc_stats")
        return await super().query(sql, parameters)


async def test_the_engines_figures_are_kept_when_its_allocators_are_missing(tmp_path: Path) -> None:
    ch = _NoJemalloc(f"chdb://{tmp_path / 'ch'}", chdb_cache_mb=64)
    await ch.open()
    try:
        figures = await ch.memory_bytes()
    finally:
        await ch.close()
    assert figures["MemoryTracking"] > 0 and "MarkCacheBytes" in figures
    assert not any(k.startswith("Jemalloc") for k in figures)
