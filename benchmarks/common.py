"""What the benchmarks share: scratch stores, the benchmark's order events and their bad
kinds, a loaded local broker, and the raw limits (a bare consumer, a bare insert) that
each figure is printed beside."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from benchmarks.poison import bad_payload
from benchmarks.poison import poisoned as poisoned  # bench stages and tests take it from here
from ground.settings import Settings
from ingest.topics import ensure_topics
from livesales.runtime import Runtime
from localbroker import LocalBroker

BASE = datetime(2020, 2, 29, 2, 0, tzinfo=UTC)
# the allocators' settings the runtime sets in its own process (ground.heap): raw limit B
# runs without them
BARE_ENV_DROPPED = frozenset({"JE_MALLOC_CONF", "MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_"})


def scratch_dir() -> tempfile.TemporaryDirectory[str]:
    """A throw-away store under ``./data``, where a deployment keeps its own.

    Not in /tmp, which the test suites churn: on this ext4 disk creating a file costs
    ~0.03 ms where few files were deleted lately and up to ~0.5 ms where many were (the
    inode allocator skips recently deleted inodes; docs/BENCHMARKS.md), and every insert
    creates ~44 files. Back-to-back runs still churn ``./data``: that is part of what a
    run measures, as it is part of a long-running service's life.
    """
    root = Path("data").resolve()  # absolute, as a chdb:// DSN needs
    root.mkdir(exist_ok=True)
    return tempfile.TemporaryDirectory(prefix="bench-", dir=root)


@dataclass
class Loaded:
    broker: LocalBroker
    settings: Settings  # for a fresh group and a throw-away store
    payloads: list[bytes | None]  # None: a tombstone (a bad message of benchmarks.poison)
    produce_seconds: float


@asynccontextmanager
async def loaded_broker(
    n: int, poison: float = 0.0, keyed: bool = True, recent: bool = False
) -> AsyncIterator[Loaded]:
    """A local broker whose orders topic holds ``n`` benchmark events: the common start
    of ``bench ingest`` and ``bench stages``, so both measure the same events.
    ``poison``: that share of them bad (benchmarks.poison: the fault battery's 27 kinds),
    spread evenly; ``keyed``: keyed by order_id (else no key: ``bench ingest --unkeyed``);
    ``recent``: the events end a minute ago at 20 per second (else they start at BASE, in
    2020, older than the dedupe horizon: processors.dedupe's window path)."""
    rnd = random.Random(42)
    first = datetime.now(UTC) - timedelta(seconds=60 + n / 20) if recent else None
    good = [order_payload(i, "bench", rnd, first and first + timedelta(seconds=i // 20)) for i in range(n)]
    payloads: list[bytes | None] = list(good)
    for k, i in enumerate(poisoned(n, poison)):
        payloads[i] = bad_payload(k, good[i])
    with LocalBroker() as broker, scratch_dir() as tmp:
        settings = Settings(kafka_bootstrap=broker.bootstrap, clickhouse_dsn=f"chdb://{tmp}/ch")
        await ensure_topics(broker.bootstrap, [*settings.topics, settings.topic_dlq], partitions=4)
        print(f"producing {n:,} order events ...", flush=True)
        seconds = await produce(broker.bootstrap, settings.topic_orders, payloads, keyed)
        yield Loaded(broker, settings, payloads, seconds)


def event_time(i: int) -> datetime:
    """The default event time of the ``i``-th benchmark order: 20 orders a second from BASE."""
    return BASE + timedelta(seconds=i // 20)


def order_payload(i: int, channel: str, rnd: random.Random, at: datetime | None = None) -> bytes:
    """The ``i``-th benchmark order; ``at``: its event time (default: 20 orders per second
    from BASE, which puts a long run's events days apart: ``bench soak`` passes now)."""
    qty = rnd.randint(1, 3)
    event = {
        "schema": "order.v1", "event_id": f"{channel}-e{i}", "order_id": f"{channel}-o{i}",
        "occurred_at": (at or event_time(i)).isoformat(), "status": "paid",
        "channel_id": f"{channel}-{i % 50}", "platform": "douyin", "merchant_id": "changjie-clam-coop",
        "region": {"district": "宁海县", "township": "长街镇"},
        "items": [{"sku": "clam-2.5kg", "name": "长街蛏子 2.5kg 装", "quantity": qty, "unit_price_fen": 6800,
                   "weight_g": 2500}],
        "amount_fen": qty * 6800,
    }  # fmt: skip
    return json.dumps(event, ensure_ascii=False).encode()


def key_of(payload: bytes | None) -> bytes | None:
    """Contract §1's recommended key, the order_id (None for a value that is not JSON): the
    default partitioner then puts each message where the consumer takes it directly."""
    if payload is None:
        return TOMBSTONE_KEY
    try:
        return str(orjson.loads(payload)["order_id"]).encode()
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


TOMBSTONE_KEY = b"tombstone"  # a message without value must have a key


async def produce(bootstrap: str, topic: str, payloads: Sequence[bytes | None], keyed: bool = True) -> float:
    """``keyed=False``: no keys, as some producers send: every message is forwarded once
    through ``<topic>.routed`` (ingest.routing). A tombstone (None) is keyed either way."""
    keys = [key_of(v) if keyed or v is None else None for v in payloads]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20, acks="all")
    await producer.start()
    started = time.perf_counter()
    try:
        futures = []
        for value, key in zip(payloads, keys, strict=True):
            futures.append(await producer.send(topic, value, key=key))
            if len(futures) >= 20_000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def raw_consume(bootstrap: str, topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"raw-{time.time_ns()}", auto_offset_reset="earliest",
        enable_auto_commit=False, max_partition_fetch_bytes=4 << 20, fetch_max_bytes=16 << 20,
    )  # fmt: skip
    await consumer.start()
    seen, started = 0, 0.0
    try:
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=20_000)
            if batch and not started:
                started = time.perf_counter()
            seen += sum(len(v) for v in batch.values())
    finally:
        await consumer.stop()
    return time.perf_counter() - started


async def ours(
    settings: Settings, n: int, dead: int = 0, on_first_row: Callable[[], None] | None = None, stored: int = 0
) -> tuple[float, Runtime]:
    """Seconds from the first stored row to the last (group join time left out); with
    ``dead``, also until that many messages are dead-lettered (and acknowledged).
    ``stored``: order steps the store held before (``bench bigstore``)."""
    runtime = Runtime(settings)
    await runtime.start(api=False)
    started = 0.0
    n += stored
    while True:
        rows = await runtime.store.query("SELECT count() AS c FROM order_steps")
        if rows[0]["c"] > stored and not started:
            started = time.perf_counter()
            if on_first_row is not None:
                on_first_row()
        if rows[0]["c"] >= n and dead_letters(runtime) >= dead:
            return time.perf_counter() - started, runtime
        await asyncio.sleep(0.02)


def dead_letters(runtime: Runtime) -> int:
    return int(sum(s.value for m in runtime.metrics.dead_letters.collect() for s in m.samples
                   if s.name.endswith("_total")))  # fmt: skip


async def raw_insert(payloads: list[bytes]) -> float:
    """Raw limit B: seconds for chDB as it comes, in a process of its own and a fresh
    store, to insert ``payloads`` (benchmarks.bare_insert says why apart)."""
    answer = await bare_run(payloads)
    return float(answer["seconds"])


async def bare_run(payloads: list[bytes]) -> dict[str, Any]:
    """benchmarks.bare_insert's answer; raises if it failed or stored fewer rows."""
    with scratch_dir() as root:
        values = Path(root) / "payloads.jsonl"
        values.write_bytes(b"\n".join(payloads))  # JSON values hold no raw newline
        env = {k: v for k, v in os.environ.items() if k not in BARE_ENV_DROPPED}
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.bare_insert", str(values), str(Path(root) / "store"),
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"benchmarks.bare_insert exited {child.returncode}: {err.decode()[-300:]}")
        answer: dict[str, Any] = json.loads(out.decode().splitlines()[-1])
        if answer["rows"] != len(payloads):
            raise RuntimeError(f"benchmarks.bare_insert stored {answer['rows']} of {len(payloads)} rows")
        return answer
