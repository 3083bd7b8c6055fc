"""``livesales bench live``: a room full of live screens while orders flow.

1. A local broker (Tansu) and ``livesales run`` in its own process (consumers + API over
   a fresh chDB store under ./data), as deployed.
2. 11 channels get one order each; then 1,000 SSE viewers open the main channel's live
   stream and 100 more the 10 side channels' (10 each), from this process (aiohttp),
   spread over 22 tokens of 50 streams (the default per-token cap).
3. Idle: no orders for ``--idle-seconds``; the server's CPU (its process and its
   validation child) is read from /proc.
4. Orders flow at the festival's peak rate (the busiest 10 s of the razor-clam festival
   scenario, in real time) and then at 100/s, ``--phase-seconds`` each: half to the main
   channel, half spread over the side channels, each channel keyed to one partition so
   its orders are stored in order. A viewer that sees ``paid_orders`` reach n has
   received the channel's n-th order: update latency = its receipt − that order's send.
   Meanwhile a client asks the main channel's ``/summary`` every 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaProducer

from benchmarks.common import scratch_dir
from ground.settings import Settings
from ingest.topics import ensure_topics
from localbroker import LocalBroker, free_port

MAIN = "bench-live-main"
SIDES = [f"bench-live-side-{i}" for i in range(10)]
MAIN_VIEWERS, SIDE_VIEWERS = 1000, 10
PER_TOKEN = 50
PAID = re.compile(rb'"paid_orders":(\d+)')  # the summary's: it comes first in the payload


def festival_peak_rate() -> float:
    """Orders (every step) per second in the festival's busiest 10 s, in real time."""
    from scenarios.festival import generate

    times = sorted(e.at for e in generate(2020) if e.topic_kind == "orders")
    return max(bisect.bisect_left(times, t + 10) - i for i, t in enumerate(times)) / 10


def raise_fd_limit(want: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its children (the validation process)."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    total = 0.0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


@dataclass
class Board:
    """What the viewers saw: per channel the send time of each order, per phase latencies."""

    sent: dict[str, list[float]] = field(default_factory=dict)
    phase: str = "connect"
    latencies: dict[str, list[float]] = field(default_factory=dict)
    updates: int = 0
    ended: int = 0  # streams that ended before we closed them (dropped or refused)

    def seen(self, channel: str, was: int, now_count: int, at: float) -> None:
        sent = self.sent[channel]
        out = self.latencies.setdefault(self.phase, [])
        side = self.latencies.setdefault(f"{self.phase} side", []) if channel != MAIN else out
        for n in range(was + 1, min(now_count, len(sent)) + 1):
            out.append(at - sent[n - 1])
            if side is not out:
                side.append(at - sent[n - 1])


async def viewer(http: aiohttp.ClientSession, url: str, token: str, channel: str, board: Board,
                 first: asyncio.Event) -> None:  # fmt: skip
    count = 0
    try:
        async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
            if resp.status != 200:
                raise RuntimeError(f"{url}: {resp.status} {await resp.text()}")
            async for line in resp.content:
                if line.startswith(b"data:"):
                    m = PAID.search(line)
                    if m:
                        n = int(m.group(1))
                        board.updates += 1
                        board.seen(channel, count, n, time.monotonic())
                        count = max(count, n)
                        first.set()
    except (TimeoutError, aiohttp.ClientError):
        pass
    board.ended += 1


def order(channel: str, n: int) -> bytes:
    event = {
        "schema": "order.v1", "event_id": f"{channel}-e{n}", "order_id": f"{channel}-o{n}",
        "occurred_at": datetime.now(UTC).isoformat(), "status": "paid", "channel_id": channel,
        "platform": "douyin", "merchant_id": "changjie-clam-coop",
        "region": {"district": "宁海县", "township": "长街镇"},
        "items": [{"sku": "clam-2.5kg", "name": "长街蛏子 2.5kg 装", "quantity": 1, "unit_price_fen": 6800,
                   "weight_g": 2500}],
        "amount_fen": 6800,
    }  # fmt: skip
    return json.dumps(event, ensure_ascii=False).encode()


async def send(producer: AIOKafkaProducer, topic: str, channel: str, board: Board) -> None:
    sent = board.sent.setdefault(channel, [])
    n = len(sent) + 1
    sent.append(time.monotonic())
    await producer.send(topic, order(channel, n), key=f"{channel}-o{n}".encode())


async def flow(producer: AIOKafkaProducer, topic: str, rate: float, seconds: float, board: Board) -> int:
    """Orders at ``rate``/s: every other one to the main channel, the rest round the sides."""
    start, i = time.monotonic(), 0
    while (due := start + i / rate) < start + seconds:
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        channel = MAIN if i % 2 == 0 else SIDES[(i // 2) % len(SIDES)]
        await send(producer, topic, channel, board)
        i += 1
    await producer.flush()
    return i


async def sample_summary(http: aiohttp.ClientSession, url: str, stop: asyncio.Event,
                         board: Board | None = None) -> list[float]:  # fmt: skip
    """``/summary`` latencies; with a board, also when each order first shows in it
    (stored and queryable: the part of the update latency that is not the live hub's)."""
    out: list[float] = []
    count = 0
    while not stop.is_set():
        t = time.monotonic()
        async with http.get(url) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{url}: {resp.status}")
        out.append(time.monotonic() - t)
        m = PAID.search(body)
        if board is not None and m:
            n = int(m.group(1))
            sent = board.sent[MAIN]
            visible = board.latencies.setdefault(f"{board.phase} visible", [])
            visible += [t - sent[k - 1] for k in range(count + 1, min(n, len(sent)) + 1) if count]
            count = n
        await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - t)))
    return out


def quantiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p95, p99 in ms."""
    if len(values) < 2:
        v = values[0] * 1000 if values else float("nan")
        return v, v, v
    q = statistics.quantiles(values, n=100)
    return q[49] * 1000, q[94] * 1000, q[98] * 1000


async def server_metrics(http: aiohttp.ClientSession, base: str) -> dict[str, float]:
    async with http.get(f"{base}/metrics") as resp:
        text = await resp.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("livesales_live_", "livesales_summary_")) and "_bucket" not in line:
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def wait_http(http: aiohttp.ClientSession, url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with http.get(url) as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {url}")


async def bench_live(args: argparse.Namespace) -> None:
    raise_fd_limit(8192)
    peak = festival_peak_rate()
    n_viewers = MAIN_VIEWERS + SIDE_VIEWERS * len(SIDES)
    tokens = [f"bench-live-viewer-{i:03d}" for i in range((n_viewers + PER_TOKEN - 1) // PER_TOKEN)]
    with LocalBroker() as broker, scratch_dir() as tmp:
        settings = Settings(kafka_bootstrap=broker.bootstrap, clickhouse_dsn=f"chdb://{tmp}/ch")
        await ensure_topics(broker.bootstrap, [*settings.topics, settings.topic_dlq], partitions=4)
        tokens_file = Path(tmp) / "tokens.json"
        entries = [{"token": t, "name": t, "scope": "all"} for t in [*tokens, "bench-live-summary"]]
        tokens_file.write_text(json.dumps({"tokens": entries}))
        port = free_port()
        env = {**os.environ, "LIVESALES_CLICKHOUSE_DSN": settings.clickhouse_dsn, "LIVESALES_API_PORT": str(port),
               "LIVESALES_API_TOKENS_FILE": str(tokens_file), "LIVESALES_API_RATE_PER_S": "1000000",
               "LIVESALES_KAFKA_BOOTSTRAP": broker.bootstrap}  # fmt: skip
        server = subprocess.Popen(
            [sys.executable, "-m", "livesales.cli", "--log-level", "WARNING", "run"], env=env
        )
        base = f"http://127.0.0.1:{port}"
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=2, acks="all")
        board = Board()
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=30)
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
                await wait_http(http, f"{base}/readyz")
                await producer.start()
                for channel in [MAIN, *SIDES]:
                    await send(producer, settings.topic_orders, channel, board)
                await producer.flush()
                summary_headers = {"Authorization": "Bearer bench-live-summary"}
                async with aiohttp.ClientSession(headers=summary_headers) as probe:
                    for channel in [MAIN, *SIDES]:
                        await wait_http(probe, f"{base}/v1/channels/{channel}/summary")
                    # the raw limit: /summary on this machine as it is now, no viewers, no orders
                    stop = asyncio.Event()
                    asyncio.get_running_loop().call_later(10, stop.set)
                    baseline = await sample_summary(probe, f"{base}/v1/channels/{MAIN}/summary", stop)
                    print(f"/summary alone: p50 {quantiles(baseline)[0]:.1f} / p99 {quantiles(baseline)[2]:.1f} ms "
                          f"(load average {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
                plan = [MAIN] * MAIN_VIEWERS + [c for c in SIDES for _ in range(SIDE_VIEWERS)]
                firsts = [asyncio.Event() for _ in plan]
                t0 = time.monotonic()
                tasks = [
                    asyncio.create_task(viewer(http, f"{base}/v1/channels/{c}/live", tokens[i // PER_TOKEN], c,
                                               board, firsts[i]))
                    for i, c in enumerate(plan)
                ]  # fmt: skip
                await asyncio.wait_for(asyncio.gather(*(f.wait() for f in firsts)), 120)
                print(f"{len(plan):,} viewers connected, first update each, in {time.monotonic() - t0:.1f}s",
                      flush=True)  # fmt: skip

                board.phase = "idle"
                await asyncio.sleep(5)  # settle
                updates0, cpu0, w0 = board.updates, cpu_seconds(server.pid), time.monotonic()
                await asyncio.sleep(args.idle_seconds)
                idle_cpu = (cpu_seconds(server.pid) - cpu0) / (time.monotonic() - w0)
                idle_updates = board.updates - updates0
                idle_load = os.getloadavg()[0]
                print(f"idle {args.idle_seconds}s: server CPU {idle_cpu * 100:.1f}% of a core, "
                      f"{idle_updates} updates", flush=True)  # fmt: skip

                results = []
                async with aiohttp.ClientSession(headers=summary_headers) as probe:
                    for name, rate in ((f"festival peak ({peak:g}/s)", peak), ("100/s", 100.0)):
                        board.phase = name
                        stop = asyncio.Event()
                        sampler = asyncio.create_task(sample_summary(probe, f"{base}/v1/channels/{MAIN}/summary",
                                                                     stop, board))  # fmt: skip
                        cpu0, w0, own0 = cpu_seconds(server.pid), time.monotonic(), time.process_time()
                        n = await flow(producer, settings.topic_orders, rate, args.phase_seconds, board)
                        await asyncio.sleep(3)  # the last orders' updates
                        cpu = (cpu_seconds(server.pid) - cpu0) / (time.monotonic() - w0)
                        own = (time.process_time() - own0) / (time.monotonic() - w0)
                        stop.set()
                        summary = await sampler
                        lat = board.latencies.get(name, [])
                        results.append((name, n, lat, summary, cpu, own, os.getloadavg()[0]))
                        p50, p95, _ = quantiles(lat)
                        s50, s95, _ = quantiles(board.latencies.get(f"{name} side", []))
                        print(f"{name}: {n} orders, update p50 {p50:.0f} / p95 {p95:.0f} ms "
                              f"({len(lat):,} deliveries), /summary p99 {quantiles(summary)[2]:.0f} ms, "
                              f"CPU server {cpu * 100:.0f}%, clients {own * 100:.0f}%", flush=True)  # fmt: skip
                        print(f"  of which the 100 side viewers: update p50 {s50:.0f} / p95 {s95:.0f} ms", flush=True)
                        v50, v95, _ = quantiles(board.latencies.get(f"{name} visible", []))
                        print(f"  big channel's orders visible in /summary (polled every 100 ms): p50 {v50:.0f} / "
                              f"p95 {v95:.0f} ms", flush=True)  # fmt: skip
                live = await server_metrics(http, base)
                early = board.ended  # streams that ended on their own: dropped or refused
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await producer.stop()
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)

    print()
    print(f"{n_viewers:,} viewers ({MAIN_VIEWERS:,} on one channel, {SIDE_VIEWERS} on each of {len(SIDES)} more)")
    print(f"idle CPU (server + its validation process): {idle_cpu * 100:.1f}% of a core over {args.idle_seconds}s"
          f" (target < 10%; load average {idle_load:.1f}); {idle_updates} updates while idle")  # fmt: skip
    print(f"{'orders':<26}{'sent':>7}{'deliveries':>12}{'upd p50':>9}{'upd p95':>9}{'upd max':>9}"
          f"{'summary p50':>13}{'p99':>7}{'CPU srv':>9}{'clients':>9}{'load':>6}")  # fmt: skip
    b50, _, b99 = quantiles(baseline)
    print(f"{'none (raw limit, no viewers)':<26}{0:>7}{'':>12}{'':>9}{'':>9}{'':>9}{b50:>13.1f}{b99:>7.1f}")
    for name, n, lat, summary, cpu, own, load in results:
        p50, p95, _ = quantiles(lat)
        s50, _, s99 = quantiles(summary)
        worst = max(lat) * 1000 if lat else float("nan")
        print(f"{name:<26}{n:>7}{len(lat):>12,}{p50:>9.0f}{p95:>9.0f}{worst:>9.0f}{s50:>13.1f}{s99:>7.1f}"
              f"{cpu * 100:>8.0f}%{own * 100:>8.0f}%{load:>6.1f}")  # fmt: skip
    print("(update latency ms: order sent -> update received by a viewer; targets p95 <= 2,000, /summary p99 <= 100;"
          " load: 1-minute load average of this 2-core machine at the phase's end)")
    rounds = live.get("livesales_live_compute_seconds_count", 0)
    mean = live.get("livesales_live_compute_seconds_sum", 0) / rounds * 1000 if rounds else float("nan")
    print(f"server: {live.get('livesales_live_payloads_total', 0):.0f} payloads computed in {rounds:.0f} rounds "
          f"(mean {mean:.0f} ms a round, waits for storage threads included), "
          f"{live.get('livesales_live_polls_total', 0):.0f} polls, "
          f"{live.get('livesales_live_dropped_total', 0):.0f} viewers dropped, "
          f"{live.get('livesales_live_watchers', 0):.0f} watchers for "
          f"{live.get('livesales_live_streams', 0):.0f} streams")
    sources = {k: live.get(f'livesales_summary_answers_total{{source="{k}"}}', 0) for k in ("live_hub", "shared",
                                                                                            "query")}  # fmt: skip
    print("/summary answers (all phases, api.live.summaries): " + ", ".join(f"{v:.0f} {k}" for k, v in sources.items()))
    print(f"viewer streams that ended before the end (dropped or refused): {early}")
