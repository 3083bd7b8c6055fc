"""The seed scenarios: valid on the wire, deterministic, and true to the 2020 figures.

The reference count is checked on its own too (hand-made events), because pipeline
tests trust it: a reference that double-counted retries would hide the same bug in
the service.
"""

from __future__ import annotations

import itertools
import json
import statistics
from collections import Counter
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import pytest

from scenarios import SCENARIOS, ScheduledEvent, festival, generate, ninghai, onboarding, reference_totals
from schemas.events import EVENT_ADAPTER

FESTIVAL, ONBOARDING, DAY = SCENARIOS
KEY_FIELD = {"orders": "order_id", "onboarding": "firm_id", "stream_stats": "channel_id", "channels": "channel_id"}


@cache
def scenario(name: str, seed: int = 2020) -> tuple[ScheduledEvent, ...]:
    return tuple(generate(name, seed))


def within(value: float, target: float, tolerance: float = 0.02) -> bool:
    return abs(value - target) <= tolerance * target


def parsed(ev: ScheduledEvent) -> datetime:
    return datetime.fromisoformat(ev.event["occurred_at"])


def test_unknown_scenario_is_refused() -> None:
    with pytest.raises(ValueError, match="razor-clam-festival"):
        generate("no-such-scenario")


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_event_validates_and_is_well_scheduled(name: str) -> None:
    events = scenario(name)
    kinds = {"order.v1": "orders", "onboarding.v1": "onboarding", "stream_stats.v1": "stream_stats",
             "channel.v1": "channels"}  # fmt: skip
    for ev in events:
        raw = json.dumps(ev.event, ensure_ascii=False).encode()
        validated: Any = EVENT_ADAPTER.validate_json(raw)
        assert kinds[validated["schema"]] == ev.topic_kind
        assert ev.event["occurred_at"].endswith("+08:00")
        assert ev.key == ev.event[KEY_FIELD[ev.topic_kind]]
        if ev.topic_kind == "orders":
            items = ev.event["items"]
            assert ev.event["amount_fen"] == sum(i["quantity"] * i["unit_price_fen"] for i in items)
    ats = [ev.at for ev in events]
    assert ats == sorted(ats)


@pytest.mark.parametrize("name", SCENARIOS)
def test_same_seed_same_events_other_seed_other_events(name: str) -> None:
    assert list(scenario(name)) == generate(name, 2020)
    assert list(scenario(name)) != generate(name, 2021)


@pytest.mark.parametrize("name", SCENARIOS)
def test_event_ids_are_unique_except_exact_redeliveries(name: str) -> None:
    by_id: dict[str, dict[str, Any]] = {}
    redelivered = 0
    for ev in scenario(name):
        first = by_id.setdefault(ev.event["event_id"], ev.event)
        if first is not ev.event:
            assert first == ev.event, "a repeated event_id must be the same message"
            redelivered += 1
    assert 0 < redelivered <= 20


def test_festival_matches_the_reported_figures() -> None:
    events = scenario(FESTIVAL)
    totals = reference_totals(events)
    assert totals["paid_orders"] >= 400 and within(totals["paid_orders"], festival.PAID_TARGET)
    assert totals["weight_g"] >= 1_000_000 and within(totals["weight_g"], festival.WEIGHT_TARGET_G)
    views = totals["views_total"][festival.CHANNEL_ID]
    assert views >= 330_000 and within(views, festival.VIEWS_TARGET)
    assert set(totals["by_channel"]) == {festival.CHANNEL_ID}
    # Most created orders are paid, a few are refunded.
    assert 0.9 <= totals["paid_orders"] / totals["created_orders"] < 1.0
    assert 0 < totals["refunded_orders"] <= 0.05 * totals["paid_orders"]

    times = sorted(parsed(ev) for ev in events if ev.topic_kind != "channels")  # announced the day before
    assert times[0] == festival.START and times[-1] - times[0] == timedelta(hours=6)
    paid_at = sorted({parsed(ev) for ev in events if ev.event.get("status") == "paid"})
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(paid_at)]
    assert statistics.median(gaps) < 60
    assert max(ev.at for ev in events) >= 6 * 3600


def test_festival_has_bursts_and_monotonic_views() -> None:
    events = scenario(FESTIVAL)
    per_minute = Counter(parsed(ev).replace(second=0) for ev in events if ev.event.get("status") == "paid")
    average = reference_totals(events)["paid_orders"] / 360
    assert max(per_minute.values()) >= 5 * average  # the basket moments
    stats = [ev.event for ev in events if ev.topic_kind == "stream_stats"]
    views = [s["views_total"] for s in stats]
    assert views == sorted(views)
    online = [s["viewers_online"] for s in stats]
    assert max(online) > 3 * online[0] and online[-1] < max(online) / 2  # rises and falls
    seconds = [datetime.fromisoformat(s["occurred_at"]).timestamp() for s in stats]
    assert {b - a for a, b in itertools.pairwise(seconds)} == {5.0}


