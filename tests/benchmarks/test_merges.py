"""``bench merges`` measures what it says: inserts seen, their memory, the settings set."""

from __future__ import annotations

from benchmarks.merges import _run
from processors.store import ClickHouse


async def test_a_phase_sets_its_settings_and_sees_its_inserts(clickhouse: ClickHouse) -> None:
    import asyncio

    settings = "max_compress_block_size = 131072, vertical_merge_algorithm_min_rows_to_activate = 7"
    phase = await asyncio.to_thread(_run, clickhouse, "test", settings, 15_000)
    assert phase.seconds > 0 and phase.tracked_peak > 0
    rows = await clickhouse.query("SELECT count() AS n FROM order_steps")
    assert rows == [{"n": 15_000}]  # truncated first, then the phase's own events only
    create = (await clickhouse.query("SELECT create_table_query AS q FROM system.tables WHERE name = 'order_steps'"))[0]
    assert "max_compress_block_size = 131072" in str(create["q"])
    assert "vertical_merge_algorithm_min_rows_to_activate = 7" in str(create["q"])
