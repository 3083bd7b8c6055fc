"""The whole path on the real broker and real chDB: detectors → topic → senders → fake robots.

Two detectors and two senders stand for two processes (separate instances, separate
memory, one store, one consumer group). Three robots with different scopes and rules.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.alerts import Thresholds
from api.queries.alerts import alerts_of
from ground.settings import Settings
from ingest.producer import Producer
from ingest.topics import ensure_topics
from notify.config import parse_robots
from notify.detector import Detector, DetectorConfig
from notify.records import latest
from notify.sender import Sender
from processors.store import ClickHouse
from tests.api.conftest import order, stats, store_events
from tests.notify.flow_support import PARTITIONS, PUBLIC, Counting, all_done, sender_config
from tests.support.fake_robots import FakeRobots

C25 = ("clam-2.5kg", "长街蛏子 2.5kg 装", 1, 6800, 2500)


@pytest.fixture
async def notify_topic(settings: Settings) -> str:
    topic = f"notify-{settings.consumer_group}"
    await ensure_topics(settings.kafka_bootstrap, [topic], partitions=PARTITIONS)
    return topic


@pytest.fixture
async def fake() -> AsyncIterator[FakeRobots]:
    async with FakeRobots() as f:
        yield f


def scenario(now: datetime) -> list[dict[str, Any]]:
    """A (长街镇, registered): silence fires at minute 20 and clears at 26; B (桃源街道): quiet;
    C (象山县): a refund spike from minute 3 that is still firing when the sale ends."""
    base = now.replace(second=0, microsecond=0) - timedelta(minutes=40)

    def at(minute: int, second: int = 10) -> str:
        return (base + timedelta(minutes=minute, seconds=second)).isoformat()

    events: list[dict[str, Any]] = [{
        "schema": "channel.v1", "event_id": "reg-a", "occurred_at": at(0, 0), "channel_id": "nh-a",
        "platform": "douyin", "title": "长街蛏子专场", "host": "小蛏",
        "region": {"district": "宁海县", "township": "长街镇"},
    }]  # fmt: skip
    events += [order(f"a-{m}", f"oa{m}", "paid", at(m), "nh-a", [C25]) for m in (0, 1, 2, 3, 4, 25)]
    events += [stats(f"sa{m}", at(m, 30), "nh-a", 100 + m, 1000 * m) for m in range(31)]
    events += [order(f"b-{m}", f"ob{m}", "paid", at(m), "nh-b", [C25], township="桃源街道") for m in range(4)]
    xs = {"platform": "kuaishou", "district": "象山县", "township": "石浦镇"}
    events += [
        order("c-0", "oc0", "paid", at(0), "xs-c", [C25], **xs),
        order("c-1", "oc1", "paid", at(1), "xs-c", [C25], **xs),
        order("c-0r", "oc0", "refunded", at(2), "xs-c", [C25], **xs),
        stats("sc5", at(5), "xs-c", 10, 50),
    ]
    return events


def robots_doc(fake: FakeRobots) -> dict[str, Any]:
    every = ["silence", "refund_spike", "pace_drop", "live_started", "live_ended"]
    return {"robots": [
        {"name": "bureau", "kind": "dingtalk", "url": fake.add("bureau", "dingtalk", "SECbureau"),
         "secret": "SECbureau", "scope": "all", "rules": every},
        {"name": "ninghai", "kind": "wecom", "url": fake.add("ninghai", "wecom"), "scope": "district:宁海县",
         "rules": ["live_started", "live_ended", "silence"]},
        {"name": "changjie", "kind": "feishu", "url": fake.add("changjie", "feishu", "fs-secret"),
         "secret": "fs-secret", "scope": "township:宁海县/长街镇", "rules": every},
    ]}  # fmt: skip


EXPECTED = {
    "bureau": {"【开播】长街蛏子专场 开始直播", "【告警】长街蛏子专场：无成交", "【恢复】长街蛏子专场：无成交已恢复",
               "【开播】nh-b 开始直播", "【开播】xs-c 开始直播", "【告警】xs-c：退款激增",
               "【下播】长街蛏子专场 直播结束", "【下播】nh-b 直播结束", "【下播】xs-c 直播结束",
               "【恢复】xs-c：退款激增已恢复"},
    "ninghai": {"【开播】长街蛏子专场 开始直播", "【告警】长街蛏子专场：无成交", "【恢复】长街蛏子专场：无成交已恢复",
                "【开播】nh-b 开始直播", "【下播】长街蛏子专场 直播结束", "【下播】nh-b 直播结束"},
    "changjie": {"【开播】长街蛏子专场 开始直播", "【告警】长街蛏子专场：无成交", "【恢复】长街蛏子专场：无成交已恢复",
                 "【下播】长街蛏子专场 直播结束"},
}  # fmt: skip


def headline(title: str) -> str:
    return title.removeprefix("### ").removeprefix("#### ")


async def test_every_transition_once_per_robot_with_two_of_everything(
    settings: Settings, clickhouse: ClickHouse, producer: Producer, notify_topic: str, fake: FakeRobots
) -> None:
    await store_events(clickhouse, scenario(datetime.now(UTC)))
    robots = parse_robots(robots_doc(fake), "test")
    skew = {"s": 0.0}  # the detectors' clock: +11 minutes ends every sale

    def clock() -> float:
        return time.time() + skew["s"]

    async def alerts(channel: str, now: datetime) -> list[dict[str, Any]]:
        return await alerts_of(clickhouse, channel, Thresholds(silence_minutes=15, refund_spike_pct=20.0), None, now)

    cfg = sender_config(settings, notify_topic)
    senders = [Sender(cfg, robots, clickhouse, name=f"sender-{i}") for i in (1, 2)]
    published = Counting(producer)
    detectors = [Detector(DetectorConfig(topic=notify_topic), robots, clickhouse, published, alerts, clock=clock)
                 for _ in (1, 2)]  # fmt: skip
    for s in senders:
        await s.start()
    try:
        first = [await d.poll() for d in detectors]
        assert sorted(t.id for t in first[0]) == sorted(t.id for t in first[1])  # both name them alike
        assert {(t.channel_id, t.rule, t.edge) for t in first[0]} == {
            ("nh-a", "live_started", "live"), ("nh-a", "silence", "firing"), ("nh-a", "silence", "cleared"),
            ("nh-b", "live_started", "live"), ("xs-c", "live_started", "live"),
            ("xs-c", "refund_spike", "firing"),
        }  # fmt: skip
        assert [await d.poll() for d in detectors] == [[], []]  # nothing new: nothing published again
        skew["s"] = 11 * 60
        second = [await d.poll() for d in detectors]
        assert {(t.channel_id, t.rule, t.edge) for t in second[0]} == {
            ("nh-a", "live_ended", "ended"), ("nh-b", "live_ended", "ended"), ("xs-c", "live_ended", "ended"),
            ("xs-c", "refund_spike", "cleared"),
        }
        # a detector restarted (its memory lost) publishes all of it again: the senders skip it
        restarted = Detector(DetectorConfig(topic=notify_topic), robots, clickhouse, published, alerts, clock=clock)
        assert len(await restarted.poll()) == 4 + 3  # the 下播s, the clearing, and the recent alert episodes

        assert published.sent == 2 * 20 + 14  # two detectors' 20 deliveries, and the restarted one's 14
        await all_done(settings, notify_topic, cfg.group, published.sent)
        for name, want in EXPECTED.items():
            got = Counter(headline(a.title) for a in fake.of(name))
            assert set(got) == want, (name, got)
            assert all(n == 1 for n in got.values()), (name, got)
        assert not fake.refused
        rows = await latest(clickhouse, 100)
        assert len(rows) == 20 and {r["state"] for r in rows} == {"sent"}
        assert Counter(r["robot"] for r in rows) == {"bureau": 10, "ninghai": 6, "changjie": 4}
    finally:
        for s in senders:
            await s.stop()

    (silence,) = [a for a in fake.of("changjie") if a.title.startswith("【告警】")]
    assert "发生时间：" in silence.text and "地区：宁海县 长街镇 · 抖音" in silence.text
    assert "详情" not in silence.text  # first seen already over: its banner tells the end, the 恢复 says it
    (over,) = [a for a in fake.of("changjie") if a.title.startswith("【恢复】")]
    assert "详情：已连续 20 分钟没有支付订单（阈值 15 分钟），已恢复成交" in over.text
    assert silence.links == over.links == (f"{PUBLIC}/live.html?channel=nh-a",)
    (spike,) = [a for a in fake.of("bureau") if a.title == "【告警】xs-c：退款激增"]
    assert "**详情**：近 30 分钟退款 1 单、支付 2 单，退款率 50.0%（阈值 20%）" in spike.text
    (ended,) = [a for a in fake.of("bureau") if a.title == "【下播】长街蛏子专场 直播结束"]
    assert "**支付订单**：6 单" in ended.text and "**成交额**：408.00 元" in ended.text
    assert "**成交重量**：15 千克" in ended.text and "**最高在线**：130 人" in ended.text
