"""/readyz tells the truth: per component, with a policy per role (livesales.health)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ground.metrics import Metrics
from ground.settings import Settings
from ingest.lag import lag_trustworthy
from ingest.producer import Producer
from livesales.health import Health, ReadyPolicy
from livesales.runtime import Runtime
from livesales.wiring import topics as topics_of
from localbroker import LocalBroker
from processors.store import ClickHouse
from tests.conftest import wait_for
from tests.reference import encode, generate
from tests.support.settings import tuned


@dataclass
class FakeConsumer:
    """A consumer's observable state (unit tests of the policy only)."""

    name: str = "consumer-0"
    subscribed: bool = True
    stalled_since: float | None = None
    stall_reason: str | None = None
    last_write_ok_at: float | None = None
    last_write_failed_at: float | None = None
    lag_total: int | None = 0
    lag_trustworthy: bool = True


# -- the policy, over real storage and fake consumer states ------------------------------
async def test_consumer_stalled_past_the_limit_is_not_ready(settings: Settings, clickhouse: ClickHouse) -> None:
    consumer = FakeConsumer(stalled_since=time.monotonic() - 5, stall_reason="storage failed")
    health = Health("serve", ReadyPolicy(stall_s=10.0), clickhouse, None, [consumer])
    ready, body = await health.report()
    assert ready, body  # serve: consumers and broker do not decide
    health = Health("run", ReadyPolicy(stall_s=10.0), clickhouse, None, [consumer])
    _, body = await health.report()
    assert body["components"]["consumers"][0]["stalled_for_s"] == pytest.approx(5, abs=1)
    assert "consumer-0 stalled" not in body.get("error", {}).get("message", "")  # under the limit
    consumer.stalled_since = time.monotonic() - 11
    ready, body = await health.report()
    assert not ready
    assert "consumer-0 stalled for 11 s (storage failed)" in body["error"]["message"]
    assert "broker unreachable" in body["error"]["message"]  # no producer here


async def test_consumer_behind_that_stores_nothing_is_not_ready(settings: Settings, clickhouse: ClickHouse) -> None:
    """The soak found it: a broker that answered metadata but served no records left a
    consumer 2M records behind with nothing stored for minutes, and /readyz said 200."""
    consumer = FakeConsumer(last_write_ok_at=time.monotonic() - 5, lag_total=1000)
    health = Health("run", ReadyPolicy(stall_s=10.0), clickhouse, None, [consumer])
    _, body = await health.report()
    assert "records behind" not in body.get("error", {}).get("message", "")  # under the limit
    consumer.last_write_ok_at = time.monotonic() - 11
    ready, body = await health.report()
    assert not ready
    assert "consumer-0 1000 records behind, nothing stored for 11 s" in body["error"]["message"]
    consumer.lag_total = 0  # caught up: an idle consumer is ready
    _, body = await health.report()
    assert "records behind" not in body.get("error", {}).get("message", "")


async def test_storage_by_last_write_then_probe(settings: Settings, clickhouse: ClickHouse) -> None:
    consumer = FakeConsumer()
    health = Health("serve", ReadyPolicy(probe_s=60.0), clickhouse, None, [consumer])
    _, body = await health.report()
    assert body["components"]["storage"] == {"ok": True, "checked_by": "probe", "seconds_since_last_write": None}
    consumer.last_write_ok_at = time.monotonic()
    _, body = await health.report()
    assert body["components"]["storage"]["checked_by"] == "last_write"
    consumer.last_write_failed_at = time.monotonic()
    ready, body = await health.report()
    assert not ready
    assert body["components"]["storage"]["ok"] is False
    assert body["error"]["message"] == "storage cannot be read"


async def test_closed_storage_is_not_ready(settings: Settings) -> None:
    health = Health("serve", ReadyPolicy(), ClickHouse(settings.clickhouse_dsn), None, [])
    ready, body = await health.report()
    assert not ready and "storage is not open" in body["error"]["message"]


