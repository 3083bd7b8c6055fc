"""Turn one raw message value into a valid event or a rejection with a contract code.

Shared by the Kafka consumer and the HTTP ingest gateway, so both reject the same input
with the same code (contract §4): ``invalid_json``, ``unknown_schema``,
``schema_violation``, ``timestamp_out_of_range``, ``oversized``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from pydantic import ValidationError

from schemas.events import EARLIEST, EVENT_ADAPTER, FUTURE_SLACK, SCHEMAS, AnyEvent

MAX_VALUE_BYTES = 64 * 1024

INVALID_JSON = "invalid_json"
UNKNOWN_SCHEMA = "unknown_schema"
SCHEMA_VIOLATION = "schema_violation"
TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
OVERSIZED = "oversized"


class Rejection(NamedTuple):
    """Why a value is dead-lettered: its contract §4 code and a short message.

    A named tuple, not a dataclass: a poisoned batch's verdicts cross from the validation
    process to the consumer pickled, and a frozen slots dataclass unpickles at ~7 µs each
    (every field set through ``object.__setattr__``), a tuple at well under one."""

    code: str
    message: str


UNKNOWN_SCHEMA_REJECTION = Rejection(UNKNOWN_SCHEMA, f"unknown schema; expected one of {', '.join(SCHEMAS)}")


def _describe(errors: list[Any]) -> str:
    """A short human message naming the fields at fault (first three errors)."""
    parts = []
    for err in errors[:3]:
        loc = [str(p) for p in err["loc"] if str(p) not in SCHEMAS]
        where = ".".join(loc) or "event"
        parts.append(f"{where}: {err['msg']}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def classify(exc: ValidationError) -> Rejection:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    first = errors[0]["type"] if errors else ""
    if first == "json_invalid":
        return Rejection(INVALID_JSON, f"not parseable as JSON: {errors[0]['msg']}")
    if first in ("dict_type", "model_type", "model_attributes_type") and not errors[0]["loc"]:
        return Rejection(INVALID_JSON, "value is JSON but not a JSON object")
    if first == "union_tag_invalid":
        return UNKNOWN_SCHEMA_REJECTION
    if first == "union_tag_not_found":
        return Rejection(SCHEMA_VIOLATION, "schema: field required")
    return Rejection(SCHEMA_VIOLATION, _describe(errors))


def check_time(event: AnyEvent, now: datetime) -> Rejection | None:
    at = event["occurred_at"]
    if at < EARLIEST or at > now + FUTURE_SLACK:
        return time_rejection(at)
    return None


def time_rejection(at: datetime) -> Rejection:
    return Rejection(
        TIMESTAMP_OUT_OF_RANGE,
        f"occurred_at {at.isoformat()} outside [2000-01-01T00:00:00Z, processing time + 24h]",
    )


def oversized(size: int, max_bytes: int) -> Rejection:
    """A value of ``size`` bytes over the limit: rejected on its length alone, unparsed."""
    return Rejection(OVERSIZED, f"value is {size} bytes, over the {max_bytes} byte limit")


def validate_value(
    value: bytes | None, now: datetime, max_bytes: int = MAX_VALUE_BYTES
) -> AnyEvent | Rejection:
    """Validate one message value; never raises for bad input."""
    if value is None:
        return Rejection(INVALID_JSON, "message has no value (tombstone)")
    if len(value) > max_bytes:
        return oversized(len(value), max_bytes)
    try:
        event = EVENT_ADAPTER.validate_json(value)
    except ValidationError as exc:
        return classify(exc)
    except (ValueError, RecursionError) as exc:  # e.g. invalid UTF-8 inside jiter
        return Rejection(INVALID_JSON, f"not parseable as JSON: {exc}")
    return check_time(event, now) or event
