"""``livesales bench procs``: ingest with 1, 2, 4 ``livesales consume`` processes over HTTP.

What sizes a cluster is not this machine's events/s (two shared cores do not scale with
processes) but the CPU a consumer process spends per event, and how that changes as the
partitions are spread over more processes. For each process count P, on fresh topics
(4 partitions) and a fresh ClickHouse database:

1. produce N order events (a backlog, as after an outage or a scale-out);
2. start P ``livesales consume`` processes at once against the ClickHouse HTTP endpoint:
   they join the group within the broker's first-join delay (Tansu holds a new group's
   first assignment ~5 s), so all P share the first assignment and no rebalance runs
   during the measurement (checked: a process that logged two assignments is flagged);
3. time from the first stored row to the N-th; CPU seconds of each consume process (with
   its validation child) from its readiness (subscribed, start-up done, nothing fetched
   yet) to the end, read from /proc, and of the ClickHouse endpoint and broker beside them.

The ClickHouse endpoint is tests/support/clickhouse_http.py (chDB behind ClickHouse's
HTTP interface; no current ClickHouse server installs here), started from this checkout,
unless ``LIVESALES_CLICKHOUSE_DSN`` names an ``http(s)://`` server. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from benchmarks.common import order_payload, produce, scratch_dir
from ground.settings import Settings
from ingest.topics import ensure_topics
from localbroker import LocalBroker, free_port
from processors.store import ClickHouse

ROOT = Path(__file__).resolve().parents[1]
_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants (the validation child)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                children.setdefault(int(_stat(int(entry.name))[1]), []).append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue  # exited meanwhile
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = _stat(p)
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICK
        todo.extend(children.get(p, []))
    return total


@contextmanager
def http_clickhouse(data: Path) -> Iterator[tuple[str, int | None]]:
    """(DSN, server pid): the configured http(s):// server, or the chDB-backed test server."""
    configured = os.environ.get("LIVESALES_CLICKHOUSE_DSN", "")
    if configured.startswith(("http://", "https://")):
        yield configured, None
        return
    proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        [sys.executable, "-m", "tests.support.clickhouse_http", "--data", str(data), "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None  # noqa: S101
        line = proc.stdout.readline().decode()
        if not line.startswith("listening on "):
            raise RuntimeError(f"ClickHouse HTTP test server did not start: {line!r}")
        yield f"{line.split()[-1]}/default", proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


@dataclass
class Run:
    procs: int
    events: int
    seconds: float
    produce_seconds: float
    cpu: list[float]  # per consume process (with its validation child)
    server_cpu: float | None
    broker_cpu: float
    stored: int
    rebalanced: bool  # some process was assigned partitions more than once


async def _ready(port: int) -> bool:
    try:
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/readyz") as r:
            return r.status == 200
    except aiohttp.ClientError:
        return False


async def _until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


async def one_run(p: int, payloads: list[bytes], broker: LocalBroker, dsn: str, server_pid: int | None,
                  logs: Path) -> Run:  # fmt: skip
    tag = f"p{p}-{time.time_ns()}"
    base, _, _ = dsn.rpartition("/")
    db_dsn = f"{base}/procs_{tag.replace('-', '_')}"
    admin = ClickHouse(dsn)
    await admin.open()
    await admin.run_in_thread(admin.client.command, f"CREATE DATABASE procs_{tag.replace('-', '_')}")
    await admin.close()
    settings = Settings(
        kafka_bootstrap=broker.bootstrap, consumer_group=f"procs-{tag}", topic_orders=f"orders-{tag}",
        topic_onboarding=f"onboarding-{tag}", topic_stream_stats=f"stats-{tag}", topic_channels=f"channels-{tag}",
        topic_dlq=f"dlq-{tag}",
        clickhouse_dsn=db_dsn,
    )  # fmt: skip
    await ensure_topics(broker.bootstrap, [*settings.topics, settings.topic_dlq], partitions=4)
    store = ClickHouse(db_dsn)
    await store.open()  # migrates once, before the consumers race to
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVESALES_")}
    env.update({
        "LIVESALES_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "LIVESALES_CONSUMER_GROUP": settings.consumer_group,
        "LIVESALES_TOPIC_ORDERS": settings.topic_orders, "LIVESALES_TOPIC_ONBOARDING": settings.topic_onboarding,
        "LIVESALES_TOPIC_STREAM_STATS": settings.topic_stream_stats, "LIVESALES_TOPIC_DLQ": settings.topic_dlq,
        "LIVESALES_TOPIC_CHANNELS": settings.topic_channels,
        "LIVESALES_CLICKHOUSE_DSN": db_dsn,
    })  # fmt: skip
    produce_seconds = await produce(broker.bootstrap, settings.topic_orders, payloads)
    procs: list[tuple[subprocess.Popen[bytes], Path, int]] = []
    try:
        for i in range(p):
            port, log = free_port(), logs / f"{tag}-{i}.log"
            with open(log, "ab") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "livesales.cli", "consume"], cwd=ROOT, stdout=out, stderr=out,
                    env={**env, "LIVESALES_HEALTH_PORT": str(port)},
                )  # fmt: skip
            procs.append((proc, log, port))
        cpu0: dict[int, float] = {}

        async def all_ready() -> bool:  # each one's CPU is taken the moment it is ready
            for i, (proc, _, port) in enumerate(procs):
                if i not in cpu0 and await _ready(port):
                    cpu0[i] = tree_cpu(proc.pid)
            return len(cpu0) == len(procs)

        await _until(all_ready, 120, "consume /readyz")
        server0 = tree_cpu(server_pid) if server_pid else 0.0
        broker0 = tree_cpu(broker.pid)
        started, n = 0.0, len(payloads)
        while True:
            rows = await store.query("SELECT count() AS c FROM order_steps")
            if rows[0]["c"] and not started:
                started = time.perf_counter()
            if rows[0]["c"] >= n:
                seconds = time.perf_counter() - started
                stored = int(rows[0]["c"])
                break
            await asyncio.sleep(0.05)
        cpu = [tree_cpu(proc.pid) - cpu0[i] for i, (proc, _, _) in enumerate(procs)]
        rebalanced = any(log.read_text().count(" assigned [") > 1 for _, log, _ in procs)
        server_cpu = tree_cpu(server_pid) - server0 if server_pid else None
        broker_cpu = tree_cpu(broker.pid) - broker0
    finally:
        for proc, _, _ in procs:
            proc.send_signal(signal.SIGTERM)
        for proc, _, _ in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        await store.close()
    return Run(p, n, seconds, produce_seconds, cpu, server_cpu, broker_cpu, stored, rebalanced)


