"""``livesales bench connectors``: the 抖店 connector's push path and one reconciliation window.

Against the fake 抖店 (``localplatforms/douyin.py``: the real push format and ``event-sign``,
the real signed API calls and paging), a local broker and chDB, in processes as deployed:

1. **Push acceptance.** One ``livesales serve`` process (its API app mounts the push routes
   as the runtime does; LIVESALES_CONNECTORS_FILE names four shops) receives ``--pushes``
   signed pushes, one order message each, from ``--in-flight`` concurrent senders. The
   senders come from 16 loopback addresses: the receiver's token bucket is per source address
   (500/s), so one address alone would measure the bucket, not the receiver. Accepted
   pushes/s and each answer's latency as the platform sees it (p50/p99/max). Beside it, from
   the same run: the same senders against a bare aiohttp handler in a process of its own that
   reads each body and answers 200 (this box's HTTP limit), and a bare aiokafka producer
   awaiting each raw message's ack with as many in flight (the broker's limit for what a push
   waits on). Goal (issue 20): ≥ 2,000 pushes/s accepted, ack p99 ≤ 200 ms.
2. **The whole push path.** A ``livesales consume`` process (consumers, push worker,
   reconciliation) starts: its worker first drains the pushes of (1), fetching each order's
   detail from the fake and publishing its ``order.v1`` events; then as many pushes again are
   sent live, timed until every one was accepted, until the worker committed the last raw
   push (its events acknowledged on the orders topic) and until the consumers committed the
   last event (stored). The pushed orders were last updated two days ago, outside the first
   reconciliation window the consume process runs at once, so these figures are the push
   path's alone.
3. **Reconciliation.** A shop of ``--orders`` orders (default 100,000; 90% paid, a tenth of
   those refunded) updated over the last day, no pushes: one window of the real
   ``Reconciler`` in this process (after-sale list and order list paged as 抖店 requires,
   mapping, look-ups in chDB, publishing page by page), timed from reading the watermark
   until the new watermark row is written, which happens only once every page's events were
   acknowledged. Goal: ≤ 60 s. Beside it: the same pages fetched and nothing else, and the
   same number of events produced bare in pages of the same size.

The fake is :class:`FastDouyin`: ``FakeDouyin`` scans every order on every call, fine for
tests of hundreds but at 100,000 orders the fake would be what is measured; the reconciled
shop's runs in a process of its own, so its pages cost the platform's CPU, not ours. CPU
seconds of each process are printed with each phase: the box has two cores shared by all.
Topics, group and raw-push topic are this run's own. A quick run: ``--pushes 2000 --orders 10000``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry

from benchmarks.common import order_payload, scratch_dir
from benchmarks.procs import tree_cpu
from connectors.apis import Apis
from connectors.config import ConnectorsConfig, parse_connectors
from connectors.douyin import SUCCESS, DouyinApi
from connectors.events import RegistryRooms
from connectors.metrics import ConnectorMetrics
from connectors.reconcile import ReconcileConfig, Reconciler
from connectors.registry import PLATFORMS
from connectors.state import ConnectorState
from connectors.status import StatusBook
from ground.settings import Settings
from ingest.producer import Producer
from ingest.routing import routed_topics
from ingest.topics import ensure_topics
from localbroker import LocalBroker, free_port
from localplatforms.douyin import FakeDouyin
from localplatforms.platform import FakeOrder, FakeRefund
from processors.store import ClickHouse

ROOT = Path(__file__).resolve().parents[1]
APP_KEY, APP_SECRET = "bench-dy-app", "bench-dy-secret"  # the fake's own, on loopback
PUSH_SHOPS = ("4100004", "4100002", "4100000", "4100007")  # one on each raw partition (murmur2 of the key)
RECONCILE_SHOP = "4200000"
ROOM = "7001"  # not registered: its orders count under douyin-room-7001
BIG = 6_917_000_000_000_000_000  # order ids beyond 2^53, as 抖店's are
SOURCES = 16  # loopback source addresses of the senders (the receiver's bucket: 500/s per address)
DEFAULT_PUSHES, DEFAULT_ORDERS, DEFAULT_IN_FLIGHT = 20_000, 100_000, 64

Push = tuple[bytes, dict[str, str]]  # a body and its headers (app-id, event-sign)


def _secs(t: datetime) -> int:
    return int(t.timestamp())


class FastDouyin(FakeDouyin):
    """``FakeDouyin`` with its look-ups indexed per shop: the same answers and checks
    (signature, token, ``size`` ≤ 100, the one-day window), in time that does not grow with
    the shop's order count, so the benchmark measures the connector rather than the fake.
    The index is rebuilt when orders were added (the benchmark never changes one after)."""

    def __init__(self, app_key: str, app_secret: str) -> None:
        super().__init__(app_key, app_secret)
        self._indexed = -1
        self._by_update: dict[str, tuple[list[int], list[FakeOrder]]] = {}
        self._refunds: dict[str, tuple[list[int], list[tuple[FakeOrder, FakeRefund]]]] = {}

    def index(self) -> None:
        orders: dict[str, list[FakeOrder]] = {}
        refunds: dict[str, list[tuple[FakeOrder, FakeRefund]]] = {}
        for o in self.orders.values():
            orders.setdefault(o.shop_id, []).append(o)
            refunds.setdefault(o.shop_id, []).extend((o, r) for r in o.refunds)
        self._by_update = {}
        for shop, found in orders.items():
            found.sort(key=lambda o: (o.updated_at, o.order_id))
            self._by_update[shop] = ([_secs(o.updated_at) for o in found], found)
        self._refunds = {}
        for shop, pairs in refunds.items():
            pairs.sort(key=lambda p: p[1].updated_at)
            self._refunds[shop] = ([_secs(r.updated_at) for _, r in pairs], pairs)
        self._indexed = len(self.orders)

    def routes(self) -> web.RouteTableDef:
        """The API, and ``GET /_calls``: the calls by method (when the fake runs in a child)."""
        routes = super().routes()

        @routes.get("/_calls")
        async def calls(request: web.Request) -> web.Response:
            return web.json_response(dict(self.calls))

        return routes

    def _business(self, method: str, params: dict[str, Any], shop: str) -> web.Response:
        if self._indexed != len(self.orders):
            self.index()
        if method == "order.orderDetail":
            o = self.orders.get(str(params.get("shop_order_id")))
            if o is None or o.shop_id != shop:
                return self._err(40004, "订单不存在")
            return self._ok({"shop_order_detail": self.entry(o)})
        page, size = int(params.get("page", 0)), int(params.get("size", 10))
        if size > 100 or page < 0:
            return self._err(40001, "size 限制100以内")
        if method == "order.searchList":
            lo, hi = int(params["update_time_start"]), int(params["update_time_end"])
            if hi - lo > 86_400:
                return self._err(40001, "时间范围过大")
            self.windows.append((method, shop, lo, hi))
            keys, ordered = self._by_update.get(shop, ([], []))
            first, last = bisect.bisect_left(keys, lo), bisect.bisect_right(keys, hi)
            rows = [self.entry(o) for o in ordered[first + page * size : min(last, first + (page + 1) * size)]]
            return self._ok({"total": last - first, "page": page, "size": size, "shop_order_list": rows})
        if method == "afterSale.List":
            if "order_id" in params:
                o = self.orders.get(str(params["order_id"]))
                pairs = [(o, r) for r in o.refunds] if o is not None and o.shop_id == shop else []
            else:
                lo, hi = int(params["update_start_time"]), int(params["update_end_time"])
                if hi - lo > 86_400:
                    return self._err(40001, "时间范围过大")
                self.windows.append((method, shop, lo, hi))
                keys, all_pairs = self._refunds.get(shop, ([], []))
                pairs = all_pairs[bisect.bisect_left(keys, lo) : bisect.bisect_right(keys, hi)]
            items = [self.aftersale(o, r) for o, r in pairs[page * size : (page + 1) * size]]
            return self._ok({"items": items, "total": len(pairs), "has_more": (page + 1) * size < len(pairs)})
        return self._err(40002, "unknown method")


def connectors_json(url: str, shops: Sequence[str]) -> dict[str, Any]:
    """The connectors file (inline secrets: a loopback fake's)."""
    return {"connectors": [{
        "platform": "douyin", "app_key": APP_KEY, "app_secret": APP_SECRET, "api_base": url,
        "shops": [{"shop_id": s, "merchant_id": f"bench-firm-{s}",
                   "region": {"district": "宁海县", "township": "长街镇"}} for s in shops],
    }]}  # fmt: skip


def push_orders(fake: FastDouyin, first: int, pushes: int) -> list[Push]:
    """``pushes`` signed push bodies of one message each (created, then paid, per order),
    for orders created on the fake; the orders last updated two days ago (see the module's
    docstring), spread over the push shops."""
    at = datetime.now(UTC) - timedelta(days=2)
    for i in range(first, first + (pushes + 1) // 2):
        oid, t = str(BIG + i), at + timedelta(milliseconds=i)
        fake.create(FakeOrder(oid, PUSH_SHOPS[i % len(PUSH_SHOPS)], t,
                              [("clam-2.5kg", "长街蛏子 2.5kg 装", 1 + i % 3, 6800)], ROOM))  # fmt: skip
        fake.pay(oid, t + timedelta(seconds=30))
        fake.orders[oid].updated_at = t + timedelta(seconds=30)
    out = []
    for record in fake.take_outbox()[:pushes]:
        body = json.dumps([record]).encode()
        out.append((body, fake.signed(body)))
    return out


def shop_orders(fake: FastDouyin, n: int, seed: int = 7) -> int:
    """``n`` orders of the reconciled shop updated evenly over the last day (inside the first
    window, which ends 3 min before now), no pushes; the events they imply."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    start, span = now - timedelta(seconds=86_400 - 120), 86_400 - 120 - 600
    events = 0
    for i in range(n):
        t = start + timedelta(seconds=(i + 0.5) * span / n)
        oid = str(BIG + 50_000_000 + i)
        o = FakeOrder(oid, RECONCILE_SHOP, t - timedelta(seconds=60),
                      [(f"sku{rng.randrange(4)}", "长街蛏子", rng.randint(1, 3), rng.choice([1990, 2990, 5800]))],
                      ROOM, updated_at=t)  # fmt: skip
        events += 1
        if rng.random() < 0.9:
            o.paid_at = t - timedelta(seconds=30)
            events += 1
            if rng.random() < 0.1:
                o.refunds.append(FakeRefund(str(BIG + 90_000_000 + i), o.value_fen, t, updated_at=t))
                events += 1
        fake.orders[oid] = o
    fake.index()
    return events


# -- measuring pushes ------------------------------------------------------------------------


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


# -- processes ------------------------------------------------------------------------------


def bare_server(port: int) -> None:
    """``python -m benchmarks.connectors --bare-port P``: the HTTP raw limit, a handler that
    reads the body and answers 抖店's success, nothing verified or published."""

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=SUCCESS, content_type="application/json")

    app = web.Application()
    app.router.add_post("/connect/{platform}", receive)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


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


def _cpu(pids: dict[str, int], before: dict[str, float] | None = None) -> dict[str, float]:
    now = {name: tree_cpu(pid) for name, pid in pids.items()}
    now["this process"] = time.process_time()
    return {k: v - (before or {}).get(k, 0.0) for k, v in now.items()}


def _cpu_line(cpu: dict[str, float]) -> str:
    return "  CPU s: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())


# -- the phases -----------------------------------------------------------------------------


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


async def acceptance(s: Setup, serve: Serve) -> int:
    """Phase 1; returns how many pushes it put on the raw topic (for phase 2's worker)."""
    warm = push_orders(s.fake, 0, max(2, min(200, s.pushes // 20)))
    pushes = push_orders(s.fake, len(warm), s.pushes)
    print(f"push acceptance: {len(pushes):,} pushes after {len(warm)} to warm up, {s.in_flight} in flight "
          f"from {SOURCES} addresses, one serve process", flush=True)  # fmt: skip
    port = free_port()
    async with process(["-m", "benchmarks.connectors", "--bare-port", str(port)], dict(os.environ),
                       s.tmp / "bare.log", f"http://127.0.0.1:{port}/", want=None):  # fmt: skip
        url = f"http://127.0.0.1:{port}/connect/douyin"
        await send(url, warm, s.in_flight)
        bare = await send(url, pushes, s.in_flight)
    async with Tail(s.broker.bootstrap, [s.raw_topic]) as raw:
        await send(serve.url, warm, s.in_flight)
        before_raw = await raw.catch_up()
        cpu0 = _cpu(serve.pids)
        ours = await send(serve.url, pushes, s.in_flight)
        cpu = _cpu(serve.pids, cpu0)
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
    print(_cpu_line(cpu), flush=True)
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
        cpu0 = _cpu(pids)
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
        print(f"  backlog stored {time.perf_counter() - ready:.1f} s from ready;" + _cpu_line(_cpu(pids, cpu0))[1:],
              flush=True)  # fmt: skip
        live = push_orders(s.fake, 10_000_000, s.pushes)
        events0, cpu0 = orders.count, _cpu(pids)
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
        cpu = _cpu(pids, cpu0)
        events, dead = orders.count - events0, await dlq.catch_up() - dead0
    n = sent.ok
    print(HEADER)
    print(sent.line("  accepted (worker and consumers running)"))
    print(f"  {'events on the orders topic (worker committed)':<44}{n / at_events:>10,.0f}   {at_events:.1f} s, "
          f"{events:,} events")  # fmt: skip
    print(f"  {'stored (consumers committed)':<44}{n / at_stored:>10,.0f}   {at_stored:.1f} s; dead-lettered {dead}")
    print(_cpu_line(cpu), flush=True)


async def serve_shop(n: int) -> None:
    """``python -m benchmarks.connectors --shop N``: the reconciled shop's fake in a process
    of its own, as the platform is (its pages cost its CPU, not the connector's); prints
    ``listening on <url> events <implied>`` and serves until terminated."""
    fake = FastDouyin(APP_KEY, APP_SECRET)
    events = shop_orders(fake, n)
    url = await fake.start()
    print(f"listening on {url} events {events}", flush=True)
    await asyncio.Event().wait()


@asynccontextmanager
async def fake_shop(n: int, log: Path) -> AsyncIterator[tuple[str, int, int]]:
    """(URL, events implied, pid) of :func:`serve_shop` in a child; terminated on exit."""
    with open(log, "ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.connectors", "--shop", str(n)], cwd=ROOT,  # noqa: S603
                                stdout=subprocess.PIPE, stderr=err)  # fmt: skip
    try:
        assert proc.stdout is not None  # noqa: S101 - stdout=PIPE
        line = (await asyncio.to_thread(proc.stdout.readline)).decode()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the fake shop did not start: {line!r}; {log.read_text(errors='replace')[-2000:]}")
        _, _, url, _, events = line.split()
        yield url, int(events), proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def reconciliation(s: Setup, n: int) -> None:
    """Phase 3: one window of ``n`` orders through the real Reconciler in this process."""
    bootstrap = s.broker.bootstrap
    topic = f"bench-reconcile-{time.time_ns()}"
    await ensure_topics(bootstrap, [topic], partitions=4)
    print(f"reconciliation: one window of a shop with {n:,} orders updated over the last day", flush=True)
    async with fake_shop(n, s.tmp / "shop.log") as (url, want, fake_pid), aiohttp.ClientSession() as http:
        config = parse_connectors(connectors_json(url, [RECONCILE_SHOP]), "bench")
        app, shop = config.shops()[0]
        store = ClickHouse(f"chdb://{s.tmp}/reconcile-ch")
        await store.open()
        producer = Producer(bootstrap)
        await producer.start()
        apis = Apis(config)
        await apis.start()
        state = ConnectorState(store)
        reconciler = Reconciler(ReconcileConfig(topic, "bench"), config, producer, state, apis, RegistryRooms(store),
                                StatusBook("bench"), ConnectorMetrics(CollectorRegistry()),
                                lambda _p, _s: True)  # fmt: skip
        try:
            async with http.get(f"{url}/_calls") as resp:
                calls0: Counter[str] = Counter(await resp.json())
            pids = {"shop fake": fake_pid, "broker": s.broker.pid}
            cpu0 = _cpu(pids)
            started = time.perf_counter()
            result = await reconciler.reconcile(app, shop, await state.watermark("douyin", RECONCILE_SHOP),
                                                datetime.now(UTC))  # fmt: skip
            took, cpu = time.perf_counter() - started, _cpu(pids, cpu0)
            mark = await state.watermark("douyin", RECONCILE_SHOP)
            async with Tail(bootstrap, [topic]) as tail:
                on_topic = await tail.catch_up()
            async with http.get(f"{url}/_calls") as resp:
                calls: Counter[str] = Counter(await resp.json())
            calls.subtract(calls0)
            lists = calls["order.searchList"]
            moved = mark is not None and abs((mark.reconciled_to - result.end).total_seconds()) < 1  # DateTime64(3)
            # the raw limits: the same pages fetched, nothing else; the same events produced bare
            api = apis.get(app)
            if not isinstance(api, DouyinApi):
                raise TypeError("the 抖店 app's API is not DouyinApi")
            list_s, list_orders = await _pages_alone(api, shop, result.start, result.end)
            produce_s = await _produce_pages(bootstrap, topic, on_topic, max(lists, 1))
        finally:
            await apis.close()
            await producer.stop()
            await store.close()
    print(f"{'':<44}{'seconds':>10}{'orders/s':>10}{'events/s':>10}")
    print(f"{'ours: Reconciler, one window':<44}{took:>10.1f}{n / took:>10,.0f}{on_topic / took:>10,.0f}"
          f"   watermark moved: {'yes' if moved else 'NO'}")  # fmt: skip
    print(f"{'raw limit: the same pages fetched alone':<44}{list_s:>10.1f}{list_orders / list_s:>10,.0f}")
    print(f"{'raw limit: bare produce, pages of the same size':<44}{produce_s:>10.1f}{'':>10}"
          f"{on_topic / produce_s:>10,.0f}")  # fmt: skip
    print(f"  {result.orders:,} orders; {result.published:,} events sent and acknowledged, {on_topic:,} on the "
          f"topic, {want:,} implied, {result.recovered:,} noted recovered; {lists:,} order-list pages, "
          f"{calls['afterSale.List']:,} after-sale pages, {sum(calls.values()):,} API calls "
          f"({', '.join(f'{k} {v:,}' for k, v in sorted(calls.items()) if v)})")  # fmt: skip
    print(f"  ours / slower limit: {max(list_s, produce_s) / took:.2f};{_cpu_line(cpu)[1:]}", flush=True)


async def _pages_alone(api: DouyinApi, shop: Any, start: datetime, end: datetime) -> tuple[float, int]:
    """The window's after-sale and order-list pages, as the connector asks for them, read
    and counted: what the fake and HTTP cost, without mapping, look-ups or publishing."""
    started, orders = time.perf_counter(), 0
    window = {"update_start_time": _secs(start), "update_end_time": _secs(end)}
    lists = {"update_time_start": _secs(start), "update_time_end": _secs(end), "order_by": "update_time",
             "order_asc": True}  # fmt: skip
    for method, params, key in (("afterSale.List", window, "items"), ("order.searchList", lists, "shop_order_list")):
        page = 0
        while True:
            data = await api.call(shop, method, {**params, "page": page, "size": 100})
            items = data.get(key) or []
            orders += len(items) if key == "shop_order_list" else 0
            if not items or (page + 1) * 100 >= int(data.get("total") or 0):
                break
            page += 1
    return time.perf_counter() - started, orders


async def _produce_pages(bootstrap: str, topic: str, events: int, pages: int) -> float:
    """``events`` benchmark order events in ``pages`` sequential pages, each awaited (acks=all)."""
    rnd = random.Random(3)
    values = [order_payload(i, "reconcile", rnd) for i in range(events)]
    per = max(1, -(-events // pages))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        await producer.send_and_wait(topic, values[0])
        started = time.perf_counter()
        for k in range(0, events, per):
            futures = [await producer.send(topic, v, key=str(i).encode()) for i, v in enumerate(values[k : k + per])]
            await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def run(args: argparse.Namespace, broker: LocalBroker) -> None:
    """The three phases on ``broker`` (the benchmark's own, or a test's)."""
    pushes = getattr(args, "pushes", None) or DEFAULT_PUSHES
    orders = getattr(args, "orders", None) or DEFAULT_ORDERS
    in_flight = getattr(args, "in_flight", None) or DEFAULT_IN_FLIGHT
    tag = f"{time.time_ns():x}"
    settings = Settings(
        kafka_bootstrap=broker.bootstrap, consumer_group=f"bench-conn-{tag}", topic_orders=f"orders-{tag}",
        topic_onboarding=f"onboarding-{tag}", topic_stream_stats=f"stats-{tag}", topic_channels=f"channels-{tag}",
        topic_dlq=f"dlq-{tag}",
    )  # fmt: skip
    raw_topic = f"bench-pushes-{tag}"  # a serve process does not create it: a consume process does
    await ensure_topics(broker.bootstrap, [raw_topic], partitions=4)
    await ensure_topics(broker.bootstrap, [*settings.topics, settings.topic_dlq], partitions=4,
                        routed_from=settings.topics)  # fmt: skip
    fake = FastDouyin(APP_KEY, APP_SECRET)
    url = await fake.start()
    try:
        with scratch_dir() as tmp:
            conf = connectors_json(url, PUSH_SHOPS)
            path = Path(tmp) / "connectors.json"
            path.write_text(json.dumps(conf, ensure_ascii=False), encoding="utf-8")
            env = {k: v for k, v in os.environ.items() if not k.startswith("LIVESALES_")}
            env.update({
                "LIVESALES_KAFKA_BOOTSTRAP": broker.bootstrap, "LIVESALES_CONSUMER_GROUP": settings.consumer_group,
                "LIVESALES_TOPIC_ORDERS": settings.topic_orders,
                "LIVESALES_TOPIC_ONBOARDING": settings.topic_onboarding,
                "LIVESALES_TOPIC_STREAM_STATS": settings.topic_stream_stats, "LIVESALES_TOPIC_DLQ": settings.topic_dlq,
                "LIVESALES_TOPIC_CHANNELS": settings.topic_channels, "LIVESALES_CONNECTORS_FILE": str(path),
                "LIVESALES_TUNING": json.dumps({"connector_pushes_topic": raw_topic}),
            })  # fmt: skip
            setup = Setup(broker, settings, env, fake, parse_connectors(conf, "bench"), Path(tmp), pushes, in_flight,
                          raw_topic)  # fmt: skip
            port = free_port()
            serve_env = {**env, "LIVESALES_API_PORT": str(port), "LIVESALES_CLICKHOUSE_DSN": f"chdb://{tmp}/serve-ch"}
            async with process(["-m", "livesales.cli", "--log-level", "WARNING", "serve"], serve_env,
                               Path(tmp) / "serve.log", f"http://127.0.0.1:{port}/healthz") as proc:  # fmt: skip
                serve = Serve(f"http://127.0.0.1:{port}/connect/douyin", {"serve": proc.pid, "broker": broker.pid})
                on_raw = await acceptance(setup, serve)
                print()
                await whole_path(setup, serve, on_raw)
            print()
            await reconciliation(setup, orders)
    finally:
        await fake.stop()


async def bench_connectors(args: argparse.Namespace) -> None:
    with LocalBroker() as broker:
        await run(args, broker)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--bare-port":
        bare_server(int(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "--shop":
        asyncio.run(serve_shop(int(sys.argv[2])))
