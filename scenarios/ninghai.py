"""``ninghai-festival-day``: the razor-clam festival plus the smaller live rooms of 宁海 that day.

Why this scenario: one sale makes a region overview (区域概览) of one row, which says
nothing about ranking. On the festival day other 宁海县 townships sell their own goods live
as well, each on its own platform, so a bureau sees several townships ranked and a
cadre's township token still sees only its own. The festival stays the star: every room
here sells far less than it (:data:`ROOMS`; the scenario tests check the margin), and the
festival's own events are exactly ``festival.generate(seed)``, so its press figures and
every check on them hold unchanged.

The rooms are inside the festival's 09:00-15:00, so replaying the day ends when the
festival does, and their ``at`` counts from the festival's start like its events do. Each
room draws from its own random stream (the seed and its channel id), so adding a room
never changes another's events. A room carries the mess of a real feed on a smaller scale
(unpaid orders, refunds, a webhook retry, an exact redelivery), so screens that equal
:func:`scenarios.model.reference_totals` per channel mean the rules held for them too.
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import scenarios.festival as festival
from scenarios.model import ScheduledEvent, rfc3339, views_totals

NAME = "ninghai-festival-day"
DISTRICT = "宁海县"
UNPAID_SHARE = 0.06
REFUND_SHARE = 0.03
RETRIES = 2  # per room
REDELIVERIES = 1  # per room
STATS_EVERY_S = 10  # half the festival's rate: these rooms are watched less closely

# (sku, name, unit price in fen, grams per unit, relative popularity), as in the festival
Sku = tuple[str, str, int, int, int]


@dataclass(frozen=True, slots=True)
class Room:
    """One live room of the day: its registry entry, its window and its size."""

    channel_id: str
    platform: str
    title: str
    host: str
    township: str
    merchant_id: str
    id_prefix: str  # event ids: "{id_prefix}-evt-…", "{id_prefix}-stat-…"
    first_order_id: int  # platform order ids grow from here
    start_s: int  # seconds after the festival's start (09:00)
    duration_s: int
    paid_orders: int  # exactly, for every seed
    views: int  # the last views_total, exactly
    viewers: int  # online audience at full swing
    skus: tuple[Sku, ...]

    @property
    def region(self) -> dict[str, str]:
        return {"district": DISTRICT, "township": self.township}


# Winter and early-spring goods of the townships around 长街: oysters are at their best in
# February, winter bamboo shoots (冬笋) end then, tea is sold ahead of the spring picking.
ROOMS: tuple[Room, ...] = (
    Room(
        channel_id="nh-qiantong-sanbao-live-2020", platform="taobao", title="前童古镇三宝直播", host="前童老街",
        township="前童镇", merchant_id="qiantong-sanbao-coop", id_prefix="tb-qiantong",
        first_order_id=1_088_000_000_000_000_000, start_s=1800, duration_s=9000,  # 09:30-12:00
        paid_orders=110, views=45_000, viewers=900,
        skus=(("xianggan-500g", "前童香干 500g", 2980, 500, 45), ("kongxinfu-250g", "前童空心腐 250g", 2580, 250, 30),
              ("sanbao-gift", "前童三宝礼盒（豆腐·香干·空心腐）", 6880, 1500, 25)),
    ),
    Room(
        channel_id="nh-xidian-oyster-live-2020", platform="kuaishou", title="西店牡蛎直播专场", host="西店牡蛎哥",
        township="西店镇", merchant_id="xidian-oyster-coop", id_prefix="ks-xidian",
        first_order_id=2_020_022_900_000_000, start_s=3600, duration_s=10_800,  # 10:00-13:00
        paid_orders=150, views=72_000, viewers=1300,
        skus=(("oyster-2.5kg", "西店带壳牡蛎 5 斤装", 5980, 2500, 50),
              ("oyster-meat-500g", "西店牡蛎肉 500g", 4580, 500, 35),
              ("oyster-dried-250g", "西店牡蛎干 250g", 6800, 250, 15)),
    ),
    Room(
        channel_id="nh-chalu-bamboo-live-2020", platform="douyin", title="岔路冬笋山货直播", host="岔路山里人",
        township="岔路镇", merchant_id="chalu-shoot-coop", id_prefix="dy-chalu",
        first_order_id=4_877_000_000_000, start_s=7200, duration_s=9000,  # 11:00-13:30
        paid_orders=90, views=38_000, viewers=750,
        skus=(("winter-shoot-2.5kg", "岔路冬笋 5 斤装", 6980, 2500, 45),
              ("dried-shoot-500g", "宁海笋干 500g", 5880, 500, 40),
              ("shoot-gift", "岔路笋干礼盒 2×250g", 9880, 500, 15)),
    ),
    Room(
        channel_id="nh-sangzhou-tea-live-2020", platform="wechat", title="桑洲高山茶直播间", host="桑洲茶农阿芬",
        township="桑洲镇", merchant_id="sangzhou-tea-coop", id_prefix="wx-sangzhou",
        first_order_id=3_711_000_000_000_000_000, start_s=12_600, duration_s=9000,  # 12:30-15:00
        paid_orders=60, views=21_000, viewers=450,
        skus=(("tea-green-250g", "桑洲高山云雾茶 250g（明前预售）", 16800, 250, 40),
              ("tea-black-100g", "桑洲红茶 100g", 6800, 100, 45),
              ("tea-gift", "桑洲高山茶礼盒 2×125g", 22800, 400, 15)),
    ),
)  # fmt: skip


def _created_times(rnd: random.Random, room: Room, n: int) -> list[int]:
    """``n`` creation seconds (room time): busier mid-stream, none in the last two minutes
    so that every order has time to be paid before the room closes."""
    last = room.duration_s - 120
    times: list[int] = []
    while len(times) < n:
        t = rnd.uniform(0, last)
        if rnd.random() < 0.6 + 0.4 * math.sin(math.pi * t / room.duration_s):
            times.append(int(t))
    return sorted(times)


def _items(rnd: random.Random, room: Room) -> list[dict[str, Any]]:
    n_lines = 2 if rnd.random() < 0.1 else 1
    chosen: list[Sku] = []
    while len(chosen) < n_lines:
        sku = rnd.choices(room.skus, weights=[s[4] for s in room.skus])[0]
        if sku not in chosen:
            chosen.append(sku)
    return [
        {"sku": s, "name": name, "quantity": rnd.choices((1, 2, 3), weights=(75, 20, 5))[0],
         "unit_price_fen": price, "weight_g": grams}
        for s, name, price, grams, _ in chosen
    ]  # fmt: skip


def _order_event(room: Room, order_id: str, status: str, t: int, items: list[dict[str, Any]]) -> dict[str, Any]:
    at = festival.START + timedelta(seconds=room.start_s + t)
    return {
        "schema": "order.v1", "event_id": "", "occurred_at": rfc3339(at), "order_id": order_id, "status": status,
        "channel_id": room.channel_id, "platform": room.platform, "merchant_id": room.merchant_id,
        "region": room.region, "items": copy.deepcopy(items),
        "amount_fen": sum(i["quantity"] * i["unit_price_fen"] for i in items),
    }  # fmt: skip


def _stream_stats(rnd: random.Random, room: Room) -> list[ScheduledEvent]:
    """A gauge that warms up over 20 minutes and thins out over the last 15, and views
    scaled with integer maths so that the last one is the room's target."""
    gauge: list[tuple[int, int]] = []
    drift = 0.0
    for t in range(0, room.duration_s + 1, STATS_EVERY_S):
        ramp = min(1.0, t / 1200) * min(1.0, (room.duration_s - t) / 900 + 0.2)
        drift = 0.95 * drift + rnd.gauss(0, room.viewers * 0.03)
        gauge.append((t, max(0, int(30 + room.viewers * ramp + drift))))
    views = views_totals(rnd, [online for _, online in gauge], room.views)
    out = []
    for k, ((t, online), total) in enumerate(zip(gauge, views, strict=True)):
        event = {
            "schema": "stream_stats.v1", "event_id": f"{room.id_prefix}-stat-{k:06d}",
            "occurred_at": rfc3339(festival.START + timedelta(seconds=room.start_s + t)),
            "channel_id": room.channel_id, "platform": room.platform, "viewers_online": online,
            "views_total": total,
        }  # fmt: skip
        out.append(ScheduledEvent(float(room.start_s + t), "stream_stats", room.channel_id, event))
    return out


