"""What a scenario is made of, and the plain reference count of it (contract §3).

A scenario is a list of :class:`ScheduledEvent`: the event itself plus *when* to send
it (``at``, seconds after the scenario starts) and *where* (topic kind and key). Keeping
the send time apart from ``occurred_at`` is what lets one scenario serve as paced "live"
traffic (``scenarios.replay`` with a speed) and as history loaded at once (``at`` = 0).

:func:`reference_totals` counts a scenario the way the contract says the service must,
using nothing but dicts and sets. Pipeline tests compare the service's numbers against
it, so it deliberately shares no code with the service and favours being obviously
right over being fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from random import Random
from typing import Any, TypedDict

TOPIC_KINDS = ("orders", "onboarding", "stream_stats", "channels")
# Ningbo local time: the press figures and the people watching the dashboard use it.
CST = timezone(timedelta(hours=8))


@dataclass(frozen=True, slots=True)
class ScheduledEvent:
    """One event to put on Kafka ``at`` scenario-seconds after the start."""

    at: float
    topic_kind: str
    key: str
    event: dict[str, Any]


def views_totals(rnd: Random, online: list[int], target: int) -> list[int]:
    """A stream's ``views_total`` at each gauge: views grow with the audience, scaled with
    integer maths so the last one is exactly ``target`` (the press figure)."""
    cumulative: list[int] = []
    running = 0
    for i, n in enumerate(online):
        running += 0 if i == 0 else int(n * rnd.uniform(0.5, 1.5)) + 1
        cumulative.append(running)
    return [raw * target // running for raw in cumulative]


def rfc3339(t: datetime) -> str:
    """``2020-02-29T10:03:41+08:00``: whole seconds, Ningbo offset, as producers send it."""
    return t.astimezone(CST).replace(microsecond=0).isoformat()


class ChannelTotals(TypedDict):
    created_orders: int
    paid_orders: int
    refunded_orders: int
    gmv_fen: int
    refund_fen: int
    units: int
    weight_g: int


class Totals(ChannelTotals):
    """Whole-scenario counts (the channel counts summed, and more); dicts are keyed by
    channel_id or platform."""

    events_in: int
    events_unique: int
    by_channel: dict[str, ChannelTotals]
    views_total: dict[str, int]
    viewers_peak: dict[str, int]
    firms_onboarded: dict[str, int]
    firms_withdrawn: dict[str, int]
    domestic_gmv_fen: dict[str, int]
    domestic_paid_orders: dict[str, int]
    domestic_firms_with_sales: dict[str, int]


def _empty_channel() -> ChannelTotals:
    return ChannelTotals(
        created_orders=0, paid_orders=0, refunded_orders=0, gmv_fen=0, refund_fen=0, units=0, weight_g=0
    )


def reference_totals(events: Iterable[ScheduledEvent | Mapping[str, Any]]) -> Totals:
    """Count ``events`` by contract §3.

    Steps, in order: drop a repeated ``event_id``; count an order step once per
    ``(platform, order_id, status)`` and an onboarding step once per
    ``(platform, firm_id, status)``, whatever ``event_id`` it came under; views are the
    largest ``views_total`` a channel reported. Domestic sales are paid orders whose
    ``(platform, merchant_id)`` has an ``onboarded`` event with ``export_oriented`` true
    (the scenarios give withdrawn firms no orders, so whether a withdrawal should undo
    that does not change any number here).
    """
    plain = [e.event if isinstance(e, ScheduledEvent) else e for e in events]

    seen_ids: set[str] = set()
    unique: list[Mapping[str, Any]] = []
    for ev in plain:
        if ev["event_id"] not in seen_ids:
            seen_ids.add(ev["event_id"])
            unique.append(ev)

    # Pass 1: onboarding, because an order may arrive before its firm's onboarding.
    onboarding_steps: set[tuple[str, str, str]] = set()
    firms_onboarded: dict[str, int] = {}
    firms_withdrawn: dict[str, int] = {}
    export_firms: set[tuple[str, str]] = set()
    for ev in unique:
        if ev["schema"] != "onboarding.v1":
            continue
        step = (ev["platform"], ev["firm_id"], ev["status"])
        if step in onboarding_steps:
            continue
        onboarding_steps.add(step)
        counter = firms_onboarded if ev["status"] == "onboarded" else firms_withdrawn
        counter[ev["platform"]] = counter.get(ev["platform"], 0) + 1
        if ev["status"] == "onboarded" and ev["export_oriented"]:
            export_firms.add((ev["platform"], ev["firm_id"]))

    # Pass 2: orders and stream stats.
    order_steps: set[tuple[str, str, str]] = set()
    by_channel: dict[str, ChannelTotals] = {}
    views_total: dict[str, int] = {}
    viewers_peak: dict[str, int] = {}
    domestic_gmv: dict[str, int] = {}
    domestic_orders: dict[str, int] = {}
    domestic_firms: dict[str, set[str]] = {}
    for ev in unique:
        if ev["schema"] == "stream_stats.v1":
            cid = ev["channel_id"]
            views_total[cid] = max(views_total.get(cid, 0), ev["views_total"])
            viewers_peak[cid] = max(viewers_peak.get(cid, 0), ev["viewers_online"])
            continue
        if ev["schema"] != "order.v1":
            continue
        step = (ev["platform"], ev["order_id"], ev["status"])
        if step in order_steps:
            continue
        order_steps.add(step)
        ch = by_channel.setdefault(ev["channel_id"], _empty_channel())
        if ev["status"] == "created":
            ch["created_orders"] += 1
        elif ev["status"] == "refunded":
            ch["refunded_orders"] += 1
            ch["refund_fen"] += ev["amount_fen"]
        else:
            ch["paid_orders"] += 1
            ch["gmv_fen"] += ev["amount_fen"]
            for item in ev["items"]:
                ch["units"] += item["quantity"]
                ch["weight_g"] += item["quantity"] * item.get("weight_g", 0)
            platform, merchant = ev["platform"], ev["merchant_id"]
            if (platform, merchant) in export_firms:
                domestic_gmv[platform] = domestic_gmv.get(platform, 0) + ev["amount_fen"]
                domestic_orders[platform] = domestic_orders.get(platform, 0) + 1
                domestic_firms.setdefault(platform, set()).add(merchant)

    channels = list(by_channel.values())
    return Totals(
        events_in=len(plain),
        events_unique=len(unique),
        created_orders=sum(c["created_orders"] for c in channels),
        paid_orders=sum(c["paid_orders"] for c in channels),
        refunded_orders=sum(c["refunded_orders"] for c in channels),
        gmv_fen=sum(c["gmv_fen"] for c in channels),
        refund_fen=sum(c["refund_fen"] for c in channels),
        units=sum(c["units"] for c in channels),
        weight_g=sum(c["weight_g"] for c in channels),
        by_channel=by_channel,
        views_total=views_total,
        viewers_peak=viewers_peak,
        firms_onboarded=firms_onboarded,
        firms_withdrawn=firms_withdrawn,
        domestic_gmv_fen=domestic_gmv,
        domestic_paid_orders=domestic_orders,
        domestic_firms_with_sales={p: len(f) for p, f in domestic_firms.items()},
    )
