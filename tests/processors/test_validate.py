"""Every rule of contract §2 and every dead-letter code of §4, one case each.

Each case runs twice: through ``validate_value`` (pydantic, also the HTTP gateway's) and
through the consumer's ``prepare`` (msgspec fast check, pydantic when unsure), and both
must give the same answer.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from processors.batch import prepare
from processors.validate import Rejection, validate_value

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "contract" / "examples"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def example(name: str) -> dict[str, Any]:
    path = EXAMPLES / f"{name}.json"
    if not path.exists():  # CI lays shared/ beside the clone; fall back to a copy of the examples
        path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def check(event: Any) -> Any:
    raw = event if isinstance(event, bytes) else json.dumps(event, ensure_ascii=False).encode()
    return validate_value(raw, NOW)


class _Record:
    topic, partition, offset = "livesales.orders", 0, 7

    def __init__(self, value: bytes) -> None:
        self.value = value


def consumer_code(raw: bytes) -> str | None:
    """What the consumer makes of one message: its dead-letter code, or None if stored."""
    batch = prepare([_Record(raw)], now=NOW)
    if batch.dead_letters:
        code: str = batch.dead_letters[0]["error"]["code"]
        return code
    assert sum(len(rs) for rs in batch.rows.values()) == 1
    return None


def code_of(event: Any) -> str | None:
    result = check(event)
    code = result.code if isinstance(result, Rejection) else None
    raw = event if isinstance(event, bytes) else json.dumps(event, ensure_ascii=False).encode()
    assert consumer_code(raw) == code, "the consumer and the gateway disagree"
    return code


@pytest.mark.parametrize("name", ["order_paid", "order_refunded", "onboarding", "stream_stats", "channel"])
def test_contract_examples_are_valid(name: str) -> None:
    assert code_of(example(name)) is None


def test_unknown_fields_are_ignored() -> None:
    ev = example("order_paid") | {"coupon": "X", "nested": {"a": [1]}}
    ev["items"][0]["colour"] = "blue"
    assert code_of(ev) is None


def mutate(name: str, path: str, value: Any) -> dict[str, Any]:
    ev = copy.deepcopy(example(name))
    target: Any = ev
    keys = path.split(".")
    for k in keys[:-1]:
        target = target[int(k)] if isinstance(target, list) else target[k]
    last = keys[-1]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return ev


DELETE = object()

VIOLATIONS = [
    ("order_paid", "event_id", DELETE),
    ("order_paid", "event_id", ""),
    ("order_paid", "event_id", "x" * 129),
    ("order_paid", "event_id", "bad\nid"),
    ("order_paid", "event_id", 17),
    ("order_paid", "occurred_at", "2020-02-29T10:03:41"),  # no offset
    ("order_paid", "occurred_at", "yesterday"),
    ("order_paid", "order_id", DELETE),
    ("order_paid", "status", "shipped"),
    ("order_paid", "channel_id", "c" * 129),
    ("order_paid", "platform", "DouYin"),
    ("order_paid", "platform", "a" * 33),
    ("order_paid", "merchant_id", DELETE),
    ("order_paid", "region", DELETE),
    ("order_paid", "region.district", ""),
    ("order_paid", "region.township", "镇" * 201),
    ("order_paid", "items", []),
    ("order_paid", "items.0.quantity", 0),
    ("order_paid", "items.0.quantity", 100_001),
    ("order_paid", "items.0.quantity", "1"),
    ("order_paid", "items.0.quantity", 1.5),
    ("order_paid", "items.0.unit_price_fen", -1),
    ("order_paid", "items.0.weight_g", 10**7 + 1),
    ("order_paid", "items.0.name", ""),
    ("order_paid", "items.0.sku", DELETE),
    ("order_paid", "amount_fen", 10**12 + 1),
    ("order_paid", "amount_fen", "6800"),
    ("onboarding", "export_oriented", "true"),
    ("onboarding", "status", "pending"),
    ("onboarding", "firm_name", DELETE),
    ("onboarding", "district", "区" * 201),
    ("stream_stats", "viewers_online", -1),
    ("stream_stats", "views_total", "41250"),
    ("order_paid", "schema", DELETE),
    ("channel", "channel_id", DELETE),
    ("channel", "channel_id", "bad\tid"),
    ("channel", "platform", "Douyin"),
    ("channel", "title", DELETE),
    ("channel", "title", ""),
    ("channel", "title", "节" * 201),
    ("channel", "host", ""),
    ("channel", "host", 7),
    ("channel", "region", DELETE),
    ("channel", "region.district", DELETE),
    ("channel", "scheduled_start", "2020-02-29T09:00:00"),  # no offset
    ("channel", "scheduled_end", "tomorrow"),
    ("channel", "scheduled_end", "2020-02-29T09:00:00+08:00"),  # equal to the start
    ("channel", "scheduled_end", "2020-02-29T08:59:59+08:00"),  # before the start
    ("channel", "scheduled_end", "2200-01-01T00:00:00Z"),  # past what is storable and plausible
    ("channel", "scheduled_start", "1999-12-31T23:59:59Z"),
]


@pytest.mark.parametrize(("name", "path", "value"), VIOLATIONS)
def test_schema_violations(name: str, path: str, value: Any) -> None:
    assert code_of(mutate(name, path, value)) == "schema_violation"


def test_too_many_items_is_a_violation() -> None:
    ev = example("order_paid")
    ev["items"] = ev["items"] * 101
    assert code_of(ev) == "schema_violation"


def test_bounds_that_are_allowed() -> None:
    ev = mutate("order_paid", "amount_fen", 10**12)
    ev["items"] = ev["items"] * 100
    ev["event_id"] = "e" * 128
    ev["region"] = {"district": "宁海县"}  # township may be omitted
    del ev["items"][0]["weight_g"]  # defaults to 0
    assert code_of(ev) is None


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"not json", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b'"a string"', "invalid_json"),
        (b"\xff\xfe\x00garbage", "invalid_json"),
        (b'{"schema": "order.v2", "event_id": "x"}', "unknown_schema"),
        (b'{"schema": "refund.v1"}', "unknown_schema"),
    ],
)
def test_unparseable_and_unknown(raw: bytes, code: str) -> None:
    assert code_of(raw) == code


def test_a_message_without_value_is_rejected() -> None:
    result = validate_value(None, NOW)
    assert isinstance(result, Rejection) and result.code == "invalid_json"


@pytest.mark.parametrize(
    ("when", "code"),
    [
        ("1999-12-31T23:59:59Z", "timestamp_out_of_range"),
        ("2000-01-01T00:00:00Z", None),
        ("2000-01-01T07:59:59+08:00", "timestamp_out_of_range"),
        ("2026-11-29T11:59:00Z", None),  # now + 23h59m
        ("2026-11-29T12:00:01Z", "timestamp_out_of_range"),  # now + 24h + 1s
    ],
)
def test_timestamp_range(when: str, code: str | None) -> None:
    assert code_of(mutate("stream_stats", "occurred_at", when)) == code


def test_oversized_value() -> None:
    ev = example("order_paid")
    ev["padding"] = "x" * (64 * 1024)
    assert code_of(ev) == "oversized"


def test_violation_message_names_the_field() -> None:
    result = check(mutate("order_paid", "items.0.quantity", 0))
    assert isinstance(result, Rejection)
    assert "items.0.quantity" in result.message


def test_channel_optional_fields() -> None:
    ev = example("channel")
    for field in ("host", "scheduled_start", "scheduled_end"):
        assert code_of({k: v for k, v in ev.items() if k != field}) is None
    bare = {k: v for k, v in ev.items() if k not in ("host", "scheduled_start", "scheduled_end")}
    assert code_of(bare | {"region": {"district": "宁海县"}}) is None
    # an end one second after the start is in order; the offsets are compared as instants
    assert code_of(ev | {"scheduled_end": "2020-02-29T01:00:01Z"}) is None
    assert code_of(ev | {"scheduled_end": "2020-02-29T01:00:00Z"}) == "schema_violation"


def test_schedule_message_names_the_rule() -> None:
    result = check(mutate("channel", "scheduled_end", "2020-02-29T08:00:00+08:00"))
    assert isinstance(result, Rejection)
    assert "scheduled_end must be after scheduled_start" in result.message
