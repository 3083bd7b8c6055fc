"""A generated event stream with the mess of real delivery, and its reference counts.

The reference applies contract §3 in the plainest way possible (dicts and sets), so the
pipeline's numbers can be checked against an independent implementation.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from processors.store import ClickHouse

BASE = datetime(2020, 2, 29, 2, 0, tzinfo=UTC)  # 10:00 in Ningbo
CHANNELS = [
    ("nh-changjie", "douyin", "宁海县", "长街镇"),
    ("xs-shipu", "kuaishou", "象山县", "石浦镇"),
    ("bl-store", "pinduoduo", "北仑区", None),
]
SKUS = [("clam-2.5kg", "长街蛏子 2.5kg 装", 6800, 2500), ("clam-5kg", "长街蛏子 5kg 装", 12800, 5000)]


def _iso(t: datetime, tz_hours: int = 8) -> str:
    return t.astimezone(UTC).astimezone(timezone_of(tz_hours)).isoformat()


def timezone_of(hours: int) -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=hours))


def order_event(
    eid: str, order_id: str, status: str, at: datetime, channel: tuple[str, str, str, str | None], items: list[Any]
) -> dict[str, Any]:
    cid, platform, district, township = channel
    region = {"district": district} | ({"township": township} if township else {})
    return {
        "schema": "order.v1", "event_id": eid, "occurred_at": _iso(at), "order_id": order_id,
        "status": status, "channel_id": cid, "platform": platform, "merchant_id": f"m-{cid}",
        "region": region, "items": items,
        "amount_fen": sum(i["quantity"] * i["unit_price_fen"] for i in items),
    }  # fmt: skip


def generate(n_orders: int = 300, seed: int = 7) -> list[dict[str, Any]]:
    """Orders with created/paid/refunded steps, stream stats, and delivery noise:
    exact redeliveries, webhook retries under new event ids, late and shuffled events."""
    rnd = random.Random(seed)
    events: list[dict[str, Any]] = []
    for n in range(n_orders):
        ch = CHANNELS[n % len(CHANNELS)]
        at = BASE + timedelta(seconds=rnd.randrange(0, 3 * 3600))
        sku, name, price, grams = rnd.choice(SKUS)
        items = [{"sku": sku, "name": name, "quantity": rnd.randint(1, 3), "unit_price_fen": price, "weight_g": grams}]
        oid = f"o{n}"
        events.append(order_event(f"{oid}-c", oid, "created", at, ch, items))
        if rnd.random() < 0.9:
            events.append(order_event(f"{oid}-p", oid, "paid", at + timedelta(seconds=rnd.randint(5, 300)), ch, items))
            if rnd.random() < 0.1:
                events.append(order_event(f"{oid}-r", oid, "refunded", at + timedelta(hours=1), ch, items))
    for cid, platform, _, _ in CHANNELS:
        views = 0
        for k in range(0, 3 * 3600, 20):
            views += rnd.randint(0, 50)
            events.append({
                "schema": "stream_stats.v1", "event_id": f"s-{cid}-{k}",
                "occurred_at": _iso(BASE + timedelta(seconds=k)), "channel_id": cid, "platform": platform,
                "viewers_online": rnd.randint(0, 3000), "views_total": views,
            })  # fmt: skip
    rnd.shuffle(events)  # out of order
    noise: list[dict[str, Any]] = []
    for ev in rnd.sample(events, len(events) // 10):
        noise.append(ev)  # exact redelivery
    for ev in rnd.sample([e for e in events if e["schema"] == "order.v1"], n_orders // 10):
        noise.append(ev | {"event_id": ev["event_id"] + "-retry"})  # webhook retry, same step
    late = [e for e in events if e["occurred_at"] < _iso(BASE + timedelta(minutes=20))]
    return events + noise + late[: len(late) // 3]  # late arrivals, again


def encode(ev: dict[str, Any]) -> bytes:
    return json.dumps(ev, ensure_ascii=False).encode()


def minute_of(iso: str) -> datetime:
    t = datetime.fromisoformat(iso).astimezone(UTC)
    return t.replace(second=0, microsecond=0)


def reference(events: list[dict[str, Any]]) -> dict[tuple[str, datetime], dict[str, int]]:
    """Per (channel_id, UTC minute): the counts of contract §3, first delivery wins."""
    seen_events: set[str] = set()
    seen_steps: set[tuple[str, str, str]] = set()
    out: dict[tuple[str, datetime], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for ev in events:
        if ev["event_id"] in seen_events:
            continue
        seen_events.add(ev["event_id"])
        key = (ev["channel_id"], minute_of(ev["occurred_at"]))
        if ev["schema"] == "stream_stats.v1":
            cell = out[key]
            cell["views_total"] = max(cell.get("views_total", 0), ev["views_total"])
            cell["viewers_peak"] = max(cell.get("viewers_peak", 0), ev["viewers_online"])
            continue
        step = step_of(ev)
        if step in seen_steps:
            continue
        seen_steps.add(step)
        cell = out[key]
        if ev["status"] == "paid":
            cell["paid_orders"] += 1
            cell["gmv_fen"] += ev["amount_fen"]
            cell["units"] += sum(i["quantity"] for i in ev["items"])
            cell["weight_g"] += sum(i["quantity"] * i.get("weight_g", 0) for i in ev["items"])
        elif ev["status"] == "created":
            cell["created_orders"] += 1
        else:
            cell["refunded_orders"] += 1
            cell["refund_fen"] += ev["amount_fen"]
    return {k: dict(v) for k, v in out.items()}


MINUTE_SQL = """
SELECT channel_id, minute, sum(paid) AS paid_orders, sum(gmv) AS gmv_fen, sum(u) AS units,
       sum(w) AS weight_g, sum(created) AS created_orders, sum(refunded) AS refunded_orders,
       sum(refund) AS refund_fen, max(views) AS views_total, max(viewers) AS viewers_peak
