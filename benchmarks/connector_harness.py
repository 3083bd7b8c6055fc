"""What the phases of ``livesales bench connectors`` share: the run's setup, its child
processes (started from this checkout, awaited until they answer, stopped on exit), the
topics' true ends and a group's commits (to tell when a phase is done), and the CPU seconds
each process spent (the box has two cores shared by all).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition

from benchmarks.connector_fakes import FastDouyin
from benchmarks.procs import tree_cpu
from connectors.config import ConnectorsConfig
from ground.settings import Settings
from localbroker import LocalBroker

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Setup:
    broker: LocalBroker
    settings: Settings  # the serve/consume processes' topics and group
    env: dict[str, str]  # their environment, without the role's own settings
    fake: FastDouyin
    config: ConnectorsConfig  # the push shops (the processes' connectors file)
    tmp: Path
    pushes: int
    in_flight: int
    raw_topic: str  # the raw pushes' topic of this run (LIVESALES_TUNING connector_pushes_topic)


@dataclass
class Serve:
    url: str  # its POST /connect/douyin
    pids: dict[str, int]  # its own and the broker's, for their CPU


async def _answering(url: str, proc: subprocess.Popen[bytes], log: Path, want: int | None = 200) -> None:
    """Wait until ``url`` answers (``want``; None: anything), or fail with the process's log."""
    deadline = time.monotonic() + 180
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                async with http.get(url) as resp:
                    if want is None or resp.status == want:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise RuntimeError(f"{url} did not answer (exit {proc.poll()}); log:\n{tail}")


@asynccontextmanager
async def process(argv: list[str], env: dict[str, str], log: Path, url: str,
                  want: int | None = 200) -> AsyncIterator[subprocess.Popen[bytes]]:  # fmt: skip
    """A child process, yielded once ``url`` answers; SIGTERM (then SIGKILL) on exit."""
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, stdout=out, stderr=out, env=env)  # noqa: S603
    try:
        await _answering(url, proc, log, want)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Tail:
    """Each partition's true end offset and the records seen, by reading the topics from the
    start: Tansu answers ListOffsets with a record batch's base offset + 1, not its last
    record's + 1 (docs/RELIABILITY.md, "Lag that is right"; tests/notify/flow_support.py), so
    ``end_offsets`` falls short after a batched send and cannot say when a group is done."""

    def __init__(self, bootstrap: str, topics: Sequence[str]) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                         fetch_max_bytes=16 << 20, max_partition_fetch_bytes=4 << 20)  # fmt: skip
        self.tps = [TopicPartition(t, p) for t in topics for p in range(4)]
        self.ends = dict.fromkeys(self.tps, 0)
        self.count = 0

    async def __aenter__(self) -> Tail:
        await self.consumer.start()
        self.consumer.assign(self.tps)
        await self.consumer.seek_to_beginning(*self.tps)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    def _take(self, got: dict[TopicPartition, list[Any]]) -> None:
        for tp, records in got.items():
            self.count += len(records)
            self.ends[tp] = records[-1].offset + 1

    async def read(self) -> None:
        """What the fetcher has brought so far, without waiting (keeps the last catch-up short)."""
        while got := await self.consumer.getmany(timeout_ms=0, max_records=50_000):
            self._take(got)

    async def catch_up(self, quiet_ms: int = 100, timeout_s: float = 120.0) -> int:
        """Read everything acknowledged so far (call it once the writers are done); the records
        seen. At least up to ListOffsets' answer, which reaches into the last batch (a fetch
        brings a batch whole), then until a fetch brings nothing for ``quiet_ms``."""
        floor = await self.consumer.end_offsets(self.tps)
        deadline = time.monotonic() + timeout_s
        while True:
            got = await self.consumer.getmany(timeout_ms=quiet_ms, max_records=50_000)
            self._take(got)
            if not got and all(self.ends[tp] >= floor[tp] for tp in self.tps):
                return self.count
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.tps[0].topic}: not read up to {floor} in {timeout_s:.0f} s")


class Group:
    """A consumer group's committed offsets, read by an unsubscribed member (as
    tests/connectors/harness.py ``wait_settled`` does)."""

    def __init__(self, bootstrap: str, group: str) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)

    async def __aenter__(self) -> Group:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def covers(self, tail: Tail) -> bool:
        """Whether the group committed every record ``tail`` has seen."""
        for tp, end in tail.ends.items():
            if end and (await self.consumer.committed(tp) or 0) < end:
                return False
        return True

    async def total(self, tail: Tail) -> int:
        return sum([await self.consumer.committed(tp) or 0 for tp in tail.tps])


def cpu_seconds(pids: dict[str, int], before: dict[str, float] | None = None) -> dict[str, float]:
    now = {name: tree_cpu(pid) for name, pid in pids.items()}
    now["this process"] = time.process_time()
    return {k: v - (before or {}).get(k, 0.0) for k, v in now.items()}


def cpu_line(cpu: dict[str, float]) -> str:
    return "  CPU s: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
