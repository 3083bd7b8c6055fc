"""One consumed batch, validated: rows per table, dead letters, and offsets to commit."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from processors.rows import RowSet, new_row_sets
from processors.validate import MAX_VALUE_BYTES, Rejection, validate_value


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


def prepare(records: Iterable[Record], max_value_bytes: int = MAX_VALUE_BYTES) -> Batch:
    batch = Batch()
    now = datetime.now(UTC)
    rows = batch.rows
    offsets = batch.next_offsets
    for rec in records:
        batch.consumed[rec.topic] = batch.consumed.get(rec.topic, 0) + 1
        offsets[(rec.topic, rec.partition)] = rec.offset + 1
        result = validate_value(rec.value, now, max_value_bytes)
        if isinstance(result, Rejection):
            batch.dead_letters.append(dead_letter(rec, result, now))
            batch.dead_codes[result.code] = batch.dead_codes.get(result.code, 0) + 1
            continue
        rows[result["schema"]].append(rec.value, result)  # type: ignore[arg-type]
    return batch
