"""The pure alert rules, driven by synthetic per-minute series: when each rule fires,
when it clears, and that it fires once per episode."""

from __future__ import annotations

import random

from api.alerts import MINUTE, Episode, Series, Thresholds, _conditions, _floor, _Window, evaluate, message

T0 = 1_582_941_600  # 2020-02-29T02:00:00Z, a minute boundary
TH = Thresholds(silence_minutes=15, refund_spike_pct=20.0)


def at(minute: float) -> float:
    return T0 + minute * MINUTE


def series(paid: dict[int, int], refunded: dict[int, int] | None = None, clock: float = 0.0,
           live: bool = True, first: float = 0.0) -> Series:  # fmt: skip
    return Series({int(at(m)): n for m, n in paid.items()}, {int(at(m)): n for m, n in (refunded or {}).items()},
                  at(first), at(clock), live)  # fmt: skip


def only(episodes: list[Episode], rule: str) -> list[Episode]:
    return [e for e in episodes if e.rule == rule]


def test_silence_fires_after_n_quiet_minutes_once_and_stays_firing() -> None:
    s = series({m: 1 for m in range(10)}, clock=40.5)  # last paid order in minute 9
    [ep] = only(evaluate(s, TH), "silence")
    assert ep.state == "firing" and ep.since == at(25) and ep.until is None
    assert message(ep, TH) == "已连续 30 分钟没有支付订单（阈值 15 分钟）"  # minute 10 to the clock at 40.5


def test_silence_does_not_fire_one_minute_early() -> None:
    assert not only(evaluate(series({m: 1 for m in range(10)}, clock=24.99), TH), "silence")
    assert only(evaluate(series({m: 1 for m in range(10)}, clock=25.0), TH), "silence")


def test_silence_clears_on_the_next_paid_order_and_fires_again_as_a_new_episode() -> None:
    s = series({**{m: 1 for m in range(10)}, 30: 2}, clock=60)
    second, first = only(evaluate(s, TH), "silence")
    assert (first.since, first.until, first.state) == (at(25), at(31), "cleared")
    assert message(first, TH) == "已连续 20 分钟没有支付订单（阈值 15 分钟），已恢复成交"
    assert (second.since, second.until) == (at(46), None)


def test_silence_needs_n_minutes_of_the_channel_before_it_can_fire() -> None:
    assert not only(evaluate(series({}, clock=14.5), TH), "silence")  # stats only, 14.5 minutes in
    [ep] = only(evaluate(series({}, clock=15), TH), "silence")
    assert ep.since == at(15)


def test_open_episodes_of_an_ended_channel_end_with_its_last_event() -> None:
    [ep] = only(evaluate(series({m: 1 for m in range(10)}, clock=40.5, live=False), TH), "silence")
    assert ep.state == "cleared" and ep.until == at(40.5)
    assert message(ep, TH).endswith("直播已结束")


def test_refund_spike_fires_over_the_threshold_and_clears_when_the_refunds_leave_the_window() -> None:
    s = series({m: 1 for m in range(10)}, {12: 3}, clock=50)
    [ep] = only(evaluate(s, TH), "refund_spike")
    assert (ep.since, ep.until) == (at(13), at(43))  # 3 of 10 = 30 %; minute 12 leaves [T-30, T) at T = 43
    assert message(ep, TH) == "近 30 分钟退款 3 单、支付 10 单，退款率 30.0%（阈值 20%），已回落"


def test_refund_spike_clears_when_paid_orders_dilute_it() -> None:
    s = series({**{m: 1 for m in range(10)}, 20: 6}, {12: 3}, clock=31)
    [ep] = only(evaluate(s, TH), "refund_spike")
    assert (ep.since, ep.until) == (at(13), at(21))  # 3 of 16 = 18.75 %


def test_refund_spike_at_exactly_the_threshold_does_not_fire() -> None:
    s = series({10: 10}, {12: 2}, clock=40)  # every window holding the refunds holds the 10 paid orders
    assert not only(evaluate(s, TH), "refund_spike")
    assert only(evaluate(s, Thresholds(15, 19.9)), "refund_spike")


