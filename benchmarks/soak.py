"""``livesales bench soak``: does a `livesales run` process's memory stay flat under load?

The service runs as an operator runs it, in a child process of its own
(``python -m livesales.cli run`` with LIVESALES_* env vars, its own chDB store under
``./data``, the topics created first), so its RSS is its own and not this process's.
``--backlog`` events (a minute's worth by default) wait for it when it starts, as after
a restart: its catch-up is where batch-sized working sets peak (produce_backlog).
A producer here sends order events at ``--rate`` for ``--seconds``, their event times
now (as a live sale's are). Every sampling interval (30 s) one line: elapsed, events
sent, events stored (``livesales_rows_stored_total`` of order_steps on /metrics), RSS
of the service process and of its validation child (from /proc).

At the end: RSS at the first sample after warm-up (5 minutes, or a sixth of a shorter
run), min/max/last after it, and the drift, from a least-squares line through the
post-warm-up samples, in % of that first RSS over the run and in MiB/min. Ctrl-C (or
SIGTERM) ends the run early and still prints the summary; the service and the broker
are always stopped. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaProducer

from benchmarks.common import order_payload, scratch_dir
from ground.settings import Settings
from ingest.topics import ensure_topics
from localbroker import LocalBroker, _die_with, free_port

ROOT = Path(__file__).resolve().parents[1]
_MIB = 1024 * 1024
_WARMUP_S = 300.0
# Tansu (in memory, dynostore) keeps each produced record batch as one object and lists a
# partition's objects on every fetch: a fetch costs ~10 µs per batch stored in the
# partition (measured: 0.35 s at 40k one-record batches, 0.012 s at 4k ten-record ones).
# Lingering 5 ms at 5,000/s stored ~12-record batches, ~90k per partition by minute 18,
# when fetches stopped returning records. 100 ms (a relay batching webhooks) makes ~10x
# fewer, larger batches: the events, their rate and the service's work are the same.
LINGER_MS = 100
# A dashboard beside the ingest: every READ_EVERY_S one channel's summary (the channels in
# turn), the channel list and a pivot, as a live sale's screens read them. Reads are what
# fill chDB's mark and primary-index caches (ingest alone reads no marks).
READ_EVERY_S = 2.0
# the memory settings a soak compares: the budget, internal tuning, the allocators' own
PASSED_THROUGH = ("LIVESALES_TUNING", "MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_",
                  "JE_MALLOC_CONF")  # fmt: skip
TOKEN = "soak-token-0000"  # noqa: S105 - a throwaway token for a loopback benchmark


@dataclass
class Sample:
    elapsed: float
    sent: int
    stored: int | None
    rss_parent: int  # bytes
    rss_child: int  # bytes, all children together (the validation process)
    chdb: dict[str, int] | None = None  # livesales_clickhouse_memory_bytes by kind
    rss_file: int = 0  # bytes of the service's RSS backed by files (chDB's 400+ MiB library, mapped parts)
    malloc: dict[str, int] | None = None  # livesales_malloc_bytes by kind: in_use, free, mmapped

    @property
    def rss(self) -> int:
        return self.rss_parent + self.rss_child


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """VmRSS (or RssFile, RssAnon) of one process, 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process, 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's list: a child is listed by the thread that forked it)."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out += [int(c) for c in (task / "children").read_text().split()]
    return out


# chDB's figures printed beside RSS (livesales_clickhouse_memory_bytes{kind}), short names.
CHDB_KINDS = {"MemoryTracking": "tracked", "MergesMutationsMemoryTracking": "merges", "MarkCacheBytes": "marks",
              "PrimaryIndexCacheBytes": "pk", "QueryConditionCacheBytes": "qcond", "JemallocAllocated": "je.alloc",
              "JemallocResident": "je.res"}  # fmt: skip
# glibc's split of the service's C heap (livesales_malloc_bytes{kind}), short names.
MALLOC_KINDS = {"in_use": "m.use", "free": "m.free", "mmapped": "m.mmap"}


async def service_metrics(
    session: aiohttp.ClientSession, port: int
) -> tuple[int | None, dict[str, int], dict[str, int]]:
    """order_steps rows the service has stored (None if it did not answer), chDB's memory
    figures by kind and glibc's heap split, from its /metrics."""
    try:
        async with session.get(f"http://127.0.0.1:{port}/metrics", timeout=aiohttp.ClientTimeout(total=10)) as r:
            text = await r.text()
    except (aiohttp.ClientError, TimeoutError):
        return None, {}, {}
    return parse_metrics(text)


