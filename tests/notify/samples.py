"""Transitions and robots for the notify tests."""

from __future__ import annotations

from api.auth import Scope
from notify.config import RULES, RobotConfig
from notify.transitions import Delivery, Figures, Place, Transition

# 2026-05-01 10:20:00 +08:00
AT_MS = 1_777_602_000_000
PLACE = Place("douyin", "宁海县", "长街镇", "长街蛏子专场", "小蛏")


def transition(
    edge: str = "firing", rule: str = "silence", channel: str = "nh-live", key_ms: int = AT_MS,
    detected_ms: int = AT_MS, text: str | None = "已连续 15 分钟没有支付订单（阈值 15 分钟）",
) -> Transition:  # fmt: skip
    figures = Figures(paid_orders=1234, gmv_fen=12_345_678, refund_fen=6800, weight_g=2500,
                      views_total=98765, viewers_peak=4321, first_ms=AT_MS - 3 * 3600_000 - 5 * 60_000,
                      last_ms=AT_MS)  # fmt: skip
    return Transition(channel, rule, edge, key_ms, AT_MS, detected_ms, PLACE, figures, text)


def robot(kind: str = "dingtalk", url: str = "http://127.0.0.1:1/robot/send?access_token=t",
          secret: str | None = None, name: str = "r") -> RobotConfig:  # fmt: skip
    return RobotConfig(name, kind, url, secret, Scope(), frozenset(RULES))  # type: ignore[arg-type]


def delivery(robot_name: str = "r", **kw: object) -> Delivery:
    return Delivery(robot_name, transition(**kw))  # type: ignore[arg-type]
