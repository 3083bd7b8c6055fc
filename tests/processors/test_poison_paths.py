"""The dead-letter shortcuts (processors.batch.check_values) answer exactly what pydantic would."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime

import orjson
import pytest

from processors.batch import DEAD_LETTER_MAX_BYTES, check_values, dead_head, payload_json
from processors.validate import Rejection, validate_value

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ORDER = {
    "schema": "order.v1", "event_id": "e1", "order_id": "o1", "occurred_at": "2020-02-29T10:00:00+08:00",
    "status": "paid", "channel_id": "c1", "platform": "douyin", "merchant_id": "m1",
    "region": {"district": "宁海县", "township": "长街镇"},
    "items": [{"sku": "clam", "name": "长街蛏子", "quantity": 1, "unit_price_fen": 6800}], "amount_fen": 6800,
}  # fmt: skip


def value(**change: object) -> bytes:
    return json.dumps(ORDER | change, ensure_ascii=False).encode()


@pytest.mark.parametrize(
    ("raw", "shortcut"),
    [
        (value(occurred_at="1996-02-29T10:00:00+08:00"), True),  # long before 2000
        (value(occurred_at="2999-01-01T00:00:00Z"), True),  # far in the future
        (value(occurred_at="2027-12-01T00:00:00Z"), True),
        (value(occurred_at="1999-12-31T23:59:59.5Z"), False),  # within a second of the bound: pydantic decides
        (value(schema="order.v9"), True),
        (value(schema="Order.V1"), True),
        (value(schema=5), False),  # not a string: pydantic names it
        (value(schema="order.v9")[:-3], False),  # not well-formed JSON: pydantic says invalid_json
        (value(occurred_at="1996-02-29T10:00:00+08:00", extra="x"), False),  # the fast check forbids unknown fields
    ],
)
def test_shortcut_agrees_with_pydantic(raw: bytes, shortcut: bool) -> None:
    checked = check_values([raw], NOW)
    assert len(checked.rejections) == 1
    _, got = checked.rejections[0]
    want = validate_value(raw, NOW)
    assert isinstance(want, Rejection)
    assert got == want  # same code, same message
    assert (checked.slow == 0) is shortcut  # pydantic was not asked when the answer was certain


def test_dead_head_plus_source_is_the_contract_value() -> None:
    raw = value(schema="order.v9")
    checked = check_values([raw, b"\xff\xfe not utf-8"], NOW)
    assert len(checked.dead_heads) == 2
    doc = orjson.loads(checked.dead_heads[0] + b'{"topic":"t","partition":1,"offset":7}}')
    assert doc == {"error": {"code": "unknown_schema", "message": checked.rejections[0][1].message},
                   "failed_at": "2026-12-01T08:00:00Z", "payload": raw.decode(),
                   "source": {"topic": "t", "partition": 1, "offset": 7}}  # fmt: skip
    doc = orjson.loads(dead_head(b"\xff\xfe not utf-8", checked.rejections[1][1], "x") + b"{}}")
    assert doc["payload_b64"] == "//4gbm90IHV0Zi04" and "payload" not in doc


def _orjson_payload(raw: bytes) -> bytes:
    """What the dead letters held before the byte-level escape: orjson encoding the decoded str."""
    try:
        return b'"payload":' + orjson.dumps(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return b'"payload_b64":' + orjson.dumps(base64.b64encode(raw).decode())


@pytest.mark.parametrize("seed", range(4))
def test_payload_json_is_orjsons_to_the_byte(seed: int) -> None:
    rnd = random.Random(seed)
    pieces = ['"', "\\", "\\u00e9", "\n", "\t", "\x00", "\x1f", "\x7f", "宁海", "😀", "\u2028", "a", "{}", "'", "/"]
    cases = [b"", b'"', b"\\", "蛏".encode(), b"\xff", b"\xed\xa0\x80", b"\xe5\xae", value()]  # lone surrogate, cut CJK
    for _ in range(300):
        text = "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 40)))
        raw = text.encode("utf-8", "surrogatepass")
        cases.append(raw)
        if raw:
            cut = rnd.randrange(len(raw))  # also the same bytes cut anywhere, maybe mid-character
            cases.append(raw[:cut])
        cases.append(rnd.randbytes(rnd.randint(1, 30)))
    for raw in cases:
        assert payload_json(raw) == _orjson_payload(raw), raw


OVERSIZED = Rejection("oversized", "value is over the limit")


def _letter(raw: bytes) -> tuple[bytes, dict[str, object]]:
    letter = dead_head(raw, OVERSIZED, "2026-12-01T08:00:00Z") + b'{"topic":"livesales.orders","partition":3,"offset":9}}'
    return letter, orjson.loads(letter)


@pytest.mark.parametrize(
    ("raw", "form"),
    [
        (b"\xff" + bytes(range(256)) * 3_500, "payload_b64"),  # 897 KB, not UTF-8: 1.2 MB as base64
        (b'{"x": "' + b'\\"' * 300_000 + b'"}', "payload"),  # quotes and backslashes: escaped 2x
        (b'{"x": "' + b"\x01" * 200_000 + b'"}', "payload"),  # control characters: 6x
        ("蛏".encode() * 400_000, "payload"),  # 1.2 MB of text: cut before a whole character
    ],
)
def test_a_dead_letter_the_broker_would_refuse_carries_a_prefix_and_the_length(raw: bytes, form: str) -> None:
    """Kafka's default limit (1,048,588 bytes a batch) refuses a dead letter of any of these
    whole, and a refused one would stop its partition: the letter keeps the longest prefix
    that fits, says it was cut and how long the value was; the rest is as for any other."""
    letter, doc = _letter(raw)
    assert len(letter) <= DEAD_LETTER_MAX_BYTES
    assert doc["payload_truncated"] is True and doc["payload_bytes"] == len(raw)
    assert doc["source"] == {"topic": "livesales.orders", "partition": 3, "offset": 9}
    assert doc["error"] == {"code": "oversized", "message": "value is over the limit"}
    kept = base64.b64decode(str(doc[form])) if form == "payload_b64" else str(doc[form]).encode()
    assert raw.startswith(kept) and len(kept) > DEAD_LETTER_MAX_BYTES // 7  # the most that fits, not a token
    assert ({"payload", "payload_b64"} - {form}).isdisjoint(doc)


def test_a_dead_letter_that_fits_keeps_the_whole_value() -> None:
    raw = b'{"x": "' + "蛏".encode() * 300_000 + b'"}'  # 900 KB of text: fits as it is
    letter, doc = _letter(raw)
    assert doc["payload"] == raw.decode() and "payload_truncated" not in doc and "payload_bytes" not in doc
    assert len(letter) <= DEAD_LETTER_MAX_BYTES
