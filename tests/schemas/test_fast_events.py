"""The msgspec fast check may only accept what pydantic accepts, with the same values.

Thousands of seeded mutations of the contract's examples (wrong types, bounds, control
characters, odd timestamps, extra and missing fields, raw byte damage) go through both;
any event the fast check accepts and pydantic rejects, or reads differently, fails here.
"""

from __future__ import annotations

import copy
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from processors.validate import MAX_VALUE_BYTES, Rejection, validate_value
from schemas.fast_events import FastChecker
from tests.processors.test_validate import NOW, example

EXAMPLES = ["order_paid", "order_refunded", "onboarding", "stream_stats", "channel"]
DELETE = object()
ODD_VALUES: list[Any] = [
    None, "", " ", "x" * 128, "x" * 129, "县" * 200, "县" * 201, "😀" * 200, "a\x01b", "a\x7f", "a\u0085",
    "a\u00a0b", "a\u200bb", "Douyin", "dou-yin", "douyin_2", "x" * 32, "x" * 33, 0, -1, 1, 1.0, 1.5, "1", True,
    False, 10**7, 10**7 + 1, 10**12, 10**12 + 1, 2**63, 2**64, -(2**63), 100_000, 100_001, [], {}, [1], {"a": 1},
    "paid", "created", "refunded", "onboarded", "withdrawn", "order.v1", "onboarding.v1", "stream_stats.v1",
    "2026-11-28T12:00:00Z", "2026-11-28T12:00:00+08:00", "2026-11-28T12:00:00", "2026-11-28 12:00:00Z",
    "2026-11-28t12:00:00z", "2026-11-28T12:00Z", "2026-11-28T12:00:00.123456789+08:00", "2026-11-28T12:00:60Z",
    "2026-02-30T12:00:00Z", "2026-11-28T12:00:00+24:00", "2026-11-28T12:00:00+23:59", "2026-11-28T12:00:00-00:00",
    "2026-11-28T12:00:00+0800", "2026-11-28T12:00:00,5Z", "1999-12-31T23:59:59Z", "2000-01-01T00:00:00Z",
    "1999-12-31T23:59:59.9999999Z", "2026-11-29T11:59:59.9999999Z", "2026-11-29T12:00:00Z",
    "2026-11-29T12:00:00.0000001Z", "2026-11-29T13:00:00Z", "1764331200", 1764331200, "channel.v1",
    "2020-02-29T09:00:00+08:00", "2020-02-29T09:00:00.0000001+08:00", "2020-02-29T08:59:59.9999999+08:00",
    "2020-02-29T15:00:00+08:00", "2199-12-31T23:59:59.9999999Z", "2200-01-01T00:00:00Z", "2000-01-01T00:00:00.0000001Z",
]  # fmt: skip
BYTE_NOISE = [b"\xff", b"\x00", b"\\", b'"', b",", b"}", b"]", b"{", b" ", b"\n", b"NaN", b"\\u0000", b"\\ud800"]


def _paths(node: Any, prefix: str = "") -> list[str]:
    out = []
    items = enumerate(node) if isinstance(node, list) else node.items() if isinstance(node, dict) else []
    for k, v in items:
        path = f"{prefix}{k}"
        out.append(path)
        out.extend(_paths(v, path + "."))
    return out


def _set(ev: Any, path: str, value: Any) -> None:
    keys = path.split(".")
    target = ev
    for k in keys[:-1]:
        target = target[int(k)] if isinstance(target, list) else target[k]
    last: Any = int(keys[-1]) if isinstance(target, list) else keys[-1]
    if value is DELETE:
        del target[last]
    else:  # a copy: a later mutation inside it must not change ODD_VALUES (or make a cycle)
        target[last] = copy.deepcopy(value)


