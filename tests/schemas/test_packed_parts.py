"""Migration 15: an insert's small parts are one packed file each, and read as any part."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from benchmarks.common import order_payload
from processors.store import ClickHouse
from processors.writer import _INSERT_SETTINGS


async def test_an_inserts_parts_are_packed_and_answer_as_rows(clickhouse: ClickHouse) -> None:
    rnd = random.Random(15)
    now = datetime.now(UTC)
    block = b"\n".join(order_payload(i, "packed", rnd, now) for i in range(200))
    await clickhouse.run_in_thread(
        clickhouse.client.raw_insert, "order_events_in", None, block, settings=dict(_INSERT_SETTINGS), fmt="JSONEachRow"
    )
    parts = await clickhouse.query(
        "SELECT table, part_storage_type AS kind FROM system.parts"
        " WHERE database = currentDatabase() AND active AND table IN ('order_steps', 'channel_state', 'channel_minutes')"
    )
    assert {r["table"] for r in parts} == {"order_steps", "channel_state", "channel_minutes"}
    assert {r["kind"] for r in parts} == {"Packed"}, parts
    # read through a projection (p_channel) and from the rows: the same answer
    by_projection = await clickhouse.query(
        "SELECT channel_id, count() AS n FROM order_steps GROUP BY channel_id ORDER BY channel_id"
        " SETTINGS force_optimize_projection = 1"
    )
    by_rows = await clickhouse.query(
        "SELECT channel_id, count() AS n FROM order_steps GROUP BY channel_id ORDER BY channel_id"
        " SETTINGS optimize_use_projections = 0"
    )
    assert by_projection == by_rows and sum(r["n"] for r in by_rows) == 200
