"""One consumed batch, validated: rows per table, dead letters, and offsets to commit.

Two halves, so the CPU-heavy one can run in another process (processors.checkpool):
``check_values`` sees only the message values and answers small things (which record
made which row, key hashes, rejections); ``assemble`` joins that with the records the
consumer kept (payload bytes, topics, offsets) into a ``Batch``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import orjson

from processors.placement import IF_KEYED, ROUTE_FIELD, TRUSTED, Placement, partitions_for, routed_topic
from processors.rows import SPEC_BY_SCHEMA, KeysBuilder, RowSet, TableKeys
from processors.validate import (
    MAX_VALUE_BYTES,
    UNKNOWN_SCHEMA_REJECTION,
    Rejection,
    time_rejection,
    validate_value,
)
from schemas.events import SCHEMAS
from schemas.fast_events import SCHEMA_OF, FastChecker


class Record(Protocol):
    """The parts of an aiokafka ConsumerRecord we use (keeps this module Kafka-free)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass
class Checked:
    """What validation answers for a list of values."""

    tables: dict[str, TableKeys]  # schema -> rows
    rejections: list[tuple[int, Rejection]]  # (position, why)
    slow: int  # values pydantic had to look at (the fast check was unsure)
    # per rejection, its DLQ value but for "source" (dead_head): encoded where the values
    # are, in the validation process, not in the consumer's busier interpreter
    dead_heads: list[bytes] = field(default_factory=list)
    # valid events not in place (processors.placement): (position, routing key, its partition)
    misplaced: list[tuple[int, bytes, int]] = field(default_factory=list)


@dataclass
class Batch:
    rows: dict[str, RowSet] = field(default_factory=dict)
    dead_values: list[bytes] = field(default_factory=list)  # DLQ values (contract §4), ready to send
    dead_codes: dict[str, int] = field(default_factory=dict)
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    consumed: dict[str, int] = field(default_factory=dict)  # topic -> messages
    # (topic, key, value, partition) to forward to the .routed topics (ingest.routing)
    forwards: list[tuple[str, bytes, bytes, int]] = field(default_factory=list)
    parts: int = 1  # how many fetched batches this one stands for (see absorb)
    epoch: int = 0  # the consumer's assignment it was fetched in (ingest.lease): written only in that one
    weight: float = 1.0  # share of a full fetch it holds, in records or bytes (ingest.batch_queue)
    # what must be acknowledged before its offsets are committed, sent ahead of its insert
    # (the consumer's dead letters: ingest.dead_letters)
    acks: list[Any] = field(default_factory=list)

    @property
    def partitions(self) -> list[tuple[str, int]]:
        return list(self.next_offsets)

    def absorb(self, later: Batch) -> None:
        """Make this batch also carry a later one, to store both with one insert.

        Every insert writes a part, and a part costs ClickHouse ~10 ms of file work per
        projection however few its rows; a writer that fell behind catches up by writing
        what waits as one part (docs/BENCHMARKS.md: freshness). Both must be of one epoch.
        """
        if later.epoch != self.epoch:
            raise ValueError("batches of two assignments cannot be stored as one")
        for schema, rows in later.rows.items():
            if schema in self.rows:
                self.rows[schema].extend(rows)
            else:
                self.rows[schema] = rows
        self.dead_values.extend(later.dead_values)
        self.forwards.extend(later.forwards)
        self.acks.extend(later.acks)
        for code, n in later.dead_codes.items():
            self.dead_codes[code] = self.dead_codes.get(code, 0) + n
        self.next_offsets.update(later.next_offsets)  # later offsets are higher
        for topic, n in later.consumed.items():
            self.consumed[topic] = self.consumed.get(topic, 0) + n
        self.parts += later.parts
        self.weight += later.weight

    @property
    def dead_letters(self) -> list[dict[str, Any]]:
        """The dead letters decoded (tests, tools); the consumer sends ``dead_values``."""
        return [orjson.loads(v) for v in self.dead_values]


