"""One consumed batch, validated: rows per table, dead letters, and offsets to commit."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from processors.rows import SPEC_BY_SCHEMA, RowSet, new_row_sets
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
class Batch:
    rows: dict[str, RowSet] = field(default_factory=new_row_sets)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    dead_codes: dict[str, int] = field(default_factory=dict)
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    consumed: dict[str, int] = field(default_factory=dict)  # topic -> messages


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


class Preparer:
    """Validates records into a Batch: msgspec's fast check first, pydantic when unsure.

    Both paths accept exactly the events pydantic accepts (schemas.fast_events only ever
    accepts less), so the counts and dead letters do not depend on which path ran.
    """

    def __init__(self, max_value_bytes: int = MAX_VALUE_BYTES) -> None:
        self.max_value_bytes = max_value_bytes
        self.fast = FastChecker()
        self.slow = 0  # events that needed pydantic (observability, benchmarks)

    def prepare(self, records: Iterable[Record], now: datetime | None = None) -> Batch:
        batch = Batch()
        now = now or datetime.now(UTC)
        earliest, latest = self.fast.bounds(now)
        check = self.fast.check
        limit = self.max_value_bytes
        rows = batch.rows
        offsets = batch.next_offsets
        consumed = batch.consumed
        for rec in records:
            topic = rec.topic
            consumed[topic] = consumed.get(topic, 0) + 1
            offsets[(topic, rec.partition)] = rec.offset + 1
            value = rec.value
            if value is not None and len(value) <= limit and (fast := check(value, earliest, latest)):
                rows[SCHEMA_OF[type(fast)]].append(value, fast, fast.event_id, fast.step())
                continue
            self.slow += 1
            result = validate_value(value, now, limit)
            if isinstance(result, Rejection):
                batch.dead_letters.append(dead_letter(rec, result, now))
                batch.dead_codes[result.code] = batch.dead_codes.get(result.code, 0) + 1
                continue
            schema = result["schema"]
            rows[schema].append(value, result, result["event_id"], SPEC_BY_SCHEMA[schema].step_of(result))  # type: ignore[arg-type]
        return batch


def prepare(records: Iterable[Record], max_value_bytes: int = MAX_VALUE_BYTES) -> Batch:
    """One-off convenience (tests); the consumer keeps one Preparer."""
    return Preparer(max_value_bytes).prepare(records)