async def bench_procs(args: argparse.Namespace) -> None:
    n = args.events or 100_000
    counts = [int(x) for x in args.procs.split(",")]
    rnd = random.Random(42)
    payloads = [order_payload(i, "procs", rnd) for i in range(n)]
    runs = []
    with LocalBroker() as broker, scratch_dir() as tmp, http_clickhouse(Path(tmp) / "ch") as (dsn, server_pid):
        for p in counts:
            print(f"{p} consume process(es), {n:,} events ...", flush=True)
            runs.append(await one_run(p, payloads, broker, dsn, server_pid, Path(tmp)))
    per = 100_000 / n
    print()
    print(f"{'procs':>5} {'events/s':>10} {'produce s':>10} {'consume CPU-s/100k (each process)':>40} "
          f"{'total':>7} {'ClickHouse':>10} {'broker':>7} {'stored':>8}")  # fmt: skip
    for r in runs:
        each = " ".join(f"{c * per:.1f}" for c in r.cpu)
        server = f"{r.server_cpu * per:.1f}" if r.server_cpu is not None else "-"
        print(f"{r.procs:>5} {r.events / r.seconds:>10,.0f} {r.produce_seconds:>10.1f} {each:>40} "
              f"{sum(r.cpu) * per:>7.1f} {server:>10} {r.broker_cpu * per:>7.1f} {r.stored:>8,}"
              f"{'  (a rebalance ran during the run)' if r.rebalanced else ''}")  # fmt: skip
