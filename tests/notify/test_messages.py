"""The messages: Chinese, exact 元, the channel's clock, the live page's link."""

from __future__ import annotations

from datetime import timedelta, timezone
from pathlib import Path

import api.labels
from notify.messages import PLATFORMS, RULES, MessageConfig, kilograms, live_link, render, yuan
from notify.transitions import decode, encode
from tests.notify.samples import delivery, transition

CFG = MessageConfig("https://sales.example.cn")


def test_yuan_is_exact() -> None:
    assert yuan(0) == "0.00 元"
    assert yuan(1) == "0.01 元"
    assert yuan(12_345_678) == "123,456.78 元"
    assert yuan(10**12 + 99) == "10,000,000,000.99 元"  # no float rounding at the contract's maximum
    assert yuan(-5) == "-0.05 元"
    assert kilograms(2500) == "2.5 千克" and kilograms(1_000_000) == "1,000 千克" and kilograms(7) == "0.007 千克"


def test_labels_are_the_dashboards() -> None:
    assert PLATFORMS == api.labels.PLATFORMS
    assert RULES == api.labels.RULES


def test_the_link_is_the_dashboards_live_page() -> None:
    assert live_link("https://x", "nh live/1") == "https://x/live.html?channel=nh%20live%2F1"
    web = (Path(api.labels.__file__).parent / "web" / "index.js").read_text(encoding="utf-8")
    assert "live.html?channel=${encodeURIComponent(id)}" in web


def test_an_alert_in_chinese_on_the_channels_clock() -> None:
    msg = render(transition("firing"), CFG)
    assert msg.title == "【告警】长街蛏子专场：无成交"
    lines = dict(msg.lines)
    assert lines["直播间"] == "长街蛏子专场（nh-live）"
    assert lines["主播"] == "小蛏"
    assert lines["地区"] == "宁海县 长街镇 · 抖音"
    assert lines["详情"].startswith("已连续 15 分钟")
    assert lines["发生时间"] == "2026-05-01 10:20:00（北京时间）"
    assert lines["累计"] == "支付 1,234 单 · 成交 123,456.78 元"
    assert msg.link == "https://sales.example.cn/live.html?channel=nh-live"
    cleared = render(transition("cleared"), CFG)
    assert cleared.title == "【恢复】长街蛏子专场：无成交已恢复" and "恢复时间" in dict(cleared.lines)


def test_the_time_in_another_offset() -> None:
    msg = render(transition("live", "live_started"), MessageConfig("https://x", timezone(timedelta(hours=9))))
    assert dict(msg.lines)["开播时间"] == "2026-05-01 11:20:00（UTC+09:00）"
    assert msg.title == "【开播】长街蛏子专场 开始直播"


def test_the_end_carries_the_sales_totals() -> None:
    msg = render(transition("ended", "live_ended"), CFG)
    lines = dict(msg.lines)
    assert msg.title == "【下播】长街蛏子专场 直播结束"
    assert lines["直播时长"] == "3 小时 5 分钟"
    assert lines["支付订单"] == "1,234 单"
    assert lines["成交额"] == "123,456.78 元"
    assert lines["退款额"] == "68.00 元"
    assert lines["净成交额"] == "123,388.78 元"
    assert lines["成交重量"] == "2.5 千克"
    assert lines["最高在线"] == "4,321 人" and lines["累计观看"] == "98,765 次"


def test_an_unregistered_channel_is_named_by_its_id() -> None:
    t = transition("live", "live_started")
    t = type(t)(**{**t.__dict__, "place": type(t.place)("kuaishou", "", "")})
    msg = render(t, CFG)
    assert msg.title == "【开播】nh-live 开始直播"
    assert dict(msg.lines)["地区"] == "未登记 · 快手"


def test_a_delivery_round_trips_through_the_topic() -> None:
    d = delivery("bureau", edge="ended", rule="live_ended")
    key, value = encode(d)
    assert key == b"bureau"
    assert decode(value) == d
    assert d.transition.id == f"nh-live|live_ended|ended|{d.transition.key_ms}"