FROM (
    SELECT channel_id, minute, status = 'paid' AS paid, if(status = 'paid', amount_fen, 0) AS gmv,
           if(status = 'paid', units, 0) AS u, if(status = 'paid', weight_g, 0) AS w,
           status = 'created' AS created, status = 'refunded' AS refunded,
           if(status = 'refunded', amount_fen, 0) AS refund, 0 AS views, 0 AS viewers
    FROM order_steps
    UNION ALL
    SELECT channel_id, minute, 0, 0, 0, 0, 0, 0, 0, views_total, viewers_online FROM stream_stats
)
GROUP BY channel_id, minute
"""


async def stored_minutes(ch: ClickHouse) -> dict[tuple[str, datetime], dict[str, int]]:
    out = {}
    for row in await ch.query(MINUTE_SQL):
        minute = row["minute"]
        minute = minute.replace(tzinfo=UTC) if minute.tzinfo is None else minute.astimezone(UTC)
        cells = {k: int(v) for k, v in row.items() if k not in ("channel_id", "minute") and v}
        out[(row["channel_id"], minute)] = cells
    return out


async def stored_counts(ch: ClickHouse) -> tuple[int, int]:
    rows = await ch.query("SELECT (SELECT count() FROM order_steps) AS o, (SELECT count() FROM stream_stats) AS s")
    return int(rows[0]["o"]), int(rows[0]["s"])


def step_of(ev: dict[str, Any]) -> tuple[str, ...]:
    """Contract §3: once per (platform, order_id, status); v1.2: a refund once per refund_id."""
    step = (ev["platform"], ev["order_id"], ev["status"])
    return (*step, ev["refund_id"]) if ev["status"] == "refunded" and "refund_id" in ev else step


def distinct_counts(events: list[dict[str, Any]]) -> tuple[int, int]:
    steps = {step_of(e) for e in events if e["schema"] == "order.v1"}
    stats = {e["event_id"] for e in events if e["schema"] == "stream_stats.v1"}
    return len(steps), len(stats)
