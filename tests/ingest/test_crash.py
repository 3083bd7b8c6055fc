"""SIGKILL between a write and its offset commit, then restart: nothing counts twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ground.settings import Settings
from ingest.producer import Producer
from livesales.wiring import topics as topics_of
from processors.store import ClickHouse
from tests.conftest import wait_for
from tests.reference import distinct_counts, encode, generate, reference, stored_minutes
from tests.support.offsets import all_committed

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def spawn(settings: Settings, *args: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LIVESALES_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LIVESALES_CONSUMER_GROUP": settings.consumer_group,
        "LIVESALES_TOPIC_ORDERS": settings.topic_orders,
        "LIVESALES_TOPIC_ONBOARDING": settings.topic_onboarding,
        "LIVESALES_TOPIC_STREAM_STATS": settings.topic_stream_stats,
        "LIVESALES_TOPIC_CHANNELS": settings.topic_channels,
        "LIVESALES_TOPIC_DLQ": settings.topic_dlq,
        "LIVESALES_CLICKHOUSE_DSN": settings.clickhouse_dsn,
        "LIVESALES_TUNING": '{"batch_max_records": 500}',
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.ingest.runner", *args], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


async def output(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """What the runner printed until it exited; one that never exits is killed, not left
    running after the test."""
    try:
        out, _ = await asyncio.to_thread(proc.communicate, timeout=timeout)
        return out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_sigkill_after_write_before_commit_counts_nothing_twice(topics: Settings) -> None:
    events = generate(n_orders=300, seed=13)
    producer = Producer(topics.kafka_bootstrap)
    await producer.start()
    await producer.send_all_or_raise([(topics_of(topics).for_schema(e["schema"]), None, encode(e)) for e in events])
    await producer.stop()

    crashing = spawn(topics, "--crash-before-commit")
    out = await output(crashing, 120)
    assert crashing.returncode == -signal.SIGKILL, out.decode()
    assert b"dying before commit" in out
    assert not await all_committed(topics)  # the stored batch really was left uncommitted

    service = spawn(topics)
    try:
        await wait_for(lambda: all_committed(topics), timeout=120, what="every offset committed after restart")
    finally:
        service.send_signal(signal.SIGTERM)
        out = await output(service, 60)
    assert service.returncode == 0, out.decode()

    ch = ClickHouse(topics.clickhouse_dsn)
    await ch.open()
    try:
        rows = await ch.query("SELECT (SELECT count() FROM order_steps) AS o, (SELECT count() FROM stream_stats) AS s")
        assert (rows[0]["o"], rows[0]["s"]) == distinct_counts(events)
        stored = {k: {m: v for m, v in c.items() if v} for k, c in (await stored_minutes(ch)).items()}
        want = {k: {m: v for m, v in c.items() if v} for k, c in reference(events).items()}
        assert stored == want
    finally:
        await ch.close()
