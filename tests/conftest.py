"""Shared fixtures: a real Kafka-protocol broker (Tansu) and real embedded ClickHouse.

The broker is started once per test session on a free port; each test gets fresh,
uniquely named topics so tests never see each other's messages. chDB can hold one data
path per process at a time, so each ClickHouse fixture opens a fresh temp dir and
closes it when the test ends. Migrating an empty store takes ~1.2 s (some sixty DDL
statements) and a copy of one migrated once per session ~0.1 s, so the ``clickhouse``
fixture starts from that copy; tests of migrations themselves open a path of their own.

Tests that need a broker, a process of their own or a browser are marked ``needs_services``
here (by the fixtures they use, or by where they are: ``SPAWNING``); ``make check`` leaves
them out, ``make test`` runs everything.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ground.settings import Settings, Tuning
from ingest.crcs import check_crcs_in_hardware
from ingest.producer import Producer
from ingest.records import lighten_records
from ingest.topics import ensure_topics
from localbroker import LocalBroker
from processors.store import ClickHouse
from tests.support.process import ClickHouseHTTPProcess

# A fixture in a test's closure that starts a service: the session broker is behind
# ``settings``, ``topics``, ``producer``, ``clickhouse``, ``api_settings`` and ``loaded``.
SERVICE_FIXTURES = {
    "broker": "the session's Tansu broker",
    "frozen_broker": "a Tansu broker of its own",
    "chhttp": "a ClickHouse HTTP server process",
    "demo": "a `livesales demo` process",
    "browser": "Chromium",
}
# Tests that start processes with no such fixture saying so: a folder, a file, or a
# file's test (every parameter of it). tests/test_tiers.py checks that each one exists.
SPAWNING = {
    "tests/livesales/": "livesales processes and ClickHouse HTTP server processes",
    "tests/demo/": "a `livesales demo` process and Chromium",
    "tests/benchmarks/test_validation_heap.py": "a validating child process",
    "tests/support/test_clickhouse_http.py": "a ClickHouse HTTP server process",
    "tests/processors/test_fence_server.py": "a ClickHouse HTTP server process",
    "tests/processors/test_checkpool.py": "validation child processes",
    "tests/deploy/test_kubernetes.py": "kubectl",
    "tests/deploy/test_dockerfile.py::test_healthcheck_asks_readyz_on_the_role_port": "the image's health check",
    "tests/schemas/test_cluster.py::test_every_cluster_statement_parses_in_clickhouse": "a chDB probe process",
    "tests/schemas/test_cluster.py::test_same_columns_and_projections_as_single_node": "chDB probe processes",
    "tests/schemas/test_cluster.py::test_the_per_firm_projections_go_to_every_shards_local_table": "a chDB probe process",
    "tests/schemas/test_cluster.py::test_the_writer_counts_the_same_through_distributed_tables": "chDB probe processes",
    "tests/schemas/test_cluster.py::test_a_later_migration_is_clustered_generically": "a chDB probe process",
}


def services_of(nodeid: str, fixturenames: Iterable[str]) -> list[str]:
    """What a test starts besides itself ([] for none), from its node id and fixture closure."""
    path, _, name = nodeid.partition("::")
    name = name.split("[")[0]
    needs = [why for fixture, why in SERVICE_FIXTURES.items() if fixture in fixturenames]
    for where, why in SPAWNING.items():
        file, _, test = where.partition("::")
        in_folder = file.endswith("/") and path.startswith(file)
        if in_folder or (path == file and test in ("", name)):
            needs.append(why)
    return needs


def pytest_configure(config: pytest.Config) -> None:
    """What the CLI sets up process-wide for the service (ingest.records, ingest.crcs): the
    runtimes the tests start in this process then read Kafka as the service does."""
    lighten_records()
    check_crcs_in_hardware()


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        needs = services_of(item.nodeid, getattr(item, "fixturenames", ()))
        if needs:
            item.add_marker(pytest.mark.needs_services(*needs))


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
        tuning=Tuning(batch_wait_ms=20),
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


@pytest.fixture
def chhttp(tmp_path: Path) -> Iterator[ClickHouseHTTPProcess]:
    with ClickHouseHTTPProcess(tmp_path / "chdata", log_path=tmp_path / "chhttp.log") as ch:
        yield ch


@pytest.fixture
async def http_store(chhttp: ClickHouseHTTPProcess) -> AsyncIterator[ClickHouse]:
    """The test's own look at the shared store, through the same HTTP endpoint."""
    ch = ClickHouse(chhttp.dsn)
    await ch.open()
    yield ch
    await ch.close()