def registry_event(room: Room) -> ScheduledEvent:
    """The room's channel.v1, announced the evening before like the festival's."""
    start = festival.START + timedelta(seconds=room.start_s)
    event: dict[str, Any] = {
        "schema": "channel.v1", "event_id": f"ch-{room.channel_id}-v1",
        "occurred_at": rfc3339(festival.START - timedelta(hours=15)), "channel_id": room.channel_id,
        "platform": room.platform, "title": room.title, "host": room.host, "region": room.region,
        "scheduled_start": rfc3339(start), "scheduled_end": rfc3339(start + timedelta(seconds=room.duration_s)),
    }  # fmt: skip
    return ScheduledEvent(0.0, "channels", room.channel_id, event)


def room_events(room: Room, seed: int = 2020) -> list[ScheduledEvent]:
    """One room's orders and stream stats (not its registry entry), sorted by ``at``."""
    rnd = random.Random(f"{seed}/{room.channel_id}")  # str seeds are hashed stably (sha512)
    n_created = round(room.paid_orders / (1 - UNPAID_SHARE))
    order_id = room.first_order_id
    orders: list[tuple[str, int, list[dict[str, Any]]]] = []
    for t in _created_times(rnd, room, n_created):
        order_id += rnd.randint(1, 90_000)
        orders.append((str(order_id), t, _items(rnd, room)))

    steps = [(t, _order_event(room, o, "created", t, items)) for o, t, items in orders]
    paid: list[tuple[int, dict[str, Any]]] = []
    for i in sorted(rnd.sample(range(n_created), room.paid_orders)):
        oid, t, items = orders[i]
        t_paid = min(room.duration_s - 1, int(t + 5 + min(600.0, rnd.lognormvariate(math.log(30), 1.0))))
        paid.append((t_paid, _order_event(room, oid, "paid", t_paid, items)))
    steps += paid
    refundable = [p for p in paid if p[0] < room.duration_s - 1200]
    for t_paid, ev in rnd.sample(refundable, max(1, round(room.paid_orders * REFUND_SHARE))):
        t_ref = rnd.randint(t_paid + 300, room.duration_s - 1)
        steps.append((t_ref, _order_event(room, ev["order_id"], "refunded", t_ref, ev["items"])))

    steps.sort(key=lambda s: s[0])
    for n, (_, ev) in enumerate(steps, start=1):
        ev["event_id"] = f"{room.id_prefix}-evt-20200229-{n:06d}"
    scheduled = [ScheduledEvent(float(room.start_s + t), "orders", ev["order_id"], ev) for t, ev in steps]

    # Noise, as in the festival: a webhook retry (same step, new event_id) and a redelivery.
    for k, (t_paid, ev) in enumerate(rnd.sample(paid, RETRIES), start=len(steps) + 1):
        retry = copy.deepcopy(ev) | {"event_id": f"{room.id_prefix}-evt-20200229-{k:06d}"}
        at = float(room.start_s + min(room.duration_s, t_paid + rnd.randint(30, 300)))
        scheduled.append(ScheduledEvent(at, "orders", ev["order_id"], retry))
    for original in rnd.sample(scheduled[: len(steps)], REDELIVERIES):
        at = min(float(room.start_s + room.duration_s), original.at + rnd.randint(1, 60))
        scheduled.append(ScheduledEvent(at, "orders", original.key, copy.deepcopy(original.event)))

    scheduled += _stream_stats(rnd, room)
    scheduled.sort(key=lambda s: s.at)
    return scheduled


def generate(seed: int = 2020) -> list[ScheduledEvent]:
    """The festival day: every channel.v1 first (``at`` 0), then the festival's and the
    rooms' events merged by ``at`` (a stable sort: the festival's come first at a tie)."""
    day = festival.generate(seed) + [e for room in ROOMS for e in room_events(room, seed)]
    registry = [e for e in day if e.topic_kind == "channels"] + [registry_event(room) for room in ROOMS]
    return registry + sorted((e for e in day if e.topic_kind != "channels"), key=lambda e: e.at)
