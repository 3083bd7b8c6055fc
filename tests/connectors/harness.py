"""The connectors on a real broker and real chDB: the service (``Runtime``: consumers and
the store, so counting is the real §3), the push receiver on an HTTP port, and any number
of connector members (a push worker and its reconciler: one process's worth of state)."""

from __future__ import annotations

import random
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition

from connectors.apis import Apis
from connectors.config import ConnectorsConfig, parse_connectors
from connectors.events import StaticRooms
from connectors.metrics import ConnectorMetrics
from connectors.receiver import ReceiverConfig, push_routes
from connectors.reconcile import ReconcileConfig, Reconciler
from connectors.state import ConnectorState
from connectors.status import StatusBook, StatusConfig, StatusFlusher, connectors_status
from connectors.worker import PushWorker, WorkerConfig
from ground.settings import Settings
from ingest.kafka_security import KafkaAccess
from ingest.routing import routed_topics
from ingest.topics import ensure_topics
from livesales.runtime import Runtime
from localplatforms.platform import FakeOrder, FakePlatform
from tests.conftest import wait_for
from tests.support.settings import tuned

ROOM = "7001"  # the registered live room (StaticRooms): its orders count under CHANNEL
CHANNEL = "festival"


def douyin_app(url: str, shops: list[dict[str, Any]]) -> dict[str, Any]:
    return {"platform": "douyin", "app_key": "dy-app", "app_secret": "dy-secret", "api_base": url, "shops": shops}


def kuaishou_app(url: str, shops: list[dict[str, Any]], msg_secret: str) -> dict[str, Any]:
    return {"platform": "kuaishou", "app_key": "ks-app", "app_secret": "ks-secret", "sign_secret": "ks-sign",
            "msg_secret": msg_secret, "api_base": url, "shops": shops}  # fmt: skip


def shop(shop_id: str, live_only: bool = True, **extra: Any) -> dict[str, Any]:
    return {"shop_id": shop_id, "merchant_id": f"m{shop_id}", "region": {"district": "宁海县", "township": "长街镇"},
            "live_only": live_only, **extra}  # fmt: skip


@dataclass
class Member:
    worker: PushWorker
    reconciler: Reconciler
    apis: Apis
    flusher: StatusFlusher


class Stack:
    def __init__(self, settings: Settings, migrated: Path, apps: list[dict[str, Any]]) -> None:
        self.settings = tuned(settings, validation_processes=0)
        self.migrated = migrated
        self.config: ConnectorsConfig = parse_connectors({"connectors": apps}, "test")
        self.raw_topic = f"pushes-{uuid.uuid4().hex[:8]}"
        self.rooms = StaticRooms({("douyin", ROOM): CHANNEL, ("kuaishou", ROOM): CHANNEL})
        self.runtime = Runtime(self.settings)
        self.metrics = ConnectorMetrics()
        self.book = StatusBook("receiver")
        self.members: list[Member] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def state(self) -> ConnectorState:
        return ConnectorState(self.runtime.store)

    async def start(self, receiver: ReceiverConfig | None = None) -> None:
        target = Path(self.settings.clickhouse_dsn.removeprefix("chdb://"))
        if not target.exists():
            shutil.copytree(self.migrated, target, symlinks=True)
        await ensure_topics(self.settings.kafka_bootstrap, [self.raw_topic], partitions=4)
        await self.runtime.start(api=False)
        app = web.Application()
        app.add_routes(push_routes(receiver or ReceiverConfig(raw_topic=self.raw_topic), self.config,
                                   self.runtime.producer, self.book, self.metrics))  # fmt: skip
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    def push_url(self, platform: str) -> str:
        return f"{self.url}/connect/{platform}"

    async def add_member(self, interval_s: float = 3600.0, reconcile: bool = True, **overrides: Any) -> Member:
        n = len(self.members)
        apis = Apis(self.config, timeout_s=2.0)
        await apis.start()
        book = StatusBook(f"member-{n}")
        worker = PushWorker(
            WorkerConfig(KafkaAccess(self.settings.kafka_bootstrap), f"{self.settings.consumer_group}-connectors",
                         self.settings.topic_orders, self.raw_topic, retry_first_s=0.2, retry_cap_s=1.0,
                         session_timeout_ms=3000),
            self.config, self.runtime.producer, self.state, apis, self.rooms, book, self.metrics, name=f"member-{n}",
        )  # fmt: skip
        opts = {"lag_s": 0.0, "overlap_s": 5.0, "first_lookback_s": 3600.0, "tick_s": 0.1, "retry_s": 0.5,
                **overrides}  # fmt: skip
        reconciler = Reconciler(
            ReconcileConfig(self.settings.topic_orders, f"member-{n}", interval_s=interval_s, **opts),
            self.config, self.runtime.producer, self.state, apis, self.rooms, book, self.metrics, worker.owns,
        )  # fmt: skip
        flusher = StatusFlusher(book, self.state, StatusConfig(flush_s=0.2))
        await worker.start()
        await flusher.start()
        if reconcile:
            await reconciler.start()
        member = Member(worker, reconciler, apis, flusher)
        self.members.append(member)
        return member

    async def drop_member(self, member: Member) -> None:
        await member.reconciler.stop()
        await member.worker.stop()
        await member.flusher.stop()
        await member.apis.close()
        self.members.remove(member)

    async def kill(self, member: Member) -> None:
        """As a kill -9 leaves it: nothing flushed or committed, and the group not told (it
        learns by the session timeout, then rebalances)."""
        for task in (member.reconciler._task, member.worker._task, member.flusher._task):
            if task is not None:
                task.cancel()
        kafka = member.worker._kafka
        assert kafka is not None

        async def silent() -> None:
            return None

        kafka._coordinator._maybe_leave_group = silent
        await kafka.stop()
        await member.apis.close()
        self.members.remove(member)

    async def stop(self) -> None:
        for member in list(self.members):
            await self.drop_member(member)
        if self._runner is not None:
            await self._runner.cleanup()
        await StatusFlusher(self.book, self.state).flush()
        await self.runtime.stop()

    async def status(self) -> list[dict[str, Any]]:
        await StatusFlusher(self.book, self.state).flush()
        for m in self.members:
            await m.flusher.flush()
        return list((await connectors_status(self.state, self.config))["connectors"])

    async def counts(self) -> dict[tuple[str, str], tuple[int, int]]:
        """Stored order steps per (channel, status): (steps, Σ amount_fen)."""
        rows = await self.runtime.store.query(
            "SELECT channel_id, toString(status) AS status, count() AS n, sum(amount_fen) AS fen FROM order_steps"
            " GROUP BY channel_id, status"
        )
        return {(str(r["channel_id"]), str(r["status"])): (int(r["n"]), int(r["fen"])) for r in rows}


