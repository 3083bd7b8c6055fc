"""``razor-clam-festival``: the 2020 宁海长街蛏子网络节 live stream on Douyin, as events.

Why this scenario: it is the event the project exists to track. On 2020-02-29, with
markets shut by the epidemic, Changjie township (长街镇, 宁海县) sold its razor clams
through the Douyin channel "直播宁海". Press reports of the day give the figures the
scenario reproduces: a 6-hour stream (09:00-15:00), 400+ orders, 1,000+ kg of clams,
330,000+ views. Orders come at less than a minute apart on average, with bursts when
the township party secretary holds a basket up to the camera.

It also carries the mess a real feed has, so that the demo and the pipeline tests
exercise contract §3: orders created but never paid, refunds, webhook retries (same
``(platform, order_id, status)`` under a new ``event_id``) and exact redeliveries.
Targets are hit by construction (counts chosen exactly, weight calibrated), so every
seed gives the press figures while the details differ.
"""

from __future__ import annotations

import copy
import math
import random
from datetime import datetime, timedelta
from typing import Any

from scenarios.model import CST, ScheduledEvent, rfc3339, views_totals

NAME = "razor-clam-festival"
START = datetime(2020, 2, 29, 9, 0, tzinfo=CST)
DURATION_S = 6 * 3600
CHANNEL_ID = "nh-changjie-clam-festival-2020"
CHANNEL_TITLE = "直播宁海"
# The channel registry (channel.v1): what people call the sale and the account hosting it.
SALE_TITLE = "宁海长街蛏子网络节"
HOST = CHANNEL_TITLE
# A second, registry-only channel (announced, never sold in this scenario): the list and
# the region overview must show a channel that has a schedule but no orders.
SECOND_CHANNEL_ID = "xs-shipu-seafood-2020"
SECOND_REGISTRY: dict[str, Any] = {
    "channel_id": SECOND_CHANNEL_ID, "platform": "kuaishou", "title": "象山石浦渔港海鲜直播",
    "host": "石浦渔港", "region": {"district": "象山县", "township": "石浦镇"},
}  # fmt: skip
PLATFORM = "douyin"
MERCHANT_ID = "changjie-clam-coop"
REGION = {"district": "宁海县", "township": "长街镇"}

PAID_TARGET = 430
WEIGHT_TARGET_G = 1_050_000
VIEWS_TARGET = 335_000
UNPAID_SHARE = 0.05
REFUND_SHARE = 0.03
RETRY_SHARE = 0.02
REDELIVERIES = 5
STATS_EVERY_S = 5
BASKET_MOMENTS = 6  # the secretary holding up a basket: order bursts and viewer spikes
BURST_ORDERS = 18  # orders per basket moment, on average

# (sku, name, unit price in fen, grams per unit, relative popularity)
SKUS: tuple[tuple[str, str, int, int, int], ...] = (
    ("clam-2.5kg", "长街蛏子 2.5kg 装", 6800, 2500, 45),
    ("clam-5kg", "长街蛏子 5kg 装", 12800, 5000, 6),
    ("clam-1kg", "长街蛏子 1kg 尝鲜装", 2980, 1000, 32),
    ("dried-clam-500g", "长街蛏子干 500g", 8800, 500, 17),
)
_SKU_WEIGHTS = [s[4] for s in SKUS]
_LIGHT_PACK = SKUS[2]


def _order_rate(t: float) -> float:
    """Relative order intensity over the day: warm-up, lunch dip, late push, wind-down."""
    shape = 0.55 + 0.45 * math.sin(math.pi * t / DURATION_S)
    if 3 * 3600 <= t < 4 * 3600:  # 12:00-13:00, people eat
        shape *= 0.6
    return shape