def parse_metrics(text: str) -> tuple[int, dict[str, int], dict[str, int]]:
    """Stored order_steps rows, chDB's memory figures and glibc's heap split by kind, from
    a /metrics text."""
    stored, chdb, malloc = 0, {}, {}
    for line in text.splitlines():
        if line.startswith('livesales_rows_stored_total{table="order_steps"}'):
            stored = int(float(line.split()[-1]))
        elif line.startswith('livesales_clickhouse_memory_bytes{kind="'):
            chdb[line.split('"')[1]] = int(float(line.split()[-1]))
        elif line.startswith('livesales_malloc_bytes{kind="'):
            malloc[line.split('"')[1]] = int(float(line.split()[-1]))
    return stored, chdb, malloc


async def stored_rows(session: aiohttp.ClientSession, port: int) -> int | None:
    """order_steps rows the service has stored, from its /metrics (None if it did not answer)."""
    return (await service_metrics(session, port))[0]


async def wait_ready(session: aiohttp.ClientSession, port: int, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(f"http://127.0.0.1:{port}/readyz", timeout=aiohttp.ClientTimeout(total=5)) as r:
                if r.status == 200:
                    return True
        await asyncio.sleep(0.5)
    return False


async def read_like_a_dashboard(port: int, stop: asyncio.Event, counts: dict[str, int]) -> None:
    """What READ_EVERY_S says, until ``stop``; ``counts``: answers by status (``error``: no answer)."""
    base = f"http://127.0.0.1:{port}"
    paths = ["/v1/channels", "/v1/pivot?dataset=orders&rows=platform&cols=district"]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    k = 0
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as session:
        while not stop.is_set():
            for path in [f"/v1/channels/soak-{k % 50}/summary", *paths]:
                try:
                    async with session.get(base + path) as r:
                        await r.read()
                        counts[str(r.status)] = counts.get(str(r.status), 0) + 1
                except (aiohttp.ClientError, TimeoutError):
                    counts["error"] = counts.get("error", 0) + 1
            k += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), READ_EVERY_S)


def _producer(bootstrap: str) -> AIOKafkaProducer:
    """The soak's producer: batched as LINGER_MS says, every send acknowledged by the broker."""
    return AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=LINGER_MS, max_batch_size=1 << 20, acks="all")


