"""Alert rules as a pure function of a channel's per-minute series and its clock.

Several API processes must give the same answer, and a replayed sale must behave like a
live one, so nothing here remembers anything between calls and nothing reads the wall
clock: the rules are evaluated minute by minute along the channel's own clock (the
newest ``occurred_at`` of its events, contract §3), and each episode is recomputed from
the stored rows every time. Two processes reading the same rows return the same list.

Evaluation points are minute boundaries ``T`` with first minute < T <= the clock; at
``T`` a rule sees the complete minutes before it (a window of W minutes is [T − W, T)).
A rule's state can only change where a window edge passes a minute that holds data or
where a rule becomes applicable, so only those boundaries are evaluated: the result is
the same as stepping every minute, at a cost proportional to the minutes with data.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

MINUTE = 60
REFUND_WINDOW_MIN = 30
PACE_RECENT_MIN = 15
PACE_BASE_MIN = 60
MAX_EPISODES = 100  # newest first; a long, flapping sale keeps only the newest


@dataclass(frozen=True)
class Thresholds:
    silence_minutes: int = 15
    refund_spike_pct: float = 20.0


@dataclass(frozen=True)
class Series:
    """What the rules read: per-minute counts keyed by the minute's start (epoch seconds)."""

    paid: dict[int, int]
    refunded: dict[int, int]
    first_at: float  # the channel's first event, epoch seconds
    clock: float  # the channel's newest event, epoch seconds
    live: bool  # contract §3's status rule: a row stored within the last 10 minutes


@dataclass
class Episode:
    rule: str
    since: int  # epoch seconds, a minute boundary
    until: float | None  # None while firing
    figures: dict[str, Any] = field(default_factory=dict)
    ended_with_channel: bool = False  # closed because the channel stopped being live

    @property
    def state(self) -> str:
        return "firing" if self.until is None else "cleared"


class _Window:
    """Counts over [lo, hi) of one per-minute series by prefix sums; O(log n) a query."""

    def __init__(self, counts: dict[int, int]) -> None:
        self.keys = sorted(k for k, v in counts.items() if v)
        self.sums = [0, *accumulate(counts[k] for k in self.keys)]

    def count(self, lo: int, hi: int) -> int:
        return self.sums[bisect_left(self.keys, hi)] - self.sums[bisect_left(self.keys, lo)]


def _floor(t: float) -> int:
    return int(t // MINUTE) * MINUTE


def _boundaries(s: Series, th: Thresholds) -> list[int]:
    """Every minute boundary where some rule's input or applicability can change."""
    first, last = _floor(s.first_at), _floor(s.clock)
    shifts = (0, th.silence_minutes, REFUND_WINDOW_MIN, PACE_RECENT_MIN, PACE_RECENT_MIN + PACE_BASE_MIN)
    # the first boundary, and where silence and pace_drop become applicable (their windows fit)
    points = {first + k * MINUTE for k in (1, th.silence_minutes, PACE_RECENT_MIN + PACE_BASE_MIN)}
    for m in {*s.paid, *s.refunded}:
        points.update(m + (1 + k) * MINUTE for k in shifts)
    return sorted(t for t in points if first < t <= last)


def _conditions(
    t: int, first: int, paid: _Window, refunded: _Window, th: Thresholds
) -> dict[str, dict[str, Any] | None]:
    """Each rule's figures at boundary ``t`` when its condition holds, else None."""
    out: dict[str, dict[str, Any] | None] = {"silence": None, "refund_spike": None, "pace_drop": None}
    n = th.silence_minutes
    if t - n * MINUTE >= first and paid.count(t - n * MINUTE, t) == 0:
        out["silence"] = {"minutes": n}
    lo = t - REFUND_WINDOW_MIN * MINUTE
    r, p = refunded.count(lo, t), paid.count(lo, t)
    if r > 0 and r * 100 > th.refund_spike_pct * p:
        out["refund_spike"] = {"refunded": r, "paid": p}
    recent_lo = t - PACE_RECENT_MIN * MINUTE
    base_lo = recent_lo - PACE_BASE_MIN * MINUTE
    if base_lo >= first:
        recent, base = paid.count(recent_lo, t), paid.count(base_lo, recent_lo)
        # recent/15 < (base/60)/2, in integers
        if 2 * PACE_BASE_MIN * recent < PACE_RECENT_MIN * base:
            out["pace_drop"] = {"recent": recent, "base": base}
    return out


def evaluate(s: Series, th: Thresholds) -> list[Episode]:
    """Every episode of every rule along the channel's clock, newest first."""
    first = _floor(s.first_at)
    paid, refunded = _Window(s.paid), _Window(s.refunded)
    open_: dict[str, Episode] = {}
    latest: dict[str, dict[str, Any]] = {}  # an open episode's figures now, for its banner
    done: list[Episode] = []
    for t in _boundaries(s, th):
        for rule, figures in _conditions(t, first, paid, refunded, th).items():
            ep = open_.get(rule)
            if figures is not None and ep is None:
                open_[rule] = Episode(rule, t, None, figures)
            elif figures is None and ep is not None:
                ep.until = t  # a cleared episode keeps the figures it fired with
                done.append(open_.pop(rule))
            if figures is not None:
                latest[rule] = figures
    for ep in open_.values():
        if ep.rule != "silence":
            ep.figures = latest[ep.rule]
        else:  # how long it has lasted so far, on the channel's clock
            ep.figures = {**ep.figures, "minutes": ep.figures["minutes"] + int((s.clock - ep.since) // MINUTE)}
        if not s.live:  # an ended sale alarms no one: its open episodes end with its last event
            ep.until = s.clock
            ep.ended_with_channel = True
        done.append(ep)
    for ep in done:
        if ep.rule == "silence" and not ep.ended_with_channel and ep.until is not None:
            # the paid order that ended it came in the minute before ``until``
            ep.figures = {**ep.figures, "minutes": ep.figures["minutes"] + int((ep.until - ep.since) // MINUTE) - 1}
    done.sort(key=lambda e: (-e.since, e.rule))
    return done[:MAX_EPISODES]


def message(ep: Episode, th: Thresholds) -> str:
    """What the live screen's banner says, in Chinese, with the figures."""
    f = ep.figures
    if ep.rule == "silence":
        text = f"已连续 {f['minutes']} 分钟没有支付订单（阈值 {th.silence_minutes} 分钟）"
        after = "，已恢复成交"
    elif ep.rule == "refund_spike":
        rate = f"退款率 {f['refunded'] * 100 / f['paid']:.1f}%" if f["paid"] else "期间没有支付订单"
        text = (f"近 {REFUND_WINDOW_MIN} 分钟退款 {f['refunded']} 单、支付 {f['paid']} 单，{rate}"
                f"（阈值 {th.refund_spike_pct:g}%）")  # fmt: skip
        after = "，已回落"
    else:
        per = f["base"] * PACE_RECENT_MIN / PACE_BASE_MIN
        text = (f"近 {PACE_RECENT_MIN} 分钟支付 {f['recent']} 单，不到前一小时节奏的一半"
                f"（前一小时 {f['base']} 单，约每 {PACE_RECENT_MIN} 分钟 {per:.1f} 单）")  # fmt: skip
        after = "，已回升"
    if ep.ended_with_channel:
        return text + "，直播已结束"
    if ep.until is not None:
        return text + after
    return text
