"""Shared fixtures: a real Kafka-protocol broker (Tansu) and real embedded ClickHouse.

The broker is started once per test session on a free port; each test gets fresh,
uniquely named topics so tests never see each other's messages. chDB can hold one data
path per process at a time, so each ClickHouse fixture opens a fresh temp dir and
closes it when the test ends. Migrating an empty store takes ~1.2 s (some sixty DDL
statements) and a copy of one migrated once per session ~0.1 s, so the ``clickhouse``
fixture starts from that copy; tests of migrations themselves open a path of their own.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.producer import Producer
from ingest.topics import ensure_topics
from livesales.settings import Settings
from localbroker import LocalBroker
from processors.store import ClickHouse


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with LocalBroker(log_path=log) as b:
        yield b


@pytest.fixture
def settings(broker: LocalBroker, tmp_path: Path) -> Settings:
    """Settings with unique topic and group names for this test."""
    tag = uuid.uuid4().hex[:8]
    return Settings(
        kafka_bootstrap=broker.bootstrap,
        consumer_group=f"g-{tag}",
        topic_orders=f"orders-{tag}",
        topic_onboarding=f"onboarding-{tag}",
        topic_stream_stats=f"stats-{tag}",
        topic_channels=f"channels-{tag}",
        topic_dlq=f"dlq-{tag}",
        clickhouse_dsn=f"chdb://{tmp_path / 'ch'}",
        api_port=0,
        batch_wait_ms=20,
    )


@pytest.fixture
async def topics(settings: Settings) -> Settings:
    await ensure_topics(
        settings.kafka_bootstrap, [*settings.topics, settings.topic_dlq], partitions=4, routed_from=settings.topics
    )
    return settings


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed chDB store with every migration applied, to copy from (never opened again)."""
    path = tmp_path_factory.mktemp("template") / "ch"

    async def migrate() -> None:
        ch = ClickHouse(f"chdb://{path}")
        await ch.open()
        await ch.close()

    asyncio.run(migrate())
    return path


@pytest.fixture
async def clickhouse(settings: Settings, migrated_store: Path) -> AsyncIterator[ClickHouse]:
    target = Path(settings.clickhouse_dsn.removeprefix("chdb://"))
    if not target.exists():  # the tables' directories are linked relatively: a copy is a store
        shutil.copytree(migrated_store, target, symlinks=True)
    ch = ClickHouse(settings.clickhouse_dsn)
    await ch.open()
    try:
        yield ch
    finally:
        await ch.close()


@pytest.fixture
async def producer(topics: Settings) -> AsyncIterator[Producer]:
    """The service's own producer on this test's broker (topics created first)."""
    p = Producer(topics.kafka_bootstrap)
    await p.start()
    yield p
    await p.stop()


async def wait_for(
    check: Callable[[], Awaitable[Any]], timeout: float = 30.0, interval: float = 0.1, what: str = "condition"
) -> Any:
    """Poll ``check`` until it returns a truthy value; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")