async def produce_backlog(bootstrap: str, topic: str, events: int) -> None:
    """``events`` orders stamped now, sent before the service starts: what waits for it
    after a restart. Its catch-up reads full batches (Tuning.batch_max_records), the
    largest it meets; every working set sized by a batch (aiokafka's fetch buffers, the
    validation child's heap, an insert) reaches its high-water mark there, in warm-up,
    instead of creeping up over the run as the biggest batch so far is outdone."""
    producer = _producer(bootstrap)
    await producer.start()
    rnd = random.Random(8)
    now = datetime.now(UTC)
    try:
        for i in range(events):
            await producer.send(topic, order_payload(i, "backlog", rnd, at=now), key=f"backlog-o{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()


async def produce_steady(bootstrap: str, topic: str, rate: int, seconds: int, stop: asyncio.Event,
                         counter: list[int]) -> None:  # fmt: skip
    """Send ``rate`` events/s for ``seconds`` in 10 ms ticks (``counter[0]``: sent so far,
    a backlog included)."""
    producer = _producer(bootstrap)
    await producer.start()
    rnd = random.Random(7)
    tick, i, before = 0.01, 0, counter[0]
    t0 = time.monotonic()
    try:
        for step in range(int(seconds / tick)):
            if stop.is_set():
                break
            delay = t0 + step * tick - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            due = int(rate * (step + 1) * tick)  # exact over the run though rate * tick is not whole
            now = datetime.now(UTC)
            while i < due:
                await producer.send(topic, order_payload(i, "soak", rnd, at=now), key=f"soak-o{i}".encode())
                i += 1
            counter[0] = before + i
        await producer.flush()
    finally:
        await producer.stop()


async def sample(session: aiohttp.ClientSession, pid: int, port: int, t0: float, sent: int) -> Sample:
    kids = children(pid)
    stored, chdb, malloc = await service_metrics(session, port)
    return Sample(time.monotonic() - t0, sent, stored, rss_bytes(pid), sum(rss_bytes(k) for k in kids), chdb,
                  rss_bytes(pid, "RssFile"), malloc)  # fmt: skip


def print_sample(s: Sample) -> None:
    stored = f"{s.stored:>12,}" if s.stored is not None else f"{'?':>12}"
    chdb = " ".join(f"{(s.chdb or {}).get(k, 0) / _MIB:>7.1f}" for k in CHDB_KINDS)
    malloc = " ".join(f"{(s.malloc or {}).get(k, 0) / _MIB:>7.1f}" for k in MALLOC_KINDS)
    print(f"{s.elapsed:>8.0f} {s.sent:>12,} {stored} {s.rss_parent / _MIB:>11.1f} {s.rss_child / _MIB:>10.1f}"
          f" {s.rss / _MIB:>10.1f} {s.rss_file / _MIB:>8.1f} {chdb} {malloc}", flush=True)  # fmt: skip


def summary(samples: list[Sample], warmup: float) -> list[str]:
    """The post-warm-up figures (as lines), from the total RSS (service + validation child)."""
    after = [s for s in samples if s.elapsed >= warmup]
    if len(after) < 2:
        return [f"fewer than two samples after the {warmup:.0f} s warm-up: no drift figure"]
    base = after[0].rss
    xs = [s.elapsed / 60 for s in after]
    ys = [s.rss / _MIB for s in after]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    span = xs[-1] - xs[0]
    drift_pct = slope * span / (base / _MIB) * 100
    lo, hi = min(s.rss for s in after), max(s.rss for s in after)
    worst = max(abs(lo - base), abs(hi - base)) / base * 100
    # against the median as well: the first sample may land on a swing (a merge, a batch)
    mid = sorted(s.rss for s in after)[len(after) // 2]
    worst_mid = max(abs(lo - mid), abs(hi - mid)) / mid * 100
    rates = f"{(after[-1].sent - samples[0].sent) / samples[-1].elapsed:,.0f}/s sent" if samples[-1].elapsed else ""
    return [
        f"warm-up {warmup:.0f} s; {len(after)} samples after it over {span:.1f} min ({rates})",
        f"RSS after warm-up (service + validation child): {base / _MIB:.1f} MiB"
        f" (service {after[0].rss_parent / _MIB:.1f}, child {after[0].rss_child / _MIB:.1f})",
        f"after warm-up: min {lo / _MIB:.1f} / max {hi / _MIB:.1f} / last {after[-1].rss / _MIB:.1f} MiB;"
        f" largest deviation from the first {worst:.1f}% ({'within' if worst <= 5 else 'OUTSIDE'} ±5%)",
        f"median {mid / _MIB:.1f} MiB; largest deviation from it {worst_mid:.1f}%"
        f" ({'within' if worst_mid <= 5 else 'OUTSIDE'} ±5%)",
        f"drift (least-squares line): {slope:+.2f} MiB/min = {drift_pct:+.1f}% of the first over {span:.1f} min;"
        f" service alone {_slope([s.rss_parent / _MIB for s in after], xs):+.2f} MiB/min,"
        f" child alone {_slope([s.rss_child / _MIB for s in after], xs):+.2f} MiB/min",
    ]


def _slope(ys: list[float], xs: list[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


async def bench_soak(args: argparse.Namespace) -> None:
    rate, seconds = args.rate, args.seconds
    every = args.every or (30.0 if seconds >= 300 else max(5.0, seconds / 12))
    warmup = args.warmup if getattr(args, "warmup", None) is not None else min(_WARMUP_S, seconds / 6)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # an early end still prints the summary
        loop.add_signal_handler(sig, stop.set)
    samples: list[Sample] = []
    with LocalBroker() as broker, scratch_dir() as tmp:
        settings = Settings(kafka_bootstrap=broker.bootstrap, clickhouse_dsn=f"chdb://{tmp}/ch")
        await ensure_topics(broker.bootstrap, [*settings.topics, settings.topic_dlq], partitions=4)
        backlog = args.backlog if getattr(args, "backlog", None) is not None else rate * 60
        if backlog:
            await produce_backlog(broker.bootstrap, settings.topic_orders, backlog)
        port = free_port()
        # the memory settings pass through: a soak compares budgets (0: ClickHouse's or glibc's defaults)
        env = {k: v for k, v in os.environ.items()
               if not k.upper().startswith("LIVESALES_") or k in PASSED_THROUGH}  # fmt: skip
        env.update({
            "LIVESALES_KAFKA_BOOTSTRAP": broker.bootstrap, "LIVESALES_CLICKHOUSE_DSN": settings.clickhouse_dsn,
            "LIVESALES_API_HOST": "127.0.0.1", "LIVESALES_API_PORT": str(port),
            "LIVESALES_HEALTH_PORT": str(free_port()), "LIVESALES_API_TOKENS_FILE": str(Path(tmp) / "tokens.json"),
        })  # fmt: skip
        tokens = {"tokens": [{"token": TOKEN, "name": "soak", "scope": "all"}]}
        (Path(tmp) / "tokens.json").write_text(json.dumps(tokens))
        log_path = Path(tmp) / "service.log"
        with open(log_path, "ab") as out:
            # its own session: a Ctrl-C here reaches it only as our SIGTERM, after the last sample
            proc = subprocess.Popen(
                [sys.executable, "-m", "livesales.cli", "run"], cwd=ROOT, stdout=out, stderr=out, env=env,
                start_new_session=True, preexec_fn=_die_with(os.getpid()),
            )  # fmt: skip
        try:
            async with aiohttp.ClientSession() as session:
                if not await wait_ready(session, port, proc, 180):
                    print(f"service not ready within 180 s (exit code {proc.poll()}); its log:", flush=True)
                    print(log_path.read_text(errors="replace")[-4000:], flush=True)
                    return
                print(" ".join(f"{k}={env.get(k, 'default')}" for k in PASSED_THROUGH), flush=True)
                print(f"{backlog:,} events were waiting when the service started (--backlog)", flush=True)
                print(f"service pid {proc.pid} ready on :{port}; producing {rate:,}/s for {seconds:,} s,"
                      f" a sample every {every:.0f} s, warm-up {warmup:.0f} s", flush=True)  # fmt: skip
                print(f"{'elapsed':>8} {'sent':>12} {'stored':>12} {'RSS svc MiB':>11} {'child MiB':>10}"
                      f" {'total MiB':>10} {'svc file':>8} " + " ".join(f"{v:>7}" for v in CHDB_KINDS.values())
                      + " " + " ".join(f"{v:>7}" for v in MALLOC_KINDS.values())
                      + "  (chDB, malloc MiB)", flush=True)  # fmt: skip
                counter = [backlog]
                t0 = time.monotonic()
                samples.append(await sample(session, proc.pid, port, t0, backlog))
                print_sample(samples[-1])
                producing = asyncio.create_task(
                    produce_steady(broker.bootstrap, settings.topic_orders, rate, seconds, stop, counter)
                )
                reads: dict[str, int] = {}
                reading_done = asyncio.Event()
                reading = asyncio.create_task(read_like_a_dashboard(port, reading_done, reads))
                k = 1
                while not producing.done():
                    wait = t0 + k * every - time.monotonic()
                    await asyncio.wait({producing}, timeout=max(0.0, wait))
                    if producing.done() and time.monotonic() < t0 + k * every - 1:
                        break  # ended early (a stop): take the last sample below
                    samples.append(await sample(session, proc.pid, port, t0, counter[0]))
                    print_sample(samples[-1])
                    k += 1
                reading_done.set()
                await reading
                if (exc := producing.exception()) is not None:
                    print(f"producer failed: {exc!r}", flush=True)
                # let the service catch up (at most 60 s), so the last line shows the count exact
                deadline = time.monotonic() + 60
                while not stop.is_set() and time.monotonic() < deadline:
                    if (await stored_rows(session, port) or 0) >= counter[0]:
                        break
                    await asyncio.sleep(1)
                last = await sample(session, proc.pid, port, t0, counter[0])
                print_sample(last)
                print()
                for line in summary(samples, warmup):
                    print(line, flush=True)
                if last.stored is not None and last.stored != counter[0]:
                    print(f"stored {last.stored:,} of {counter[0]:,} sent at the end", flush=True)
                print(f"dashboard reads (every {READ_EVERY_S:.0f} s) by status: {reads}", flush=True)
                print(f"broker (Tansu, all in memory): RSS {rss_bytes(broker.pid) / _MIB:,.0f} MiB,"
                      f" {cpu_seconds(broker.pid):,.0f} CPU s; producer linger {LINGER_MS} ms", flush=True)  # fmt: skip
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
