"""The connectors as a process wires them (connectors.service), rooms from the channel registry."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web
from prometheus_client import generate_latest

from connectors.config import parse_connectors
from connectors.events import RegistryRooms
from connectors.service import ConnectorService, service_config
from connectors.state import ConnectorState
from connectors.status import StatusBook, StatusFlusher, connectors_status
from ground.settings import Settings
from ingest.kafka_security import KafkaAccess
from livesales.runtime import Runtime
from localplatforms.douyin import FakeDouyin
from localplatforms.platform import FakeOrder
from processors.keys import key_hash
from processors.store import ClickHouse
from tests.conftest import wait_for
from tests.connectors.harness import douyin_app, shop
from tests.support.settings import tuned

_REGISTRY = ["event_hash", "event_id", "channel_id", "platform", "title", "district", "township", "occurred_at",
             "platform_room_id"]  # fmt: skip


def register(store: ClickHouse, channel: str, room: str, at: datetime, event: str) -> None:
    """A channel.v1 entry with ``platform_room_id`` as the store will keep it (contract v1.2)."""
    store.client.insert("channel_registry", [[key_hash(event), event, channel, "douyin", "长街蛏子节", "宁海县", "长街镇",
                                              at, room]], column_names=_REGISTRY)  # fmt: skip


async def test_a_room_no_channel_names_is_unregistered(clickhouse: ClickHouse) -> None:
    assert await RegistryRooms(clickhouse).channel_for("douyin", "7001") is None


async def test_rooms_follow_each_channels_latest_registry_entry(clickhouse: ClickHouse) -> None:
    t = datetime(2026, 5, 1, tzinfo=UTC)
    register(clickhouse, "a", "r1", t, "e1")
    register(clickhouse, "a", "r2", t + timedelta(hours=1), "e2")  # a moved to room r2
    register(clickhouse, "b", "r1", t + timedelta(minutes=30), "e3")
    rooms = RegistryRooms(clickhouse)
    assert await rooms.channel_for("douyin", "r1") == "b"
    assert await rooms.channel_for("douyin", "r2") == "a"
    assert await rooms.channel_for("kuaishou", "r1") is None


async def test_the_service_receives_works_and_reports(topics: Settings, migrated_store: Path) -> None:
    settings = tuned(topics, validation_processes=0)
    shutil.copytree(migrated_store, Path(settings.clickhouse_dsn.removeprefix("chdb://")), symlinks=True)
    fake = FakeDouyin()
    url = await fake.start()
    runtime = Runtime(settings)
    await runtime.start(api=False)
    runner: web.AppRunner | None = None
    service: ConnectorService | None = None
    try:
        register(runtime.store, "ninghai-live", "7001", datetime.now(UTC) - timedelta(days=1), "reg-1")
        config = service_config(KafkaAccess(settings.kafka_bootstrap), f"{settings.consumer_group}.connectors",
                                settings.topic_orders, raw_topic=f"pushes-{uuid.uuid4().hex[:8]}")  # fmt: skip
        config = replace(config, reconcile=replace(config.reconcile, tick_s=0.1))  # windows end 3 min ago: pushes only
        connectors = parse_connectors({"connectors": [douyin_app(url, [shop("1001")])]}, "test")
        service = ConnectorService(config, connectors, runtime.producer, runtime.store, runtime.metrics.registry)
        await service.start(work=True)
        app = web.Application()
        app.add_routes(service.routes())
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        t = datetime.now(UTC) - timedelta(minutes=30)
        fake.create(FakeOrder("6917000000000000001", "1001", t, [("s", "蛏子", 1, 1990)], "7001"))
        fake.pay("6917000000000000001", t + timedelta(seconds=5))
        fake.create(FakeOrder("6917000000000000002", "1001", t, [("s", "蛏子", 2, 1990)], "7002"))
        await fake.send_pushes(f"http://127.0.0.1:{port}/connect/douyin")

        async def counted() -> dict[str, int]:
            rows = await runtime.store.query("SELECT channel_id, count() AS n FROM order_steps GROUP BY channel_id")
            return {str(r["channel_id"]): int(r["n"]) for r in rows}

        await wait_for(lambda: _is(counted(), {"ninghai-live": 2, "douyin-room-7002": 1}), what="steps by room")

        async def reported() -> dict[str, object]:
            assert service is not None
            (entry,) = (await service.status())["connectors"]
            return dict(entry)

        entry = await wait_for(lambda: _ready(reported()), what="the status flushed and reconciled")
        assert entry["pushes"] == 3 and entry["recovered_steps"] == 0 and entry["bad_signatures"] == 0
        assert b"livesales_connector_pushes" in _scrape(runtime)
    finally:
        if service is not None:
            await service.stop()
        if runner is not None:
            await runner.cleanup()
        await runtime.stop()
        await fake.stop()


async def _is(got: object, want: object) -> bool:
    return await got == want  # type: ignore[misc]


async def _ready(entry: object) -> object:
    e = await entry  # type: ignore[misc]
    return e if e["pushes"] and e["last_reconciled_to"] else None


def _scrape(runtime: Runtime) -> bytes:
    return generate_latest(runtime.metrics.registry)


async def test_status_sums_every_process_and_keeps_the_latest_error(clickhouse: ClickHouse) -> None:
    """Two serve processes and a restarted one: each writes its own cumulative rows; the
    answer is their sum, whichever process asks."""
    config = parse_connectors({"connectors": [douyin_app("http://x", [shop("1001"), shop("1002")])]}, "t")
    state = ConnectorState(clickhouse)
    t = datetime(2026, 5, 1, 12, tzinfo=UTC)
    one, two, again = StatusBook("serve-1"), StatusBook("serve-2"), StatusBook("serve-1-restarted")
    for _ in range(3):
        one.push("douyin", "1001", t)
    two.push("douyin", "1001", t + timedelta(minutes=5))
    two.push("douyin", "1002", t)
    one.bad_signature("douyin", "dy-app")
    two.bad_signature("douyin", "dy-app")
    one.error("douyin", "1001", "push worker: order.orderDetail: HTTP 503", t)
    for book in (one, two):
        await StatusFlusher(book, state).flush()
    one.push("douyin", "1001", t + timedelta(minutes=9))  # a later flush of the same process replaces its row
    await StatusFlusher(one, state).flush()
    again.push("douyin", "1001", t + timedelta(minutes=7))
    again.error("douyin", "1001", "reconciliation: order.searchList: HTTP 429", t + timedelta(minutes=8))
    await StatusFlusher(again, state).flush()
    a, b = (await connectors_status(state, config))["connectors"]
    assert (a["shop_id"], a["pushes"], a["bad_signatures"], a["last_push_at"]) == (
        "1001", 6, 2, "2026-05-01T12:09:00.000Z")
    assert (a["last_error"], a["last_error_at"]) == ("reconciliation: order.searchList: HTTP 429",
                                                     "2026-05-01T12:08:00.000Z")  # fmt: skip
    assert (b["pushes"], b["bad_signatures"], b["last_error"], b["recovered_steps"]) == (1, 2, None, 0)
    assert a["last_reconciled_to"] is None
