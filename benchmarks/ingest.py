"""``livesales bench ingest``: end-to-end rate and freshness beside the raw limits.

Everything runs on this machine in one go, so the figures compare like with like:
1. N order events are put on a local broker (Tansu).
2. raw limit A: a bare aiokafka consumer reads them (no parsing, nothing stored).
3. ours: the real runtime (validate, dedupe, store, commit) from a fresh group, timed
   until every event is counted in ClickHouse.
4. raw limit B: chDB inserts the same payloads as JSONEachRow into a flat table.
5. freshness: a separate process produces at a steady rate; we poll ClickHouse and time
   each event from its send to the first query that sees it.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import multiprocessing as mp
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from ground.settings import Settings
from ingest.topics import ensure_topics
from livesales.runtime import Runtime
from localbroker import LocalBroker

BASE = datetime(2020, 2, 29, 2, 0, tzinfo=UTC)


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
    payloads: list[bytes]
    produce_seconds: float


@asynccontextmanager
async def loaded_broker(n: int, poison: float = 0.0, keyed: bool = True) -> AsyncIterator[Loaded]:
    """A local broker whose orders topic holds ``n`` benchmark events: the common start
    of ``bench ingest`` and ``bench stages``, so both measure the same events.
    ``poison``: that share of them bad (``bad_payload``), spread evenly; ``keyed``: keyed
    by order_id (else no key: ``bench ingest --unkeyed``)."""
    rnd = random.Random(42)
    payloads = [order_payload(i, "bench", rnd) for i in range(n)]
    for k, i in enumerate(poisoned(n, poison)):
        payloads[i] = bad_payload(k, payloads[i])
    with LocalBroker() as broker, scratch_dir() as tmp:
        settings = Settings(kafka_bootstrap=broker.bootstrap, clickhouse_dsn=f"chdb://{tmp}/ch")
        await ensure_topics(broker.bootstrap, [*settings.topics, settings.topic_dlq], partitions=4)
        print(f"producing {n:,} order events ...", flush=True)
        seconds = await produce(broker.bootstrap, settings.topic_orders, payloads, keyed)
        yield Loaded(broker, settings, payloads, seconds)


# The four kinds of bad message a flood carries, in turn, and the code each must get.
BAD_KINDS = ("invalid_json", "unknown_schema", "schema_violation", "timestamp_out_of_range")


def poisoned(n: int, share: float) -> list[int]:
    """Indices of the bad messages: ``share`` of ``n``, spread evenly."""
    if share <= 0:
        return []
    return sorted({min(n - 1, int(k / share)) for k in range(int(n * share))})


def bad_payload(k: int, good: bytes) -> bytes:
    """The ``k``-th bad message: each of BAD_KINDS in turn."""
    kind = BAD_KINDS[k % len(BAD_KINDS)]
    if kind == "invalid_json":
        return good[: len(good) // 2]
    if kind == "unknown_schema":
        return good.replace(b'"order.v1"', b'"order.v9"', 1)
    if kind == "schema_violation":
        return good.replace(b'"quantity": ', b'"quantity": -', 1)
    return good.replace(b'"occurred_at": "2020-', b'"occurred_at": "1996-', 1)  # a leap year: Feb 29 stays valid


def order_payload(i: int, channel: str, rnd: random.Random, at: datetime | None = None) -> bytes:
    """The ``i``-th benchmark order; ``at``: its event time (default: 20 orders per second
    from BASE, which puts a long run's events days apart: ``bench soak`` passes now)."""
    qty = rnd.randint(1, 3)
    event = {
        "schema": "order.v1", "event_id": f"{channel}-e{i}", "order_id": f"{channel}-o{i}",
        "occurred_at": (at or BASE + timedelta(seconds=i // 20)).isoformat(), "status": "paid",
        "channel_id": f"{channel}-{i % 50}", "platform": "douyin", "merchant_id": "changjie-clam-coop",
        "region": {"district": "宁海县", "township": "长街镇"},
        "items": [{"sku": "clam-2.5kg", "name": "长街蛏子 2.5kg 装", "quantity": qty, "unit_price_fen": 6800,
                   "weight_g": 2500}],
        "amount_fen": qty * 6800,
    }  # fmt: skip
    return json.dumps(event, ensure_ascii=False).encode()


def key_of(payload: bytes) -> bytes | None:
    """Contract §1's recommended key, the order_id (None for a value that is not JSON): the
    default partitioner then puts each message where the consumer takes it directly."""
    try:
        return str(orjson.loads(payload)["order_id"]).encode()
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


async def produce(bootstrap: str, topic: str, payloads: list[bytes], keyed: bool = True) -> float:
    """``keyed=False``: no keys, as some producers send: every message is forwarded once
    through ``<topic>.routed`` (ingest.routing)."""
    keys = [key_of(v) if keyed else None for v in payloads]
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
    settings: Settings, n: int, dead: int = 0, on_first_row: Callable[[], None] | None = None
) -> tuple[float, Runtime]:
    """Seconds from the first stored row to the last (group join time left out); with
    ``dead``, also until that many messages are dead-lettered (and acknowledged)."""
    runtime = Runtime(settings)
    await runtime.start(api=False)
    started = 0.0
    while True:
        rows = await runtime.store.query("SELECT count() AS c FROM order_steps")
        if rows[0]["c"] and not started:
            started = time.perf_counter()
            if on_first_row is not None:
                on_first_row()
        if rows[0]["c"] >= n and dead_letters(runtime) >= dead:
            return time.perf_counter() - started, runtime
        await asyncio.sleep(0.02)


def dead_letters(runtime: Runtime) -> int:
    return int(sum(s.value for m in runtime.metrics.dead_letters.collect() for s in m.samples
                   if s.name.endswith("_total")))  # fmt: skip


async def raw_insert(runtime: Runtime, payloads: list[bytes]) -> float:
    client = runtime.store.client
    client.command(
        "CREATE TABLE IF NOT EXISTS bench_raw (event_id String, order_id String, occurred_at DateTime64(3),"
        " status String, channel_id String, platform String, merchant_id String, amount_fen UInt64,"
        " region Tuple(district String, township String),"
        " items Array(Tuple(sku String, name String, quantity UInt32, unit_price_fen UInt64, weight_g UInt32)))"
        " ENGINE = MergeTree ORDER BY (channel_id, occurred_at)"
    )
    started = time.perf_counter()
    for k in range(0, len(payloads), 20_000):
        block = b"\n".join(payloads[k : k + 20_000])
        await runtime.store.run_in_thread(
            client.raw_insert, "bench_raw", None, block, settings={"input_format_skip_unknown_fields": 1},
            fmt="JSONEachRow",
        )
    return time.perf_counter() - started


def _steady_producer(bootstrap: str, topic: str, rate: int, seconds: int, out: str) -> None:
    """Child process: send ``rate`` events/s for ``seconds``, record each send time."""

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, acks="all")
        await producer.start()
        rnd = random.Random(1)
        sent: dict[str, float] = {}
        t0 = time.time()
        tick = 0.01
        i = 0
        for step in range(int(seconds / tick)):
            due = t0 + step * tick
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            for _ in range(int(rate * tick)):
                payload = order_payload(i, "fresh", rnd)
                await producer.send(topic, payload, key=f"fresh-o{i}".encode())
                sent[f"fresh-o{i}"] = time.time()
                i += 1
        await producer.flush()
        await producer.stop()
        Path(out).write_text(json.dumps(sent))

    asyncio.run(run())


async def freshness(runtime: Runtime, rate: int, seconds: int) -> dict[str, float]:
    settings = runtime.settings
    out = tempfile.mktemp(suffix=".json")  # noqa: S306 - a child process writes it
    child = mp.get_context("spawn").Process(
        target=_steady_producer, args=(settings.kafka_bootstrap, settings.topic_orders, rate, seconds, out)
    )
    child.start()
    # The poll must not load the service it measures: it asks only for rows of inserts
    # newer than the last one seen. The single writer stores one insert at a time and
    # each insert's rows share one ``stored_at``, so nothing is skipped; a row that was
    # would show as seen < events.
    visible: dict[str, float] = {}
    since = datetime(2000, 1, 1, tzinfo=UTC)
    quiet_since = time.time()
    while child.is_alive() or len(visible) < rate * seconds:
        rows = await runtime.store.query(
            "SELECT order_id, stored_at FROM order_steps WHERE stored_at > {since:DateTime64(3)}"
            " AND startsWith(order_id, 'fresh-')",
            {"since": since},
        )
        now = time.time()
        for r in rows:
            visible.setdefault(r["order_id"], now)
        if rows:
            since = max(r["stored_at"] for r in rows)
            quiet_since = now
        elif not child.is_alive() and now > quiet_since + 30:
            break
        await asyncio.sleep(0.02)
    child.join()
    sent: dict[str, float] = json.loads(Path(out).read_text())
    lat = sorted(visible[k] - t for k, t in sent.items() if k in visible)
    q = statistics.quantiles(lat, n=100)
    return {"events": len(sent), "seen": len(lat), "p50": q[49], "p99": q[98], "max": lat[-1]}


async def bench_ingest(args: argparse.Namespace) -> None:
    n = args.events or 400_000
    async with loaded_broker(n, keyed=not getattr(args, "unkeyed", False)) as loaded:
        t_prod, settings = loaded.produce_seconds, loaded.settings
        t_raw = await raw_consume(settings.kafka_bootstrap, settings.topic_orders, n)
        t_ours, runtime = await ours(settings, n)
        try:
            t_ins = await raw_insert(runtime, loaded.payloads)
            fresh = await freshness(runtime, args.rate, args.freshness_seconds)
        finally:
            await runtime.stop()
    limit = min(n / t_raw, n / t_ins)
    print()
    print(f"{'what':<44}{'events/s':>12}")
    print(f"{'producer (setup, acks=all)':<44}{n / t_prod:>12,.0f}")
    print(f"{'raw limit A: bare aiokafka consumer':<44}{n / t_raw:>12,.0f}")
    print(f"{'raw limit B: chDB JSONEachRow insert':<44}{n / t_ins:>12,.0f}")
    print(f"{'ours: consume+validate+dedupe+store+commit':<44}{n / t_ours:>12,.0f}")
    print(f"{'ours / slower raw limit':<44}{(n / t_ours) / limit:>12.2f}")
    print()
    print(
        f"freshness at {args.rate:,}/s for {args.freshness_seconds}s: {fresh['seen']:,}/{fresh['events']:,} seen, "
        f"p50 {fresh['p50'] * 1000:.0f} ms, p99 {fresh['p99'] * 1000:.0f} ms, max {fresh['max'] * 1000:.0f} ms"
    )


async def bench_poison(args: argparse.Namespace) -> None:
    """The same run clean and with ``--poison`` of the messages bad, alternated
    ``--repeat`` times: messages handled (stored, or dead-lettered with their code) per
    second, and per CPU second of the service (its process and the validation child).
    The CPU figure is the one to compare on a loaded machine, where wall-clock rates
    swing with the neighbours' load; both ratios are printed."""
    from benchmarks.stages import cpu_by_process

    n = args.events or 200_000
    rates: dict[float, list[float]] = {0.0: [], args.poison: []}
    cpu_rates: dict[float, list[float]] = {0.0: [], args.poison: []}
    for _ in range(max(1, args.repeat)):
        for share in (0.0, args.poison):
            bad = len(poisoned(n, share))
            async with loaded_broker(n, share) as loaded:
                pid = loaded.broker.pid
                before: dict[str, float] = {}
                t, runtime = await ours(loaded.settings, n - bad, bad, functools.partial(_snapshot, before, pid))
                after = cpu_by_process(pid)
                codes = {s.labels["code"]: int(s.value) for m in runtime.metrics.dead_letters.collect()
                         for s in m.samples if s.name.endswith("_total")}  # fmt: skip
                await runtime.stop()
            cpu = sum(v - before.get(k, 0.0) for k, v in after.items() if k != "broker")
            rates[share].append(n / t)
            cpu_rates[share].append(n / cpu)
            print(f"poison {share:.0%}: {n:,} messages ({bad:,} bad) in {t:.2f}s = {n / t:,.0f}/s,"
                  f" {n / cpu:,.0f} per service CPU second; dead letters {codes}", flush=True)  # fmt: skip
    med = statistics.median
    print(f"poisoned / clean, messages per second (median of {len(rates[0.0])}): "
          f"{med(rates[args.poison]) / med(rates[0.0]):.2f}")  # fmt: skip
    print(f"poisoned / clean, messages per service CPU second: {med(cpu_rates[args.poison]) / med(cpu_rates[0.0]):.2f}")


def _snapshot(into: dict[str, float], broker_pid: int) -> None:
    from benchmarks.stages import cpu_by_process

    into.update(cpu_by_process(broker_pid))


async def run_bench(args: argparse.Namespace) -> None:
    if args.which == "ingest" and args.poison > 0:
        await bench_poison(args)
    elif args.which == "ingest":
        await bench_ingest(args)
    elif args.which == "recovery":
        from benchmarks.recovery import bench_recovery

        await bench_recovery(args)
    elif args.which == "refresh":
        from benchmarks.refresh import bench_refresh

        await bench_refresh(args)
    elif args.which == "startup":
        from benchmarks.startup import bench_startup

        await bench_startup(args)
    elif args.which == "stages":
        from benchmarks.stages import bench_stages

        await bench_stages(args)
    elif args.which == "procs":
        from benchmarks.procs import bench_procs

        await bench_procs(args)
    elif args.which == "analytics":
        from benchmarks.analytics import bench_analytics

        await bench_analytics(args)
    elif args.which == "merges":
        from benchmarks.merges import bench_merges

        await bench_merges(args)
    elif args.which == "soak":
        from benchmarks.soak import bench_soak

        await bench_soak(args)
    elif args.which == "validation-heap":
        from benchmarks.validation_heap import bench_validation_heap

        await bench_validation_heap(args)
    elif args.which == "channels":
        from benchmarks.channels import bench_channels

        await bench_channels(args)
    elif args.which == "fence":
        from benchmarks.fence import bench_fence

        await bench_fence(args)
    elif args.which == "chaos":
        from benchmarks.chaos import bench_chaos

        await bench_chaos(args)
    elif args.which == "live":
        from benchmarks.live import bench_live

        await bench_live(args)
    else:
        from benchmarks.api import bench_api

        await bench_api(args)
