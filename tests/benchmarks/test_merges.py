"""``bench merges`` measures what it says: inserts seen, their memory, the block size set."""

from __future__ import annotations

from benchmarks.merges import _run
from processors.store import ClickHouse


async def test_a_phase_sets_the_block_size_and_sees_its_inserts(clickhouse: ClickHouse) -> None:
    import asyncio

    phase = await asyncio.to_thread(_run, clickhouse, 128 * 1024, 15_000)
    assert phase.seconds > 0 and phase.tracked_peak > 0
    rows = await clickhouse.query("SELECT count() AS n FROM order_steps")
    assert rows == [{"n": 15_000}]  # truncated first, then the phase's own events only
    create = (await clickhouse.query("SELECT create_table_query AS q FROM system.tables WHERE name = 'order_steps'"))[0]
    assert "max_compress_block_size = 131072" in str(create["q"])