def test_onboarding_matches_the_reported_figures() -> None:
    events = scenario(ONBOARDING)
    totals = reference_totals(events)
    assert within(totals["firms_onboarded"]["pinduoduo"], 4295)
    assert within(totals["domestic_gmv_fen"]["pinduoduo"], onboarding.PDD_DOMESTIC_TARGET_FEN)
    others = set(totals["firms_onboarded"]) - {"pinduoduo"}
    assert others == {"taobao", "netease", "vipshop", "douyin", "kuaishou"}
    assert all(totals["firms_onboarded"][p] <= 400 for p in others)
    assert all(0 < n < totals["firms_onboarded"][p] for p, n in totals["firms_withdrawn"].items())
    assert 20_000 <= totals["paid_orders"] <= 40_000
    # Non-export firms sell too, but their sales are not domestic sales.
    assert totals["gmv_fen"] > sum(totals["domestic_gmv_fen"].values())
    assert {ev.at for ev in events} == {0.0}
    times = [parsed(ev) for ev in events]
    assert min(times) >= onboarding.START and max(times) < onboarding.END
    districts = {ev.event["district"] for ev in events if ev.topic_kind == "onboarding"}
    assert len(districts) == 10
    assert {ev.event["export_oriented"] for ev in events if ev.topic_kind == "onboarding"} == {True, False}


def test_onboarding_orders_follow_their_firm() -> None:
    events = scenario(ONBOARDING)
    firms = {ev.event["firm_id"]: ev.event for ev in events if ev.event["schema"] == "onboarding.v1"}
    joined_at: dict[str, datetime] = {}
    for ev in events:
        e = ev.event
        if e["schema"] == "onboarding.v1" and e["status"] == "onboarded":
            joined_at.setdefault(e["firm_id"], parsed(ev))
        elif e["schema"] == "order.v1":
            firm = firms[e["merchant_id"]]
            assert e["merchant_id"] in joined_at, "an order before its firm's onboarding"
            assert parsed(ev) > joined_at[e["merchant_id"]]
            assert (e["platform"], e["region"]["district"]) == (firm["platform"], firm["district"])
            assert e["channel_id"] == f"store-{e['merchant_id']}"


@pytest.mark.parametrize("name", SCENARIOS)
def test_retries_are_present_and_not_counted_twice(name: str) -> None:
    events = scenario(name)
    steps: dict[tuple[str, ...], set[str]] = {}
    for ev in events:
        e = ev.event
        if e["schema"] == "order.v1":
            steps.setdefault((e["platform"], e["order_id"], e["status"]), set()).add(e["event_id"])
    retried = [step for step, ids in steps.items() if len(ids) > 1]
    assert retried, "the scenario should carry webhook retries"
    totals = reference_totals(events)
    counted = totals["paid_orders"] + totals["created_orders"] + totals["refunded_orders"]
    assert counted == len(steps)
    naive = len({ev.event["event_id"] for ev in events if ev.topic_kind == "orders"})
    assert naive == counted + sum(len(ids) - 1 for ids in steps.values()) > counted


def test_reference_totals_applies_each_rule() -> None:
    item = {"sku": "s", "name": "蛏子", "quantity": 2, "unit_price_fen": 100, "weight_g": 500}
    base = {"schema": "order.v1", "occurred_at": "2020-02-29T10:00:00+08:00", "order_id": "o1",
            "channel_id": "c", "platform": "douyin", "merchant_id": "f1", "region": {"district": "宁海县"},
            "items": [item], "amount_fen": 200}  # fmt: skip
    firm = {"schema": "onboarding.v1", "occurred_at": "2020-02-01T10:00:00+08:00", "firm_id": "f1",
            "firm_name": "宁波某某电器有限公司", "platform": "douyin", "district": "宁海县",
            "export_oriented": True, "status": "onboarded"}  # fmt: skip
    events: list[dict[str, Any]] = [
        base | {"event_id": "1", "status": "paid"},
        base | {"event_id": "1", "status": "paid"},  # redelivery
        base | {"event_id": "2", "status": "paid"},  # webhook retry
        base | {"event_id": "3", "status": "refunded", "amount_fen": 50},
        base | {"event_id": "4", "status": "paid", "order_id": "o2", "platform": "kuaishou"},
        firm | {"event_id": "5"},
        firm | {"event_id": "6"},  # retry
        firm | {"event_id": "7", "status": "withdrawn"},
        {"schema": "stream_stats.v1", "event_id": "8", "occurred_at": "2020-02-29T10:00:00+08:00",
         "channel_id": "c", "platform": "douyin", "viewers_online": 9, "views_total": 70},
        {"schema": "stream_stats.v1", "event_id": "9", "occurred_at": "2020-02-29T10:00:05+08:00",
         "channel_id": "c", "platform": "douyin", "viewers_online": 3, "views_total": 90},
    ]  # fmt: skip
    totals = reference_totals(events)
    assert (totals["events_in"], totals["events_unique"]) == (10, 9)
    assert (totals["paid_orders"], totals["gmv_fen"]) == (2, 400)
    assert (totals["units"], totals["weight_g"]) == (4, 2000)
    assert (totals["refunded_orders"], totals["refund_fen"]) == (1, 50)
    assert totals["firms_onboarded"] == {"douyin": 1} and totals["firms_withdrawn"] == {"douyin": 1}
    # Only the douyin order is the onboarded firm's; the kuaishou one has another platform.
    assert totals["domestic_gmv_fen"] == {"douyin": 200} and totals["domestic_paid_orders"] == {"douyin": 1}
    assert totals["views_total"] == {"c": 90} and totals["viewers_peak"] == {"c": 9}