def mutations(seed: int, n: int) -> list[bytes]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        ev = copy.deepcopy(example(rnd.choice(EXAMPLES)))
        if rnd.random() < 0.3:
            ev["items" if "items" in ev else "extra"] = [ev.get("items", [{}])[0]] * rnd.choice([1, 2, 100, 101])
        for _ in range(rnd.randint(1, 3)):
            paths = _paths(ev)
            if not paths:
                break
            what = rnd.random()
            if what < 0.7:
                _set(ev, rnd.choice(paths), rnd.choice(ODD_VALUES))
            elif what < 0.85:
                _set(ev, rnd.choice(paths), DELETE)
            else:
                ev[rnd.choice(["extra", "event_id", "schema", "region"])] = rnd.choice(ODD_VALUES)
        raw = json.dumps(ev, ensure_ascii=rnd.random() < 0.3, indent=rnd.choice([None, None, 2])).encode()
        if rnd.random() < 0.25:  # damage the bytes themselves
            at = rnd.randrange(len(raw) + 1)
            raw = raw[:at] + rnd.choice(BYTE_NOISE) + raw[at + rnd.choice([0, 0, 1]) :]
        if rnd.random() < 0.05:  # a repeated key: the last one wins for both
            raw = raw.rstrip()[:-1] + b', "amount_fen": 5, "event_id": "again"}'
        out.append(raw)
    return out


def _same(fast: Any, slow: dict[str, Any]) -> bool:
    """Equal values; timestamps within 1 µs (msgspec rounds digits past the microsecond,
    pydantic truncates them: only the range check reads this value, with a margin, and
    ClickHouse stores what it parses from the bytes)."""
    ours = msgspec.to_builtins(fast)
    theirs = json.loads(json.dumps(slow, default=str))
    close = True
    for name in ("occurred_at", "scheduled_start", "scheduled_end"):
        if (name in ours) != (name in theirs):
            return False
        if name in ours:
            ours.pop(name), theirs.pop(name)
            close = close and abs(getattr(fast, name) - slow[name]) <= timedelta(microseconds=1)
    return bool(ours == theirs and close)


@pytest.mark.parametrize("seed", range(4))
def test_fast_check_accepts_only_what_pydantic_accepts(seed: int) -> None:
    checker = FastChecker()
    bounds = checker.bounds(NOW)
    accepted = rejected_by_both = 0
    for raw in mutations(seed, 2500):
        # the size limit is checked before the fast check (processors.batch.check_values)
        fast = checker.check(raw, *bounds) if len(raw) <= MAX_VALUE_BYTES else None
        slow = validate_value(raw, NOW)
        if fast is None:
            rejected_by_both += isinstance(slow, Rejection)
            continue
        accepted += 1
        assert not isinstance(slow, Rejection), f"fast check accepted what pydantic rejects ({slow}): {raw!r}"
        assert _same(fast, slow), f"fast check read different values: {raw!r}"
    # the mutations must exercise both sides, or this test proves nothing
    assert accepted > 100 and rejected_by_both > 1000, (accepted, rejected_by_both)


@pytest.mark.parametrize("name", EXAMPLES)
def test_fast_check_takes_the_common_shapes(name: str) -> None:
    """The point of the fast path: ordinary events must not fall back to pydantic."""
    checker = FastChecker()
    ev = example(name)
    for raw in (json.dumps(ev).encode(), json.dumps(ev, ensure_ascii=False, indent=2).encode()):
        fast = checker.check(raw, *checker.bounds(NOW))
        assert fast is not None
        assert _same(fast, validate_value(raw, NOW))  # type: ignore[arg-type]


def test_fast_check_leaves_the_bounds_to_pydantic() -> None:
    checker = FastChecker()
    ev = example("stream_stats")
    for when in ("2000-01-01T00:00:00Z", "2026-11-29T12:00:00Z"):  # both valid, both at a bound
        raw = json.dumps(ev | {"occurred_at": when}).encode()
        assert checker.check(raw, *checker.bounds(NOW)) is None
        assert not isinstance(validate_value(raw, NOW), Rejection)
    assert checker.check(json.dumps(ev).encode(), *checker.bounds(datetime.now(UTC))) is not None