async def test_seconds_since_last_write_gauge(settings: Settings, clickhouse: ClickHouse) -> None:
    metrics = Metrics()
    consumer = FakeConsumer(last_write_ok_at=time.monotonic() - 42)
    Health("run", ReadyPolicy(), clickhouse, None, [consumer], metrics)
    value = metrics.registry.get_sample_value("livesales_seconds_since_last_write")
    assert value == pytest.approx(42, abs=1)


def test_lag_trust_rule() -> None:
    assert lag_trustworthy(end=100, committed=60, fetched=100)
    assert lag_trustworthy(end=100, committed=60, fetched=None)
    assert not lag_trustworthy(end=1, committed=51, fetched=51)  # Tansu, seen: end below what was read
    assert not lag_trustworthy(end=52, committed=51, fetched=76)  # below its own fetch's end


# -- the whole process against real faults ---------------------------------------------
@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime(settings)
    await runtime.start()
    try:
        await wait_for(lambda: ready_status(runtime, 200), timeout=30, what="ready")
        yield runtime
    finally:
        await runtime.stop()


async def readyz(runtime: Runtime) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{runtime.port}/readyz") as r:
        return r.status, await r.json()


async def ready_status(runtime: Runtime, status: int) -> dict[str, Any] | None:
    got, body = await readyz(runtime)
    return body if got == status else None


def unique(settings: Settings, **update: Any) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return tuned(settings, **{"consumer_group": f"g-{tag}", "topic_orders": f"orders-{tag}",
                                       "topic_onboarding": f"onb-{tag}", "topic_stream_stats": f"st-{tag}",
                                       "topic_dlq": f"dlq-{tag}", "validation_processes": 0, **update})  # fmt: skip


async def test_frozen_broker_is_not_ready(settings: Settings, tmp_path: Path) -> None:
    with LocalBroker(log_path=tmp_path / "b.log") as broker:
        async with running(unique(settings, kafka_bootstrap=broker.bootstrap)) as runtime:
            _, body = await readyz(runtime)
            assert body["components"]["broker"] == {"ok": True}
            assert body["components"]["consumers"][0]["subscribed"] is True
            broker.freeze()
            try:
                body = await wait_for(lambda: ready_status(runtime, 503), timeout=15, what="503 when frozen")
                assert "broker unreachable" in body["error"]["message"]
                assert body["components"]["broker"]["ok"] is False
            finally:
                broker.thaw()
            await wait_for(lambda: ready_status(runtime, 200), timeout=30, what="ready again after thaw")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 MiB tmpfs: root only."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(mnt)], check=False).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    # Unbuffered: a buffered file keeps the part of its last write that did not fit and
    # raises ENOSPC again when it is closed, outside this try (seen in CI).
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


@pytest.mark.slow
async def test_full_disk_is_not_ready_and_recovers(settings: Settings, small_disk: Path) -> None:
    s = unique(settings, clickhouse_dsn=f"chdb://{small_disk / 'ch'}", ready_probe_s=1.0, write_retry_max_s=1.0)
    async with running(s) as runtime:
        filler = fill(small_disk)
        body = await wait_for(lambda: ready_status(runtime, 503), timeout=15, what="503 with the disk full (probe)")
        assert body["components"]["storage"]["ok"] is False
        events = generate(n_orders=20, seed=3)
        producer = Producer(s.kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_all_or_raise([(topics_of(s).for_schema(e["schema"]), None, encode(e)) for e in events])
        finally:
            await producer.stop()
        await wait_for(lambda: ready_status(runtime, 503), timeout=15, what="still 503 while inserts fail")
        filler.unlink()
        await wait_for(lambda: ready_status(runtime, 200), timeout=30, what="ready once there is room")

        async def stored() -> bool:
            rows = await runtime.store.query("SELECT count() AS n FROM order_steps")
            return bool(rows[0]["n"])

        await wait_for(stored, timeout=30, what="the events stored after the disk had room again")