def _created_times(rnd: random.Random, n: int, bursts: list[float]) -> list[int]:
    """``n`` order-creation seconds: Poisson-like background plus clusters at ``bursts``."""
    last = DURATION_S - 120  # leave time to pay before the stream ends
    times: list[int] = []
    n_burst = min(n // 3, round(BURST_ORDERS * len(bursts)))
    for _ in range(n_burst):
        centre = rnd.choice(bursts)
        times.append(min(last, int(centre + rnd.expovariate(1 / 45))))
    while len(times) < n:
        t = rnd.uniform(0, last)
        if rnd.random() < _order_rate(t):
            times.append(int(t))
    return sorted(times)


def _items(rnd: random.Random) -> list[dict[str, Any]]:
    n_lines = 2 if rnd.random() < 0.1 else 1
    chosen: list[tuple[str, str, int, int, int]] = []
    while len(chosen) < n_lines:
        sku = rnd.choices(SKUS, weights=_SKU_WEIGHTS)[0]
        if sku not in chosen:
            chosen.append(sku)
    return [
        {"sku": s, "name": name, "quantity": rnd.choices((1, 2, 3), weights=(78, 17, 5))[0],
         "unit_price_fen": price, "weight_g": grams}
        for s, name, price, grams, _ in chosen
    ]  # fmt: skip


def _calibrate_weight(rnd: random.Random, paid_items: list[list[dict[str, Any]]]) -> None:
    """Nudge paid orders until their weight is within 0.3 % of the target.

    A nudge changes a quantity by one (kept within 1-3) or, when an order is already
    down to one unit, swaps its single line for the 1 kg pack. The tolerance band
    (6.3 kg) is wider than any nudge (at most 5 kg), so a nudge never jumps over the
    band and the loop ends.
    """
    lo, hi = WEIGHT_TARGET_G * 0.997, WEIGHT_TARGET_G * 1.003
    total = sum(i["quantity"] * i["weight_g"] for items in paid_items for i in items)
    sku, name, price, grams, _ = _LIGHT_PACK
    for _ in range(100_000):
        if lo <= total <= hi:
            return
        items = rnd.choice(paid_items)
        item = rnd.choice(items)
        if total < lo and item["quantity"] < 3:
            item["quantity"] += 1
            total += item["weight_g"]
        elif total > hi and item["quantity"] > 1:
            item["quantity"] -= 1
            total -= item["weight_g"]
        elif total > hi and len(items) == 1 and item["weight_g"] > grams:
            total -= item["weight_g"] - grams
            item.update(sku=sku, name=name, unit_price_fen=price, weight_g=grams)
    raise RuntimeError("could not calibrate the festival's weight")  # pragma: no cover


def _viewers(rnd: random.Random, bursts: list[float]) -> list[tuple[int, int]]:
    """(second, viewers_online) every STATS_EVERY_S: a rising and falling gauge."""
    out: list[tuple[int, int]] = []
    drift = 0.0
    for t in range(0, DURATION_S + 1, STATS_EVERY_S):
        ramp = min(1.0, t / 5400) * min(1.0, (DURATION_S - t) / 1800 + 0.15)
        base = 150 + 2600 * ramp * (0.8 if 3 * 3600 <= t < 4 * 3600 else 1.0)
        spikes = sum(1400 * math.exp(-(((t - b) / 240) ** 2)) for b in bursts)
        drift = 0.97 * drift + rnd.gauss(0, 40)
        out.append((t, max(0, int(base + spikes + drift))))
    return out


def _stream_stats(rnd: random.Random, bursts: list[float]) -> list[ScheduledEvent]:
    """Views grow with the audience; scaled with integer maths so the last is the target."""
    gauge = _viewers(rnd, bursts)
    views = views_totals(rnd, [online for _, online in gauge], VIEWS_TARGET)
    out = []
    for k, ((t, online), total) in enumerate(zip(gauge, views, strict=True)):
        event = {
            "schema": "stream_stats.v1", "event_id": f"dy-live-stat-{k:06d}",
            "occurred_at": rfc3339(START + timedelta(seconds=t)), "channel_id": CHANNEL_ID,
            "platform": PLATFORM, "viewers_online": online, "views_total": total,
        }  # fmt: skip
        out.append(ScheduledEvent(float(t), "stream_stats", CHANNEL_ID, event))
    return out


def _order_event(order_id: str, status: str, t: int, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schema": "order.v1", "event_id": "", "occurred_at": rfc3339(START + timedelta(seconds=t)),
        "order_id": order_id, "status": status, "channel_id": CHANNEL_ID, "platform": PLATFORM,
        "merchant_id": MERCHANT_ID, "region": dict(REGION), "items": copy.deepcopy(items),
        "amount_fen": sum(i["quantity"] * i["unit_price_fen"] for i in items),
    }  # fmt: skip


def registry() -> list[ScheduledEvent]:
    """The channel.v1 events, sent first (``at`` 0): announced the evening before."""
    announced = rfc3339(START - timedelta(hours=15))
    festival: dict[str, Any] = {
        "schema": "channel.v1", "event_id": "ch-nh-changjie-2020-v1", "occurred_at": announced,
        "channel_id": CHANNEL_ID, "platform": PLATFORM, "title": SALE_TITLE, "host": HOST, "region": dict(REGION),
        "scheduled_start": rfc3339(START), "scheduled_end": rfc3339(START + timedelta(seconds=DURATION_S)),
    }  # fmt: skip
    second: dict[str, Any] = {
        "schema": "channel.v1", "event_id": "ch-xs-shipu-2020-v1", "occurred_at": announced, **SECOND_REGISTRY,
        "scheduled_start": rfc3339(START + timedelta(hours=10)), "scheduled_end": rfc3339(START + timedelta(hours=12)),
    }  # fmt: skip
    return [ScheduledEvent(0.0, "channels", ev["channel_id"], ev) for ev in (festival, second)]


def generate(seed: int = 2020) -> list[ScheduledEvent]:
    """The festival's events sorted by ``at`` (= seconds after 09:00 of ``occurred_at``;
    the registry events, announced the evening before, at 0)."""
    rnd = random.Random(seed)
    n_created = round(PAID_TARGET / (1 - UNPAID_SHARE))
    bursts = sorted(rnd.uniform(1200, DURATION_S - 1200) for _ in range(BASKET_MOMENTS))
    created_at = _created_times(rnd, n_created, bursts)

    order_id = rnd.randrange(4_875_000_000_000, 4_876_000_000_000)
    orders: list[tuple[str, int, list[dict[str, Any]]]] = []
    for t in created_at:
        order_id += rnd.randint(1, 40_000)
        orders.append((str(order_id), t, _items(rnd)))
    paid_idx = sorted(rnd.sample(range(n_created), PAID_TARGET))
    _calibrate_weight(rnd, [orders[i][2] for i in paid_idx])

    steps: list[tuple[int, dict[str, Any]]] = [(t, _order_event(o, "created", t, it)) for o, t, it in orders]
    paid: list[tuple[int, dict[str, Any]]] = []
    for i in paid_idx:
        oid, t, items = orders[i]
        delay = 5 + min(900.0, rnd.lognormvariate(math.log(40), 1.0))
        t_paid = min(DURATION_S - 1, int(t + delay))
        paid.append((t_paid, _order_event(oid, "paid", t_paid, items)))
    steps += paid
    refundable = [p for p in paid if p[0] < DURATION_S - 1800]
    for t_paid, ev in rnd.sample(refundable, round(PAID_TARGET * REFUND_SHARE)):
        t_ref = rnd.randint(t_paid + 600, DURATION_S - 1)
        steps.append((t_ref, _order_event(ev["order_id"], "refunded", t_ref, ev["items"])))

    steps.sort(key=lambda s: s[0])
    for n, (_, ev) in enumerate(steps, start=1):
        ev["event_id"] = f"dy-evt-20200229-{n:06d}"
    scheduled = [ScheduledEvent(float(t), "orders", ev["order_id"], ev) for t, ev in steps]

    # Noise the service must absorb: webhook retries (new event_id, same step and time),
    # sent a little later, and exact redeliveries of the same message.
    next_id = len(steps) + 1
    for t_paid, ev in rnd.sample(paid, round(PAID_TARGET * RETRY_SHARE)):
        retry = copy.deepcopy(ev) | {"event_id": f"dy-evt-20200229-{next_id:06d}"}
        next_id += 1
        resent_at = float(t_paid + rnd.randint(30, 300))
        scheduled.append(ScheduledEvent(resent_at, "orders", ev["order_id"], retry))
    for original in rnd.sample(scheduled[: len(steps)], REDELIVERIES):
        again = copy.deepcopy(original.event)
        scheduled.append(ScheduledEvent(original.at + rnd.randint(1, 60), "orders", original.key, again))

    scheduled += _stream_stats(rnd, bursts)
    scheduled.sort(key=lambda s: s.at)
    return registry() + scheduled
