"""Retention (issue 21 §8): off by default; a TTL by event time drops old order steps,
stream stats and minutes at ClickHouse's merges; unset, the TTL is removed. Real chDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from processors.retention import KEPT_BY_EVENT_TIME, apply_retention
from processors.store import ClickHouse
from tests.api.conftest import order, store_events

C25 = ("clam", "蛏子", 1, 6800, 2500)


def ttl_of(store: ClickHouse, table: str) -> bool:
    full = str(store.client.command(
        "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
        parameters={"t": table},
    ))  # fmt: skip
    return " TTL " in full


async def test_old_rows_go_only_when_asked(clickhouse: ClickHouse) -> None:
    now = datetime.now(UTC)
    old, new = (now - timedelta(days=400)).isoformat(), (now - timedelta(days=1)).isoformat()
    await store_events(clickhouse, [order("old", "o1", "paid", old, "c", [C25]), order("new", "o2", "paid", new, "c", [C25])])
    client = clickhouse.client
    apply_retention(client, None)  # the default: nothing kept less
    assert not any(ttl_of(clickhouse, t) for t in KEPT_BY_EVENT_TIME)
    apply_retention(client, 365)
    assert all(ttl_of(clickhouse, t) for t in KEPT_BY_EVENT_TIME)
    client.command("OPTIMIZE TABLE order_steps FINAL")
    rows = await clickhouse.query("SELECT event_id FROM order_steps")
    assert [r["event_id"] for r in rows] == ["new"]
    apply_retention(client, None)  # unset again: the TTL is removed
    assert not any(ttl_of(clickhouse, t) for t in KEPT_BY_EVENT_TIME)
