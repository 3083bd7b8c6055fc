"""The bad messages of a poison flood: the fault battery's mix, on the orders topic.

27 kinds (issue 23): everything a producer, a proxy or an attacker puts on a topic that
is not a valid event, and the contract §4 code each must be dead-lettered with. Every
code appears; the values run from empty to twice the size limit. Of every 50 bad
messages one is over ``MAX_VALUE_BYTES`` (2%, as the battery's 1,000 of 50,000), one is
just under it (a violation the size check cannot see), and the other 48 take the 25
remaining kinds in turn (~3.8% each).

Each bad message is made from the good one it replaces (``bad_payload(k, good)``), so
it carries that order's ids and size; generation is cheap (one JSON round trip) and
deterministic: the same ``k`` and ``good`` give the same bytes.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from processors.validate import (
    INVALID_JSON,
    MAX_VALUE_BYTES,
    OVERSIZED,
    SCHEMA_VIOLATION,
    TIMESTAMP_OUT_OF_RANGE,
    UNKNOWN_SCHEMA,
)

Event = dict[str, Any]


@dataclass(frozen=True)
class Kind:
    name: str
    code: str  # the contract §4 code it must be dead-lettered with
    # (n: this is the kind's n-th message, from 0; the good payload it replaces) -> the bad value
    make: Callable[[int, bytes], bytes | None]


def _edit(change: Callable[[Event, int], None]) -> Callable[[int, bytes], bytes]:
    """A kind that is the good event with one change."""

    def make(n: int, good: bytes) -> bytes:
        event: Event = orjson.loads(good)
        change(event, n)
        return orjson.dumps(event)

    return make


def _item(field: str, value: Any) -> Callable[[Event, int], None]:
    def change(event: Event, n: int) -> None:
        event["items"][0][field] = value(event["items"][0][field]) if callable(value) else value

    return change


def _set(field: str, value: Any) -> Callable[[Event, int], None]:
    def change(event: Event, n: int) -> None:
        event[field] = value(event[field]) if callable(value) else value

    return change


def _drop(*fields: str) -> Callable[[Event, int], None]:
    def change(event: Event, n: int) -> None:
        del event[fields[n % len(fields)]]

    return change


# -- invalid_json: not parseable, or not a JSON object; no value at all --------------------


def _truncated(n: int, good: bytes) -> bytes:
    """Cut anywhere, as a producer's buffer or a proxy would (a cut inside a Chinese
    character also makes it not UTF-8: then it is dead-lettered as base64)."""
    return good[: 1 + (n * 7919) % (len(good) - 1)]


def _array(n: int, good: bytes) -> bytes:
    """A producer that batches events into one JSON array."""
    return b"[" + good + b"]"


_SCALARS = (b"6800", b'"order.v1"', b"null", b"true", b"-1.5e3", b'"\\u957f\\u8857"')


def _scalar(n: int, good: bytes) -> bytes:
    """JSON, but a number, a string, null or a boolean."""
    return _SCALARS[n % len(_SCALARS)]


_rnd = random.Random(2326)
_TEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.;:!?-_=+*/<>()&%$#@'"
_GARBAGE = ["".join(_rnd.choice(_TEXT) for _ in range(_rnd.randint(1, 400))).encode() for _ in range(61)] + [
    b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    b"order_id=o1&amount=6800",
    b"\t\r\n ",
]


def _garbage(n: int, good: bytes) -> bytes:
    """UTF-8 text that is no JSON: random printable noise, an HTML error page, a form, blanks."""
    return _GARBAGE[n % len(_GARBAGE)]


def _not_utf8(n: int, good: bytes) -> bytes:
    """Not UTF-8: a legacy producer's GBK (half the time), or a binary frame (Avro,
    protobuf, a compressed body); dead-lettered as base64."""
    if n % 2:
        return good.decode().encode("gbk")
    return b"\x00\x00\x00\x00\x07\x1f\x8b\x08\xff\xfe" + _rnd_bytes(n)


_BINARY = random.Random(23).randbytes(4096)


def _rnd_bytes(n: int) -> bytes:
    start = (n * 131) % 2048
    return _BINARY[start : start + 64 + n % 1024]


# -- sizes: over the limit, and just under it ----------------------------------------------

_PAD = base64.b64encode(random.Random(64).randbytes(2 * MAX_VALUE_BYTES)).decode()  # "an attached image"


def _padded(event: Event, size: int) -> bytes:
    """``event`` with an ``attachment`` (an unknown field, ignored by the contract) that
    brings it to exactly ``size`` bytes."""
    event["attachment"] = ""
    bare = len(orjson.dumps(event))
    event["attachment"] = _PAD[: max(0, size - bare)]
    return orjson.dumps(event)


def _oversized(n: int, good: bytes) -> bytes:
    """Over the limit by 1 byte (the first) up to the limit again (64 KiB + 1 .. 128 KiB),
    valid otherwise."""
    return _padded(orjson.loads(good), MAX_VALUE_BYTES + 1 + (n * 7919) % MAX_VALUE_BYTES)


def _near_limit(n: int, good: bytes) -> bytes:
    """Exactly the limit (the first) down to three quarters of it, with a status the
    contract does not know: the size check passes it, validation has to read all of it."""
    event: Event = orjson.loads(good)
    event["status"] = "shipped"
    return _padded(event, MAX_VALUE_BYTES - (n * 7919) % (MAX_VALUE_BYTES // 4))


# -----------------------------------------------------------------------------------------

OVERSIZED_KIND = Kind("over the size limit", OVERSIZED, _oversized)
NEAR_LIMIT_KIND = Kind("violation just under the size limit", SCHEMA_VIOLATION, _near_limit)

# The 25 kinds that take turns (each 48/50 / 25 of the bad messages).
ROTATING: tuple[Kind, ...] = (
    Kind("truncated JSON", INVALID_JSON, _truncated),
    Kind("JSON array", INVALID_JSON, _array),
    Kind("JSON scalar (number, string, null, bool)", INVALID_JSON, _scalar),
    Kind("garbage text", INVALID_JSON, _garbage),
    Kind("not UTF-8 (GBK, binary)", INVALID_JSON, _not_utf8),
    Kind("empty value", INVALID_JSON, lambda n, good: b""),
    Kind("tombstone (no value)", INVALID_JSON, lambda n, good: None),
    Kind("unknown schema version", UNKNOWN_SCHEMA, _edit(_set("schema", "order.v9"))),
    Kind("unknown schema name", UNKNOWN_SCHEMA, _edit(_set("schema", "refund.v1"))),
    Kind("missing schema", SCHEMA_VIOLATION, _edit(_drop("schema"))),
    Kind("string for a number", SCHEMA_VIOLATION, _edit(_item("quantity", str))),
    Kind("float for fen (amount)", SCHEMA_VIOLATION, _edit(_set("amount_fen", float))),
    Kind("float for fen (unit price, in yuan)", SCHEMA_VIOLATION, _edit(_item("unit_price_fen", lambda v: v / 100))),
    Kind("negative quantity", SCHEMA_VIOLATION, _edit(_item("quantity", lambda v: -v))),
    Kind("quantity over 100,000", SCHEMA_VIOLATION, _edit(_item("quantity", 100_001))),
    Kind("amount over 10^12 fen", SCHEMA_VIOLATION, _edit(_set("amount_fen", 10**12 + 1))),
    Kind("control characters in an id", SCHEMA_VIOLATION, _edit(_set("order_id", lambda v: v + "\r\n"))),
    Kind("time without offset", SCHEMA_VIOLATION, _edit(_set("occurred_at", lambda v: v[:19]))),
    Kind("time as Unix milliseconds", SCHEMA_VIOLATION, _edit(_set("occurred_at", 1582941600000))),
    Kind("unknown status", SCHEMA_VIOLATION, _edit(_set("status", "shipped"))),
    Kind("missing required field", SCHEMA_VIOLATION, _edit(_drop("order_id", "items", "region", "amount_fen"))),
    Kind("platform not a slug", SCHEMA_VIOLATION, _edit(_set("platform", "抖音"))),
    Kind("no items", SCHEMA_VIOLATION, _edit(_set("items", []))),
    Kind("time before 2000", TIMESTAMP_OUT_OF_RANGE,
         _edit(lambda e, n: e.update(occurred_at=("1970-01-01T00:00:00Z", "1999-12-31T23:59:59+00:00")[n % 2]))),
    Kind("time days ahead", TIMESTAMP_OUT_OF_RANGE, _edit(_set("occurred_at", "2100-01-01T00:00:00+08:00"))),
)  # fmt: skip

KINDS: tuple[Kind, ...] = (*ROTATING, NEAR_LIMIT_KIND, OVERSIZED_KIND)


def slot_of(k: int) -> tuple[Kind, int]:
    """The ``k``-th bad message's kind, and which of that kind's messages it is: of every
    50, the 25th is just under the size limit, the 50th over it, the other 48 take the
    rotating kinds in turn."""
    block, slot = divmod(k, 50)
    if slot == 49:
        return OVERSIZED_KIND, block
    if slot == 24:
        return NEAR_LIMIT_KIND, block
    turn = block * 48 + slot - (slot > 24)
    return ROTATING[turn % len(ROTATING)], turn // len(ROTATING)


def kind_of(k: int) -> Kind:
    return slot_of(k)[0]


def bad_payload(k: int, good: bytes) -> bytes | None:
    """The ``k``-th bad message, made from the good order payload it replaces (None: a
    tombstone, which needs a key to be sent)."""
    kind, n = slot_of(k)
    return kind.make(n, good)


def poisoned(n: int, share: float) -> list[int]:
    """Indices of the bad messages: ``share`` of ``n``, spread evenly."""
    if share <= 0:
        return []
    return sorted({min(n - 1, int(k / share)) for k in range(int(n * share))})