def test_pace_drop_fires_under_half_the_hour_before_and_clears_when_the_pace_returns() -> None:
    paid = {**{m: 4 for m in range(60)}, **{m: 1 for m in range(60, 90)}, **{m: 4 for m in range(90, 120)}}
    [ep] = only(evaluate(series(paid, clock=120), TH), "pace_drop")
    # first applicable at 75 (15 + 60 minutes of the channel): 15 vs 240 in the hour before;
    # at 93 the last 15 minutes hold 24 orders against 186 in the hour before: 24/15 >= 186/120
    assert (ep.since, ep.until) == (at(75), at(93))
    assert message(ep, TH).startswith("近 15 分钟支付 15 单，不到前一小时节奏的一半（前一小时 240 单")


def test_pace_drop_needs_a_base_hour() -> None:
    assert not only(evaluate(series({m: 1 for m in range(10)}, clock=70), TH), "pace_drop")
    assert not only(evaluate(series({}, clock=200), TH), "pace_drop")  # no orders at all: no pace to drop from


def test_episodes_come_newest_first() -> None:
    s = series({**{m: 1 for m in range(10)}, 30: 2}, {12: 3}, clock=60)
    sinces = [e.since for e in evaluate(s, TH)]
    assert sinces == sorted(sinces, reverse=True) and len(sinces) == 3


def step_every_minute(s: Series, th: Thresholds) -> list[tuple[str, int, float | None]]:
    """The reference: evaluate every minute boundary, no skipping."""
    first = _floor(s.first_at)
    paid, refunded = _Window(s.paid), _Window(s.refunded)
    open_: dict[str, int] = {}
    out = []
    for t in range(first + MINUTE, _floor(s.clock) + 1, MINUTE):
        for rule, figures in _conditions(t, first, paid, refunded, th).items():
            if figures is not None and rule not in open_:
                open_[rule] = t
            elif figures is None and rule in open_:
                out.append((rule, open_.pop(rule), float(t)))
    out += [(rule, since, None if s.live else s.clock) for rule, since in open_.items()]
    return sorted(out, key=lambda e: (-e[1], e[0]))


def test_skipping_to_the_boundaries_that_matter_equals_stepping_every_minute() -> None:
    rng = random.Random(7)
    for _ in range(200):
        span = rng.randint(1, 240)
        paid = {m: rng.randint(1, 5) for m in range(span) if rng.random() < rng.choice((0.1, 0.5, 0.9))}
        refunded = {m: rng.randint(1, 2) for m in range(span) if rng.random() < 0.05}
        s = series(paid, refunded, clock=span + rng.random() * 30, live=rng.random() < 0.7)
        th = Thresholds(rng.randint(1, 30), rng.choice((0.0, 10.0, 20.0, 50.0)))
        got = [(e.rule, e.since, e.until) for e in evaluate(s, th)]
        assert got == step_every_minute(s, th)[: len(got)], (paid, refunded, s.clock, th)


def test_refunds_with_no_paid_order_in_the_window_count_as_a_spike() -> None:
    [ep] = only(evaluate(series({0: 1}, {40: 1}, clock=45), TH), "refund_spike")
    assert ep.since == at(41) and ep.state == "firing"
    assert message(ep, TH) == "近 30 分钟退款 1 单、支付 0 单，期间没有支付订单（阈值 20%）"


def test_a_firing_episode_shows_the_figures_now_and_a_cleared_one_those_it_fired_with() -> None:
    firing = only(evaluate(series({m: 1 for m in range(10)}, {12: 3, 14: 2}, clock=20), TH), "refund_spike")
    assert [e.figures for e in firing] == [{"refunded": 5, "paid": 10}]  # fired at 13 with 3 refunds
    cleared = only(evaluate(series({m: 1 for m in range(10)}, {12: 3, 14: 2}, clock=50), TH), "refund_spike")
    assert [(e.figures, e.until) for e in cleared] == [({"refunded": 3, "paid": 10}, at(45))]
