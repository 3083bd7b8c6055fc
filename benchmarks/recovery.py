"""``livesales bench recovery``: how soon a SIGKILLed ``livesales run`` counts again.

A producer sends orders steadily; ``livesales run`` (a child process, its own chDB dir)
counts them; we SIGKILL it, restart it at once, and time from the restart to the first
row the new process stores (its ``livesales_rows_stored`` in /metrics). What bounds it
is docs/RELIABILITY.md's subject: the dead member's session must expire before the
group can rebalance its partitions to the new one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaProducer

from benchmarks.common import order_payload, scratch_dir
from ground.settings import Settings
from ingest.topics import ensure_topics
from localbroker import LocalBroker, free_port

STORED = re.compile(r'^livesales_rows_stored_total\{table="order_steps"\} (\S+)$', re.M)


@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    port: int

    async def stored(self) -> float:
        """Rows this process stored; 0 while it is not answering yet."""
        try:
            async with aiohttp.ClientSession() as s, s.get(
                f"http://127.0.0.1:{self.port}/metrics", timeout=aiohttp.ClientTimeout(total=1)
            ) as r:
                m = STORED.search(await r.text())
                return float(m.group(1)) if m else 0.0
        except (aiohttp.ClientError, TimeoutError):
            return 0.0


def spawn(env: dict[str, str], log: Path) -> Service:
    port = free_port()
    out = open(log, "ab")  # noqa: SIM115 - the child holds it; closed when the file object goes
    proc = subprocess.Popen(
        [sys.executable, "-m", "livesales.cli", "run"],
        env={**os.environ, **env, "LIVESALES_API_PORT": str(port)}, stdout=out, stderr=out,
    )  # fmt: skip
    out.close()
    return Service(proc, port)


@dataclass
class Sent:
    orders: int = 0  # distinct orders handed to the producer (all acknowledged once the block ends)


@contextlib.asynccontextmanager
async def steady_orders(bootstrap: str, topic: str, rate: int) -> AsyncIterator[Sent]:
    """Send ``rate`` distinct orders/s to ``topic`` until the block ends."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    sent, done = Sent(), asyncio.Event()

    async def send() -> None:
        import random

        rnd = random.Random(5)
        while not done.is_set():
            key = f"recover-o{sent.orders}".encode()  # the payload's order_id (contract §1)
            await producer.send(topic, order_payload(sent.orders, "recover", rnd), key=key)
            sent.orders += 1
            await asyncio.sleep(1 / rate)

    task = asyncio.create_task(send())
    try:
        yield sent
    finally:
        done.set()  # not cancel(): a send cut short could land uncounted
        await task
        await producer.stop()


async def first_count_after_restart(env: dict[str, str], log: Path, kills: int, timeout: float = 60.0) -> list[float]:
    """Seconds from each restart after a SIGKILL to the restarted process's first stored row."""
    service = spawn(env, log)
    out: list[float] = []
    try:
        await _until(lambda: counting(service), timeout, "the first process to count")
        for _ in range(kills):
            service.proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(service.proc.wait, 10)
            started = time.monotonic()
            service = spawn(env, log)
            await _until(lambda s=service: counting(s), timeout, "the restarted process to count")
            out.append(time.monotonic() - started)
    finally:
        if service.proc.poll() is None:
            service.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(service.proc.wait, 30)
            except subprocess.TimeoutExpired:
                service.proc.kill()
    return out


async def counting(service: Service) -> bool:
    if service.proc.poll() is not None:
        raise RuntimeError(f"livesales run exited with {service.proc.returncode}")
    return await service.stored() > 0


async def _until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def service_env(settings: Settings, data: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        "LIVESALES_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LIVESALES_CONSUMER_GROUP": settings.consumer_group,
        "LIVESALES_TOPIC_ORDERS": settings.topic_orders,
        "LIVESALES_TOPIC_ONBOARDING": settings.topic_onboarding,
        "LIVESALES_TOPIC_STREAM_STATS": settings.topic_stream_stats,
        "LIVESALES_TOPIC_DLQ": settings.topic_dlq,
        "LIVESALES_CLICKHOUSE_DSN": f"chdb://{data}",
        **(extra or {}),
    }


async def bench_recovery(args: argparse.Namespace) -> None:
    kills = args.kills
    rows = []
    with LocalBroker() as broker, scratch_dir() as tmp:
        variants: list[tuple[str, dict[str, str]]] = [
            ("defaults (session 6 s, heartbeat 1 s)", {}),
            ("aiokafka's defaults (session 10 s, heartbeat 3 s)",
             {"LIVESALES_KAFKA_SESSION_TIMEOUT_MS": "10000",
              "LIVESALES_TUNING": '{"kafka_rebalance_timeout_ms": 30000}'}),
        ]  # fmt: skip
        for k, (label, extra) in enumerate(variants):
            settings = Settings(kafka_bootstrap=broker.bootstrap, consumer_group=f"recovery-{k}",
                                topic_orders=f"recovery-orders-{k}")  # fmt: skip
            await ensure_topics(broker.bootstrap, [*settings.topics, settings.topic_dlq], partitions=4)
            fd, name = tempfile.mkstemp(prefix="recovery-", suffix=".log")  # kept: its path is printed
            os.close(fd)
            log = Path(name)
            async with steady_orders(broker.bootstrap, settings.topic_orders, rate=50):
                times = await first_count_after_restart(service_env(settings, Path(tmp) / f"ch{k}", extra), log, kills)
            rows.append((label, times))
            print(f"{label}: {', '.join(f'{t:.1f}' for t in times)} s  (log: {log})", flush=True)
    print()
    print(f"{'first count after a SIGKILL + restart':<52}{'median':>8}{'max':>8}")
    for label, times in rows:
        print(f"{label:<52}{statistics.median(times):>7.1f}s{max(times):>7.1f}s")
