"""Senders under faults, on the real broker and chDB: a robot down, an old transition,
a rate limit, a member killed between a post and its record."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from api.auth import Scope
from ground.settings import Settings
from ingest.producer import Producer
from ingest.topics import ensure_topics
from notify.config import RULES, RobotConfig
from notify.messages import Message
from notify.metrics import NotifyMetrics
from notify.pacing import RetryPolicy
from notify.records import latest
from notify.robots import Outcome, post
from notify.sender import Sender
from notify.transitions import Delivery, Place, Transition, encode
from processors.store import ClickHouse
from tests.conftest import wait_for
from tests.notify.flow_support import PARTITIONS, all_done, sender_config
from tests.support.fake_robots import FakeRobots

FAST = ((5, 1.0),)  # the fake's and the senders' DingTalk limit here: 5 a second, not 20 a minute


@pytest.fixture
async def notify_topic(settings: Settings) -> str:
    topic = f"notify-{settings.consumer_group}"
    await ensure_topics(settings.kafka_bootstrap, [topic], partitions=PARTITIONS)
    return topic


@pytest.fixture
async def fake() -> AsyncIterator[FakeRobots]:
    async with FakeRobots(limits={"dingtalk": FAST}) as f:
        yield f


def robot(fake: FakeRobots, name: str, kind: str, secret: str | None = None) -> RobotConfig:
    return RobotConfig(name, kind, fake.add(name, kind, secret), secret, Scope(), frozenset(RULES))  # type: ignore[arg-type]


def deliveries(robot_name: str, n: int, detected_ms: int | None = None) -> list[Delivery]:
    now_ms = int(time.time() * 1000)
    return [
        Delivery(robot_name, Transition(f"{robot_name}-{i}", "live_started", "live", now_ms + i, now_ms,
                                        detected_ms or now_ms, Place("douyin", "宁海县", "", f"直播间{i}")))
        for i in range(n)
    ]  # fmt: skip


def assigned(sender: Sender) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return sender.assigned

    return check


async def publish(producer: Producer, topic: str, ds: list[Delivery]) -> None:
    await producer.send_all_or_raise([(topic, *encode(d)) for d in ds])


async def test_down_old_and_fast(
    settings: Settings, clickhouse: ClickHouse, producer: Producer, notify_topic: str, fake: FakeRobots
) -> None:
    """A robot down (connections reset) is posted to once it is back; a transition first seen
    two hours ago is dropped unposted and counted; a burst keeps within the rate limit."""
    down, old, fast = robot(fake, "down", "wecom"), robot(fake, "old", "feishu", "fs"), robot(fake, "fast", "dingtalk")
    cfg = sender_config(settings, notify_topic, retry=RetryPolicy(first_s=0.1, cap_s=0.4, max_age_s=3600),
                        rate_limits={"dingtalk": FAST})  # fmt: skip
    metrics = NotifyMetrics()
    sender = Sender(cfg, [down, old, fast], clickhouse, metrics)
    await sender.start()
    try:
        await wait_for(assigned(sender), what="the sender in its group")
        fake.down_for("down", 2.0, "reset")
        started = time.time()
        await publish(producer, notify_topic, deliveries("down", 3) + deliveries("fast", 12)
                      + deliveries("old", 1, detected_ms=int((time.time() - 7200) * 1000)))  # fmt: skip
        await all_done(settings, notify_topic, cfg.group, 16)
    finally:
        await sender.stop()
    assert [a.title for a in fake.of("down")] == [f"### 【开播】直播间{i} 开始直播" for i in range(3)]  # in order
    assert min(a.at for a in fake.of("down")) >= started + 1.5
    assert fake.of("old") == []
    fast_at = sorted(a.at for a in fake.of("fast"))
    assert len(fast_at) == 12 and fast_at[-1] - fast_at[0] >= 2.0 - 0.05
    assert not [why for name, why in fake.refused if name == "fast"]  # never refused for speed
    rows = {r["channel_id"]: r for r in await latest(clickhouse, 50)}
    assert rows["down-0"]["state"] == "sent" and rows["down-0"]["attempts"] >= 2
    assert rows["old-0"]["state"] == "dropped" and rows["old-0"]["attempts"] == 0
    assert "older than" in rows["old-0"]["last_error"]
    assert Counter(r["state"] for r in rows.values()) == {"sent": 15, "dropped": 1}
    assert metrics.dropped.labels("old")._value.get() == 1
    assert set(rows["down-0"]) >= {"robot", "channel_id", "kind", "state", "attempts", "created_at", "updated_at",
                                   "last_error"}  # fmt: skip


async def test_at_least_once_across_a_kill_between_post_and_record(
    settings: Settings, clickhouse: ClickHouse, producer: Producer, notify_topic: str, fake: FakeRobots
) -> None:
    g = robot(fake, "g", "dingtalk", "SECg")
    # the killed member's partitions are reassigned once its session expires (it sends no LeaveGroup)
    cfg = sender_config(settings, notify_topic, session_timeout_ms=2000)
    killed_in_post = asyncio.Event()
    posts = 0

    async with aiohttp.ClientSession() as session:

        async def dies_after_the_third_post(r: RobotConfig, msg: Message, now: float) -> Outcome:
            nonlocal posts
            out = await post(session, r, msg, now)
            posts += 1
            if posts == 3:  # the robot has it; the record never will: the process dies here
                killed_in_post.set()
                await asyncio.Event().wait()
            return out

        first = Sender(cfg, [g], clickhouse, poster=dies_after_the_third_post, name="first")
        await first.start()
        await publish(producer, notify_topic, deliveries("g", 5))
        await asyncio.wait_for(killed_in_post.wait(), 30)
        await first.abort()

    second = Sender(cfg, [g], clickhouse, name="second")
    await second.start()
    try:
        await all_done(settings, notify_topic, cfg.group, 5)
    finally:
        await second.stop()
    got = Counter(a.title for a in fake.of("g"))
    assert set(got) == {f"【开播】直播间{i} 开始直播" for i in range(5)}  # every one arrived
    assert got["【开播】直播间2 开始直播"] == 2  # the one posted but not recorded: once more
    assert sum(got.values()) == 6  # and nothing else twice
    assert {r["state"] for r in await latest(clickhouse, 10)} == {"sent"}


async def test_a_rebalance_while_a_robot_is_failing(
    settings: Settings, clickhouse: ClickHouse, producer: Producer, notify_topic: str, fake: FakeRobots
) -> None:
    """A second member joins while the first backs off from a failing robot: the robot's
    deliveries are handed over mid-retry, keep their attempts, and arrive once each."""
    w = robot(fake, "w", "wecom")
    cfg = sender_config(settings, notify_topic, retry=RetryPolicy(first_s=0.1, cap_s=0.3, max_age_s=3600))
    first, second = Sender(cfg, [w], clickhouse, name="first"), Sender(cfg, [w], clickhouse, name="second")
    fake.down_for("w", 60.0, "5xx")
    await first.start()
    try:
        await publish(producer, notify_topic, deliveries("w", 3))

        async def retrying() -> bool:
            return any(r["state"] == "retrying" for r in await latest(clickhouse, 10))

        await wait_for(retrying, what="a failed attempt recorded")
        await second.start()
        await wait_for(assigned(second), what="the second member assigned")
        fake.down_for("w", 0.0)
        await all_done(settings, notify_topic, cfg.group, 3)
    finally:
        await second.stop()
        await first.stop()
    assert sorted(a.title for a in fake.of("w")) == [f"### 【开播】直播间{i} 开始直播" for i in range(3)]
    rows = {r["channel_id"]: r for r in await latest(clickhouse, 10)}
    assert {r["state"] for r in rows.values()} == {"sent"} and rows["w-0"]["attempts"] >= 2