def check_values(
    values: Sequence[bytes | None],
    now: datetime,
    max_value_bytes: int = MAX_VALUE_BYTES,
    placement: Placement | None = None,
) -> Checked:
    """Validate each value: msgspec's fast check first, pydantic when it is unsure.

    Both paths accept exactly the events pydantic accepts (schemas.fast_events only ever
    accepts less), so the counts and dead letters do not depend on which path ran.

    ``placement``: where the values were read; valid events that are not in place
    (processors.placement) make no row but a ``misplaced`` entry, to be forwarded.
    """
    fast = FastChecker()
    earliest, latest = fast.bounds(now)
    too_early, too_late = fast.outer_bounds(now)
    decode = fast.decode
    builders = {schema: KeysBuilder() for schema in SPEC_BY_SCHEMA}
    rejections: list[tuple[int, Rejection]] = []
    slow = 0
    states = placement.states() if placement is not None else None
    keys = placement.keys if placement is not None else []
    misplaced: list[tuple[int, str, str]] = []  # (position, routing key, schema)
    for i, value in enumerate(values):
        if value is not None and len(value) <= max_value_bytes and (event := decode(value)):
            at = event.occurred_at
            if earliest < at < latest:
                schema = SCHEMA_OF[type(event)]
                if states is not None and (state := states[i]) != TRUSTED:
                    route: str = getattr(event, ROUTE_FIELD[schema])
                    if state != IF_KEYED or keys[i] != route.encode():
                        misplaced.append((i, route, schema))
                        continue
                builders[schema].add(i, event.event_id, event.step(), _ms(at))
                continue
            if at < too_early or at > too_late:
                # Every other field passed the stricter check, so pydantic would accept
                # them and reject only the time: give its answer without its ~20 µs
                # (docs/BENCHMARKS.md: poison flood).
                rejections.append((i, time_rejection(at)))
                continue
        if value is not None and len(value) <= max_value_bytes:
            tag = fast.schema_of(value)
            if tag is not None and tag not in SCHEMAS:  # pydantic: union_tag_invalid, in ~20 µs
                rejections.append((i, UNKNOWN_SCHEMA_REJECTION))
                continue
        slow += 1
        result = validate_value(value, now, max_value_bytes)
        if isinstance(result, Rejection):
            rejections.append((i, result))
            continue
        schema = result["schema"]
        if states is not None and (state := states[i]) != TRUSTED:
            route = str(result[ROUTE_FIELD[schema]])  # type: ignore[literal-required]
            if state != IF_KEYED or keys[i] != route.encode():
                misplaced.append((i, route, schema))
                continue
        builders[schema].add(i, result["event_id"], SPEC_BY_SCHEMA[schema].step_of(result), _ms(result["occurred_at"]))
    stamp = failed_at_text(now)
    heads = [dead_head(values[i], rejection, stamp) for i, rejection in rejections]
    checked = Checked({schema: b.done() for schema, b in builders.items()}, rejections, slow, heads)
    if misplaced and placement is not None:
        checked.misplaced = _routes(misplaced, placement)
    return checked


def _routes(misplaced: list[tuple[int, str, str]], placement: Placement) -> list[tuple[int, bytes, int]]:
    """Each misplaced event's routing key and the partition the default partitioner gives it."""
    counts = np.repeat(
        np.array([r[2] for r in placement.runs], dtype=np.int64),
        np.array([r[0] for r in placement.runs], dtype=np.int64),
    )
    where = [i for i, _, _ in misplaced]
    keys = [route.encode() for _, route, _ in misplaced]
    chosen: list[int] = partitions_for(keys, counts[where]).tolist()
    return list(zip(where, keys, chosen, strict=True))


def _ms(at: datetime) -> int:
    """An aware event time as ms since the epoch (the dedupe horizon compares these)."""
    return int(at.timestamp() * 1000)


def assemble(
    records: Sequence[Record],
    values: Sequence[bytes | None],
    checked: Checked,
    now: datetime,
    by_partition: Mapping[Any, Sequence[Record]] | None = None,
) -> Batch:
    """``by_partition``: the same records grouped per partition, as ``getmany`` gives them,
    if at hand: then offsets are read off each group's last record instead of all."""
    batch = Batch()
    for schema, keys in checked.tables.items():
        if keys.indices or keys.repeated:
            batch.rows[schema] = RowSet.from_keys(SPEC_BY_SCHEMA[schema], values, keys)
    heads = checked.dead_heads
    stamp = failed_at_text(now)
    for k, (i, rejection) in enumerate(checked.rejections):
        record = records[i]
        head = heads[k] if heads else dead_head(record.value, rejection, stamp)
        batch.dead_values.append(head + _source(record))
        batch.dead_codes[rejection.code] = batch.dead_codes.get(rejection.code, 0) + 1
    for i, key, partition in checked.misplaced:
        record = records[i]
        batch.forwards.append((routed_topic(record.topic), key, values[i], partition))  # type: ignore[arg-type]
    offsets, consumed = batch.next_offsets, batch.consumed
    groups: Iterable[Sequence[Record]] = by_partition.values() if by_partition else ([r] for r in records)
    for group in groups:
        if group:
            last = group[-1]
            offsets[(last.topic, last.partition)] = last.offset + 1
            consumed[last.topic] = consumed.get(last.topic, 0) + len(group)
    return batch


