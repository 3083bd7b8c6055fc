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

from processors.rows import SPEC_BY_SCHEMA, KeysBuilder, RowSet, TableKeys
from processors.validate import MAX_VALUE_BYTES, Rejection, validate_value
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


@dataclass
class Batch:
    rows: dict[str, RowSet] = field(default_factory=dict)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    dead_codes: dict[str, int] = field(default_factory=dict)
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    consumed: dict[str, int] = field(default_factory=dict)  # topic -> messages
    parts: int = 1  # how many fetched batches this one stands for (see absorb)

    @property
    def partitions(self) -> list[tuple[str, int]]:
        return list(self.next_offsets)

    def absorb(self, later: Batch) -> None:
        """Make this batch also carry a later one, to store both with one insert.

        Every insert writes a part, and a part costs ClickHouse ~10 ms of file work per
        projection however few its rows; a writer that fell behind catches up by writing
        what waits as one part (docs/BENCHMARKS.md: freshness).
        """
        for schema, rows in later.rows.items():
            if schema in self.rows:
                self.rows[schema].extend(rows)
            else:
                self.rows[schema] = rows
        self.dead_letters.extend(later.dead_letters)
        for code, n in later.dead_codes.items():
            self.dead_codes[code] = self.dead_codes.get(code, 0) + n
        self.next_offsets.update(later.next_offsets)  # later offsets are higher
        for topic, n in later.consumed.items():
            self.consumed[topic] = self.consumed.get(topic, 0) + n
        self.parts += later.parts


def check_values(values: Sequence[bytes | None], now: datetime, max_value_bytes: int = MAX_VALUE_BYTES) -> Checked:
    """Validate each value: msgspec's fast check first, pydantic when it is unsure.

    Both paths accept exactly the events pydantic accepts (schemas.fast_events only ever
    accepts less), so the counts and dead letters do not depend on which path ran.
    """
    fast = FastChecker()
    earliest, latest = fast.bounds(now)
    check = fast.check
    builders = {schema: KeysBuilder() for schema in SPEC_BY_SCHEMA}
    rejections: list[tuple[int, Rejection]] = []
    slow = 0
    for i, value in enumerate(values):
        if value is not None and len(value) <= max_value_bytes and (event := check(value, earliest, latest)):
            builders[SCHEMA_OF[type(event)]].add(i, event.event_id, event.step(), _ms(event.occurred_at))
            continue
        slow += 1
        result = validate_value(value, now, max_value_bytes)
        if isinstance(result, Rejection):
            rejections.append((i, result))
            continue
        schema = result["schema"]
        builders[schema].add(i, result["event_id"], SPEC_BY_SCHEMA[schema].step_of(result), _ms(result["occurred_at"]))
    return Checked({schema: b.keys for schema, b in builders.items()}, rejections, slow)


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
    for i, rejection in checked.rejections:
        batch.dead_letters.append(dead_letter(records[i], rejection, now))
        batch.dead_codes[rejection.code] = batch.dead_codes.get(rejection.code, 0) + 1
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


def dead_letter(record: Record, rejection: Rejection, failed_at: datetime) -> dict[str, Any]:
    """The DLQ value of contract §4; the original bytes survive, base64 when not UTF-8."""
    out: dict[str, Any] = {
        "error": {"code": rejection.code, "message": rejection.message},
        "source": {"topic": record.topic, "partition": record.partition, "offset": record.offset},
        "failed_at": failed_at.isoformat().replace("+00:00", "Z"),
    }
    raw = record.value or b""
    try:
        out["payload"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        out["payload_b64"] = base64.b64encode(raw).decode("ascii")
    return out