def test_festival_publishes_its_channels_first() -> None:
    events = scenario(FESTIVAL)
    registry = [ev for ev in events if ev.topic_kind == "channels"]
    assert registry == list(events[: len(registry)]) and all(ev.at == 0 for ev in registry)
    by_id = {ev.event["channel_id"]: ev.event for ev in registry}
    assert set(by_id) == {festival.CHANNEL_ID, festival.SECOND_CHANNEL_ID}
    fest = by_id[festival.CHANNEL_ID]
    assert (fest["title"], fest["host"], fest["platform"]) == ("宁海长街蛏子网络节", "直播宁海", "douyin")
    assert fest["region"] == {"district": "宁海县", "township": "长街镇"}
    orders = [parsed(ev) for ev in events if ev.topic_kind == "orders"]
    start, end = datetime.fromisoformat(fest["scheduled_start"]), datetime.fromisoformat(fest["scheduled_end"])
    assert end - start == timedelta(hours=6) and start <= min(orders) and max(orders) < end
    assert festival.SECOND_CHANNEL_ID not in reference_totals(events)["by_channel"]  # announced, never sold


def test_the_festival_day_is_the_festival_unchanged_plus_the_rooms() -> None:
    """What the demo replays: the festival's own events exactly (its figures and every check
    above hold), the rooms' beside them, every channel announced before any sale."""
    day = scenario(DAY)
    rooms = {room.channel_id for room in ninghai.ROOMS}
    assert [ev for ev in day if ev.event["channel_id"] not in rooms] == list(scenario(FESTIVAL))  # in order
    registry = [ev for ev in day if ev.topic_kind == "channels"]
    assert registry == list(day[: len(registry)]) and all(ev.at == 0 for ev in registry)
    assert {ev.key for ev in registry} == rooms | {festival.CHANNEL_ID, festival.SECOND_CHANNEL_ID}
    assert max(ev.at for ev in day) == festival.DURATION_S  # the replay ends with the festival
    for room in ninghai.ROOMS:  # a room's events are its own, whatever the other rooms are
        assert [ev for ev in day if ev.event["channel_id"] == room.channel_id and ev.topic_kind != "channels"] == (
            ninghai.room_events(room)
        )


def test_the_rooms_are_other_ninghai_townships_on_several_platforms_and_smaller() -> None:
    day = scenario(DAY)
    totals = reference_totals(day)
    townships = [room.township for room in ninghai.ROOMS]
    assert 3 <= len(townships) == len(set(townships)) and festival.REGION["township"] not in townships
    assert {room.platform for room in ninghai.ROOMS} >= {"douyin", "kuaishou", "wechat"}
    festival_gmv = totals["by_channel"][festival.CHANNEL_ID]["gmv_fen"]
    end = festival.START + timedelta(seconds=festival.DURATION_S)
    for room in ninghai.ROOMS:
        got = totals["by_channel"][room.channel_id]
        assert got["paid_orders"] == room.paid_orders and totals["views_total"][room.channel_id] == room.views
        assert got["paid_orders"] < got["created_orders"] and got["refunded_orders"] > 0
        assert 2 * got["gmv_fen"] < festival_gmv and 2 * room.views < festival.VIEWS_TARGET  # the festival stays first
        (reg,) = [ev.event for ev in day if ev.topic_kind == "channels" and ev.key == room.channel_id]
        assert reg["region"] == {"district": "宁海县", "township": room.township} and reg["platform"] == room.platform
        start, stop = datetime.fromisoformat(reg["scheduled_start"]), datetime.fromisoformat(reg["scheduled_end"])
        assert festival.START <= start < stop <= end
        own = [ev.event for ev in day if ev.key == room.channel_id or ev.event.get("channel_id") == room.channel_id]
        for e in own:
            assert e["platform"] == room.platform
            if e["schema"] == "order.v1":
                assert e["region"] == reg["region"] and e["merchant_id"] == room.merchant_id
                assert start <= datetime.fromisoformat(e["occurred_at"]) < stop
        ids = [e["event_id"] for e in own if e["schema"] == "order.v1"]
        assert len(ids) > len(set(ids))  # a redelivery
        steps = {(e["order_id"], e["status"]) for e in own if e["schema"] == "order.v1"}
        assert len(set(ids)) > len(steps)  # a webhook retry
    # the other seed changes every room, not only the festival
    other = reference_totals(generate(DAY, 2021))["by_channel"]
    assert all(other[r.channel_id]["gmv_fen"] != totals["by_channel"][r.channel_id]["gmv_fen"] for r in ninghai.ROOMS)
