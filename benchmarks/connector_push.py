"""Phases 1 and 2 of ``livesales bench connectors``: push acceptance beside its raw limits
(a bare aiohttp handler, bare acks=all sends), then the whole push path through a consume
process. The senders use :data:`SOURCES` loopback addresses because the receiver's token
bucket is per source address: one address alone would measure the bucket, not the receiver.
The bare handler runs in a process of its own (``python -m benchmarks.connector_push
--bare-port P``), as the serve process does.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaProducer

from benchmarks.connector_fakes import Push, push_orders
from benchmarks.connector_harness import Group, Serve, Setup, Tail, cpu_line, cpu_seconds, process
from connectors.config import ConnectorsConfig
from connectors.douyin import SUCCESS
from connectors.registry import PLATFORMS
from ingest.routing import routed_topics
from ingest.topics import ensure_topics
from localbroker import free_port

SOURCES = 16  # loopback source addresses of the senders (the receiver's bucket: 500/s per address)


@dataclass
class Sent:
    """What a run of senders saw: wall seconds, each 200's latency, every answer's status."""

    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def ok(self) -> int:
        return self.statuses[200]

    def line(self, name: str) -> str:
        lat = sorted(self.latencies) or [0.0]
        q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [lat[0]] * 99
        others = sum(n for s, n in self.statuses.items() if s != 200)
        bad = f"  ({dict(self.statuses)})" if others else ""
        return (f"{name:<44}{self.ok / self.seconds:>10,.0f}{q[49] * 1e3:>10.1f}{q[98] * 1e3:>10.1f}"
                f"{lat[-1] * 1e3:>10.1f}{others:>9,}{bad}")  # fmt: skip


HEADER = f"{'':<44}{'pushes/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'non-200':>9}"


async def send(url: str, pushes: Sequence[Push], in_flight: int) -> Sent:
    """POST each push once (no retry: a refusal is counted, not hidden) with ``in_flight``
    requests outstanding over :data:`SOURCES` source addresses, kept-alive connections."""
    sessions = [
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, local_addr=(f"127.0.0.{2 + k}", 0)))
        for k in range(SOURCES)
    ]
    sent = Sent(0.0)
    todo = iter(pushes)

    async def sender(session: aiohttp.ClientSession) -> None:
        for body, headers in todo:
            t = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    status = resp.status
            except aiohttp.ClientError:
                status = 0
            if status == 200:
                sent.latencies.append(time.perf_counter() - t)
            sent.statuses[status] += 1

    started = time.perf_counter()
    try:
        await asyncio.gather(*(sender(sessions[k % SOURCES]) for k in range(in_flight)))
        sent.seconds = time.perf_counter() - started
    finally:
        for s in sessions:
            await s.close()
    return sent


async def bare_acks(bootstrap: str, topic: str, messages: Sequence[tuple[bytes, bytes]], in_flight: int) -> Sent:
    """The broker's limit for what a push waits on: one message's ack (acks=all, the
    service producer's linger) at a time per task, ``in_flight`` tasks."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    sent = Sent(0.0)
    todo = iter(messages)

    async def task() -> None:
        for key, value in todo:
            t = time.perf_counter()
            await producer.send_and_wait(topic, value, key=key)
            sent.latencies.append(time.perf_counter() - t)
            sent.statuses[200] += 1

    try:
        await producer.send_and_wait(topic, messages[0][1], key=messages[0][0])  # metadata, connection
        started = time.perf_counter()
        await asyncio.gather(*(task() for _ in range(in_flight)))
        sent.seconds = time.perf_counter() - started
    finally:
        await producer.stop()
    return sent


def raw_messages(config: ConnectorsConfig, pushes: Sequence[Push]) -> list[tuple[bytes, bytes]]:
    """The raw-topic records the receiver makes of ``pushes`` (verified by the connector)."""
    platform, apps, now = PLATFORMS["douyin"], config.apps("douyin"), datetime.now(UTC)
    return [(n.key, n.encode()) for body, headers in pushes for n in platform.verify(apps, headers, body, now).notices]


def bare_server(port: int) -> None:
    """``python -m benchmarks.connector_push --bare-port P``: the HTTP raw limit, a handler that
    reads the body and answers 抖店's success, nothing verified or published."""

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=SUCCESS, content_type="application/json")

    app = web.Application()
    app.router.add_post("/connect/{platform}", receive)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def acceptance(s: Setup, serve: Serve) -> int:
    """Phase 1; returns how many pushes it put on the raw topic (for phase 2's worker)."""
    warm = push_orders(s.fake, 0, max(2, min(200, s.pushes // 20)))
    pushes = push_orders(s.fake, len(warm), s.pushes)
    print(f"push acceptance: {len(pushes):,} pushes after {len(warm)} to warm up, {s.in_flight} in flight "
          f"from {SOURCES} addresses, one serve process", flush=True)  # fmt: skip
    port = free_port()
    async with process(["-m", "benchmarks.connector_push", "--bare-port", str(port)], dict(os.environ),
                       s.tmp / "bare.log", f"http://127.0.0.1:{port}/", want=None):  # fmt: skip
        url = f"http://127.0.0.1:{port}/connect/douyin"
        await send(url, warm, s.in_flight)
        bare = await send(url, pushes, s.in_flight)
    async with Tail(s.broker.bootstrap, [s.raw_topic]) as raw:
        await send(serve.url, warm, s.in_flight)
        before_raw = await raw.catch_up()
        cpu0 = cpu_seconds(serve.pids)
        ours = await send(serve.url, pushes, s.in_flight)
        cpu = cpu_seconds(serve.pids, cpu0)
        on_topic = await raw.catch_up() - before_raw
    messages = raw_messages(s.config, pushes)
    topic = f"bench-acks-{time.time_ns()}"
    await ensure_topics(s.broker.bootstrap, [topic], partitions=4)
    acks = await bare_acks(s.broker.bootstrap, topic, messages, s.in_flight)
    print(HEADER)
    print(ours.line("ours: POST /connect/douyin (serve process)"))
    print(bare.line("raw limit: bare aiohttp handler, 200"))
    print(acks.line("raw limit: bare send_and_wait, acks=all"))
    slower = min(bare.ok / bare.seconds, acks.ok / acks.seconds)
    print(f"ours / slower limit: {ours.ok / ours.seconds / slower:.2f}; on the raw topic: {on_topic:,} of "
          f"{ours.ok:,} accepted")  # fmt: skip
    print(cpu_line(cpu), flush=True)
    return len(warm) + len(pushes)


async def whole_path(s: Setup, serve: Serve, drained: int) -> None:
    """Phase 2: a consume process drains phase 1's pushes, then takes as many live."""
    st = s.settings
    port = free_port()
    env = {**s.env, "LIVESALES_HEALTH_PORT": str(port), "LIVESALES_CLICKHOUSE_DSN": f"chdb://{s.tmp}/consume-ch"}
    raw, orders = Tail(st.kafka_bootstrap, [s.raw_topic]), Tail(st.kafka_bootstrap, [st.topic_orders])
    routed, dlq = Tail(st.kafka_bootstrap, routed_topics([st.topic_orders])), Tail(st.kafka_bootstrap, [st.topic_dlq])
    workers = Group(st.kafka_bootstrap, f"{st.consumer_group}.connectors")  # the push workers' group
    consumers = Group(st.kafka_bootstrap, st.consumer_group)
    timeout = 120 + s.pushes / 50

    async def stored() -> bool:
        """The consumers committed every event (and every forward of one: none on chDB)."""
        return await consumers.covers(orders) and await consumers.covers(routed)

    argv, ready_url = ["-m", "livesales.cli", "--log-level", "WARNING", "consume"], f"http://127.0.0.1:{port}/readyz"
    async with raw, orders, routed, dlq, workers, consumers, \
            process(argv, env, s.tmp / "consume.log", ready_url) as consume:  # fmt: skip
        pids = {**serve.pids, "consume": consume.pid}
        print(f"whole path: a consume process drains the {drained:,} pushes, then {s.pushes:,} more live", flush=True)
        ready = time.perf_counter()
        first: tuple[float, int] | None = None
        await raw.catch_up()  # phase 1 is over: every push is read
        events0, dead0 = await orders.catch_up(), await dlq.catch_up()
        cpu0 = cpu_seconds(pids)
        while not await workers.covers(raw):
            if first is None and (done := await workers.total(raw)):
                first = (time.perf_counter(), done)
            if time.perf_counter() - ready > timeout:
                raise RuntimeError(f"the worker did not drain the backlog in {timeout:.0f} s (see consume.log)")
            await asyncio.sleep(0.05)
        end = time.perf_counter()
        start, done = first or (ready, 0)
        rest = sum(raw.ends.values()) - done  # pushes committed after the first commit seen
        events = await orders.catch_up() - events0  # the worker is done: its events are all acknowledged
        await routed.catch_up()
        print(f"  backlog: {rest / max(end - start, 1e-9):,.0f} pushes/s from the worker's first commit "
              f"({end - ready:.1f} s from ready, group join included); {events:,} events published",
              flush=True)  # fmt: skip
        while not await stored():
            if time.perf_counter() - end > timeout:
                raise RuntimeError(f"the consumers did not store the backlog in {timeout:.0f} s (see consume.log)")
            await asyncio.sleep(0.05)
        print(f"  backlog stored {time.perf_counter() - ready:.1f} s from ready;"
              + cpu_line(cpu_seconds(pids, cpu0))[1:], flush=True)  # fmt: skip
        live = push_orders(s.fake, 10_000_000, s.pushes)
        events0, cpu0 = orders.count, cpu_seconds(pids)
        started = time.perf_counter()
        sending = asyncio.create_task(send(serve.url, live, s.in_flight))
        at_events = at_stored = 0.0
        raw_read = False
        while not at_stored:
            if time.perf_counter() - started > timeout:
                sending.cancel()
                raise RuntimeError(f"the live pushes were not all stored in {timeout:.0f} s (see consume.log)")
            await raw.read()  # what has come so far (the last catch-up, below, is then short)
            await orders.read()
            if not at_events and sending.done():
                if not raw_read:  # every accepted push is acknowledged, so this reads them all
                    await raw.catch_up()
                    raw_read = True
                if await workers.covers(raw):
                    at_events = time.perf_counter() - started
                    await orders.catch_up()  # the worker is done: its events are all acknowledged
                    await routed.catch_up()
            elif at_events and await stored():
                at_stored = time.perf_counter() - started
            await asyncio.sleep(0.05)
        sent = sending.result()
        cpu = cpu_seconds(pids, cpu0)
        events, dead = orders.count - events0, await dlq.catch_up() - dead0
    n = sent.ok
    print(HEADER)
    print(sent.line("  accepted (worker and consumers running)"))
    print(f"  {'events on the orders topic (worker committed)':<44}{n / at_events:>10,.0f}   {at_events:.1f} s, "
          f"{events:,} events")  # fmt: skip
    print(f"  {'stored (consumers committed)':<44}{n / at_stored:>10,.0f}   {at_stored:.1f} s; dead-lettered {dead}")
    print(cpu_line(cpu), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--bare-port":
        bare_server(int(sys.argv[2]))