def truth(orders: list[FakeOrder], platform: str, live_only: dict[str, bool]) -> dict[tuple[str, str], tuple[int, int]]:
    """What the orders must count as (one refund per order at most: contract §3 before refund_id)."""
    steps: Counter[tuple[str, str]] = Counter()
    fen: Counter[tuple[str, str]] = Counter()
    for o in orders:
        if o.room_id:
            channel = CHANNEL if o.room_id == ROOM else f"{platform}-room-{o.room_id}"
        elif live_only[o.shop_id]:
            continue
        else:
            channel = f"{platform}-shop-{o.shop_id}"
        parts = [("created", o.value_fen)]
        if o.paid_at:
            parts.append(("paid", o.value_fen))
        parts += [("refunded", r.amount_fen) for r in o.refunds]
        for status, amount in parts:
            steps[(channel, status)] += 1
            fen[(channel, status)] += amount
    return {k: (steps[k], fen[k]) for k in steps}


async def true(value: bool) -> bool:
    """``wait_for`` on a plain condition: ``wait_for(lambda: true(x > 0))``."""
    return value


BIG = 6_917_000_000_000_000_000  # order ids beyond 2^53


def sale(fake: FakePlatform, shops: list[str], n: int, seed: int, refunds: bool = True) -> list[FakeOrder]:
    """``n`` orders over the last six hours: 80% in the registered room, 10% in another,
    10% outside any room; 90% paid (a tenth of those refunded, some partially), half of
    the rest cancelled."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    base = now - timedelta(hours=6)
    for i in range(n):
        r = rng.random()
        room = ROOM if r < 0.8 else ("7002" if r < 0.9 else None)
        price = rng.choice([1990, 2990, 5800])
        t = base + timedelta(seconds=rng.uniform(0, 6 * 3600 - 900))
        oid = str(BIG + seed * 100_000 + i)
        fake.create(FakeOrder(oid, shops[i % len(shops)], t, [(f"sku{rng.randrange(4)}", "长街蛏子", rng.randint(1, 3),
                                                                 price)], room))  # fmt: skip
        if rng.random() < 0.9:
            fake.pay(oid, t + timedelta(seconds=30))
            if refunds and rng.random() < 0.1:
                amount = fake.orders[oid].value_fen // rng.choice([1, 2])
                fake.refund(oid, str(BIG + 50_000 + seed * 100_000 + i), amount, min(t + timedelta(hours=1), now))
        elif rng.random() < 0.5:
            fake.cancel(oid, t + timedelta(minutes=10))
    return list(fake.orders.values())


async def wait_settled(stack: Stack, timeout: float = 30.0, what: str = "the pushes' events stored") -> None:
    """Wait until the push workers committed every raw push (its events acknowledged), then
    the service every order event (stored), then every forward of one: one consumer per
    group for the whole wait, the groups and topics checked in that order."""
    s = stack.settings
    raw = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap, group_id=f"{s.consumer_group}-connectors")
    main = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap, group_id=s.consumer_group)
    await raw.start()
    await main.start()
    steps = [(raw, [stack.raw_topic]), (main, [s.topic_orders]), (main, routed_topics([s.topic_orders]))]

    async def done() -> bool:
        for consumer, topics in steps:
            tps = [TopicPartition(t, p) for t in topics for p in range(4)]
            ends = await consumer.end_offsets(tps)
            for tp in tps:
                if (await consumer.committed(tp) or 0) < ends[tp]:
                    return False
        return True

    try:
        await wait_for(done, timeout=timeout, what=what)
    finally:
        await raw.stop()
        await main.stop()


async def equal(stack: Stack, want: dict[tuple[str, str], tuple[int, int]]) -> bool:
    return await stack.counts() == want