def prepare(records: Sequence[Record], max_value_bytes: int = MAX_VALUE_BYTES, now: datetime | None = None) -> Batch:
    """Both halves in this thread (tests, tools); the consumer uses processors.checkpool."""
    now = now or datetime.now(UTC)
    values = [r.value for r in records]
    return assemble(records, values, check_values(values, now, max_value_bytes), now)


def failed_at_text(failed_at: datetime) -> str:
    return failed_at.isoformat().replace("+00:00", "Z")


DEAD_LETTER_MAX_BYTES = 1_000_000
"""The largest dead letter sent. Kafka's default ``message.max.bytes`` (1,048,588, a record
batch with its header) refuses a bigger one, and a dead letter the broker refuses is
retried until it is taken: its partition would stop. Only a value over the size limit can
come near it: its payload escaped is up to 4/3 its length (base64) or 6× (control
characters), and a topic may hold values up to the broker's limit."""
_PAYLOAD_ROOM = DEAD_LETTER_MAX_BYTES - 4096  # the rest: error, failed_at, source (a topic name ≤ 249)


def dead_head(value: bytes | None, rejection: Rejection, stamp: str) -> bytes:
    """A dead letter's JSON up to its ``source``, which only the consumer knows: it
    appends ``_source(record)``. A payload that would make it bigger than
    ``DEAD_LETTER_MAX_BYTES`` is cut (``_cut_payload``)."""
    head = orjson.dumps({"error": {"code": rejection.code, "message": rejection.message}, "failed_at": stamp})
    raw = value or b""
    parts = _payload_parts(raw)
    escaped = sum(map(len, parts))
    if escaped > _PAYLOAD_ROOM:
        parts = _cut_payload(raw, escaped, text=parts[0] != _B64_KEY)
    return b"".join((head[:-1], b",", *parts, b',"source":'))


def _cut_payload(raw: bytes, escaped: int, text: bool) -> tuple[bytes, ...]:
    """The payload of the longest prefix of ``raw`` that fits, escaped as the whole would be
    (text, or base64 if the whole is not UTF-8), and beside it ``"payload_truncated":true``
    and ``"payload_bytes"``, the value's length: the whole is at ``source`` in the topic.

    Beyond contract §4, which asks for the original bytes: the choice is a prefix or a
    stopped partition. A prefix is cut before a partial UTF-8 character."""
    keep = len(raw) * _PAYLOAD_ROOM // escaped  # a prefix escapes about as the whole does
    while True:
        if text:
            while keep > 0 and raw[keep] & 0xC0 == 0x80:  # inside a character: cut before it
                keep -= 1
            parts = _payload_parts(raw[:keep])
        else:
            parts = (_B64_KEY, base64.b64encode(raw[:keep]), b'"')
        if sum(map(len, parts)) <= _PAYLOAD_ROOM:
            return (*parts, b',"payload_truncated":true,"payload_bytes":', str(len(raw)).encode())
        keep = keep * 9 // 10  # this prefix escapes worse than the whole: try a shorter one


def payload_json(raw: bytes) -> bytes:
    """Contract §4's ``"payload":"…"`` for UTF-8 bytes, else ``"payload_b64":"…"``."""
    return b"".join(_payload_parts(raw))


_CONTROL = 32  # bytes below this must be escaped inside a JSON string
_B64_KEY = b'"payload_b64":"'


def _payload_parts(raw: bytes) -> tuple[bytes, ...]:
    """``payload_json`` in pieces, for one join: each copy of a 100 KiB value costs.

    Escaped as bytes, not decoded and encoded again: a value with one CJK character
    decodes to a two-byte-per-character str, and orjson turning 100 KiB of that back into
    UTF-8 took ~170 µs of the ~220 a big value's dead letter cost (docs/BENCHMARKS.md,
    "Poison flood"). Without control characters, JSON asks only quotes and backslashes
    to be escaped, so the bytes are orjson's to the byte; with any, orjson does it."""
    if not raw.isascii():
        try:
            raw.decode("utf-8")  # only whether it is UTF-8; ~45 µs for 100 KiB
        except UnicodeDecodeError:
            return _B64_KEY, base64.b64encode(raw), b'"'
    if raw and int(np.frombuffer(raw, np.uint8).min()) < _CONTROL:
        return b'"payload":', orjson.dumps(raw.decode("utf-8"))
    if b"\\" in raw:
        raw = raw.replace(b"\\", b"\\\\")
    if b'"' in raw:
        raw = raw.replace(b'"', b'\\"')
    return b'"payload":"', raw, b'"'


def _source(record: Record) -> bytes:
    return orjson.dumps({"topic": record.topic, "partition": record.partition, "offset": record.offset}) + b"}"
