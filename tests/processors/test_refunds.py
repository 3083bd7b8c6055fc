"""Partial refunds (contract v1.2 §3): a refunded step that names its refund counts once
per ``refund_id``; without one, once per order as before. Real chDB."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from xxhash import xxh3_64_intdigest

from processors.batch import check_values, prepare
from processors.keys import SEP
from processors.rows import ORDERS
from processors.store import ClickHouse
from processors.writer import Writer
from schemas.fast_events import FastChecker
from tests.api.conftest import Rec, order, store_events

C25 = ("clam-2.5kg", "长街蛏子 2.5kg 装", 1, 6800, 2500)
AT = "2026-05-01T10:00:00+08:00"


def refund(eid: str, oid: str, refund_id: str | None, fen: int = 6800) -> dict[str, Any]:
    event = order(eid, oid, "refunded", AT, "nh-r", [C25])
    event["amount_fen"] = fen
    if refund_id is not None:
        event["refund_id"] = refund_id
    return event


def test_both_validation_paths_key_a_refund_alike() -> None:
    event = refund("e1", "o1", "rf-1")
    fast = FastChecker().decode(json.dumps(event).encode())
    assert fast is not None and fast.step() == ("douyin", "o1", "refunded", "rf-1")
    assert ORDERS.step_of(event) == fast.step()
    paid = order("e2", "o1", "paid", AT, "nh-r", [C25]) | {"refund_id": "rf-1"}  # ignored: not a refund
    assert ORDERS.step_of(paid) == ("douyin", "o1", "paid")
    assert ORDERS.step_of(refund("e3", "o1", None)) == ("douyin", "o1", "refunded")


def test_a_null_or_empty_refund_id_is_a_violation() -> None:
    now = datetime(2026, 5, 1, 3, tzinfo=UTC)
    for bad in (None, ""):
        value = json.dumps(refund("e1", "o1", "x") | {"refund_id": bad}).encode()
        checked = check_values([value], now)
        assert [r.code for _, r in checked.rejections] == ["schema_violation"], bad


async def test_partial_refunds_each_count_once(clickhouse: ClickHouse) -> None:
    events = [
        order("p1", "o1", "paid", AT, "nh-r", [C25]),
        refund("r1", "o1", "rf-1", 3000),
        refund("r1-again", "o1", "rf-1", 3000),  # a webhook retry of the same refund
        refund("r2", "o1", "rf-2", 3800),  # the second partial refund of the order
        refund("r3", "o2", None, 6800),  # no refund id: once per order, as in v1.1
        refund("r3-again", "o2", None, 6800),
    ]
    await store_events(clickhouse, events)
    rows = await clickhouse.query(
        "SELECT event_id, refund_id, step_hash FROM order_steps WHERE status = 'refunded' ORDER BY event_id"
    )
    assert [(r["event_id"], r["refund_id"]) for r in rows] == [("r1", "rf-1"), ("r2", "rf-2"), ("r3", "")]
    for r in rows:  # the view's hash is the writer's: what the dedupe filters compare
        oid = "o2" if r["event_id"] == "r3" else "o1"
        key = ("douyin", oid, "refunded", *([r["refund_id"]] if r["refund_id"] else []))
        assert r["step_hash"] == xxh3_64_intdigest(SEP.join(key).encode())
    total = await clickhouse.query("SELECT sum(amount_fen) AS f FROM order_steps WHERE status = 'refunded'")
    assert total[0]["f"] == 3000 + 3800 + 6800


async def test_a_refund_stored_before_is_found_by_a_writer_that_starts_later(clickhouse: ClickHouse) -> None:
    """The exact look-up (a restarted writer's first decision) compares refund keys too."""
    await store_events(clickhouse, [refund("r1", "o1", "rf-1"), refund("r2", "o1", "rf-2")])
    writer = Writer(clickhouse)
    await writer.open()
    again = [refund("r1-b", "o1", "rf-1"), refund("r2-b", "o1", "rf-2"), refund("r4", "o1", "rf-4")]
    batch = prepare([Rec("t", 0, i, json.dumps(e).encode()) for i, e in enumerate(again)])
    await writer.store(batch.rows.values())
    rows = await clickhouse.query("SELECT event_id FROM order_steps ORDER BY event_id")
    assert [r["event_id"] for r in rows] == ["r1", "r2", "r4"]
