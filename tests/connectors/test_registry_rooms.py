"""A registered channel's ``platform_room_id`` (channel.v1, contract v1.2) maps that live
room's orders to it; the latest registry entry wins. Real chDB."""

from __future__ import annotations

from typing import Any

from connectors.events import RegistryRooms
from processors.store import ClickHouse
from tests.api.conftest import store_events


def channel(eid: str, at: str, room: str | None) -> dict[str, Any]:
    event = {"schema": "channel.v1", "event_id": eid, "occurred_at": at, "channel_id": "nh-festival",
             "platform": "douyin", "title": "宁海长街蛏子网络节", "region": {"district": "宁海县"}}  # fmt: skip
    return event | ({"platform_room_id": room} if room else {})


async def test_the_latest_entry_s_room_is_the_channel_s(clickhouse: ClickHouse) -> None:
    await store_events(clickhouse, [
        channel("c1", "2026-05-01T08:00:00+08:00", "7301"),
        channel("c2", "2026-05-01T09:00:00+08:00", "7302"),  # the room changed: the latest wins
    ])  # fmt: skip
    rooms = RegistryRooms(clickhouse, ttl_s=0)
    assert await rooms.channel_for("douyin", "7302") == "nh-festival"
    assert await rooms.channel_for("douyin", "7301") is None
    assert await rooms.channel_for("kuaishou", "7302") is None


async def test_a_room_registered_after_the_last_read_is_found_on_its_first_order(clickhouse: ClickHouse) -> None:
    """The map is fresh for 30 s, but a miss re-reads it (at most once a second): a room
    registered just before its first order must not wait out the 30 s."""
    clock = [1000.0]
    rooms = RegistryRooms(clickhouse, ttl_s=30.0, miss_s=1.0, clock=lambda: clock[0])
    assert await rooms.channel_for("douyin", "7301") is None  # read: nothing registered
    await store_events(clickhouse, [channel("c1", "2026-05-01T08:00:00+08:00", "7301")])
    assert await rooms.channel_for("douyin", "7301") is None  # a miss within the second: no re-read
    clock[0] += 1.5
    assert await rooms.channel_for("douyin", "7301") == "nh-festival"  # a miss after it: re-read
