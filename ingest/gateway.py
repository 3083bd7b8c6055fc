"""The HTTP ingest gateway: platforms' webhooks post events; good ones go to Kafka.

Each event is validated by the same function as the consumer's, so a rejected event
gets the same contract code here as it would on the DLQ, and an accepted one is only
reported accepted once the broker acknowledged it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ingest.producer import Producer
from ingest.topics import Topics
from processors.validate import Rejection, validate_value

_KEY_FIELD = {"order.v1": "order_id", "onboarding.v1": "firm_id", "stream_stats.v1": "channel_id",
              "channel.v1": "channel_id"}  # fmt: skip


class BodyError(ValueError):
    """The body as a whole is not a JSON array or NDJSON."""


@dataclass
class IngestResult:
    accepted: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


def split_body(body: bytes, content_type: str) -> list[bytes]:
    """The events' raw bytes: elements of a JSON array, or the lines of NDJSON."""
    text = body.lstrip()
    if content_type != "application/x-ndjson" and text.startswith(b"["):
        try:
            items = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BodyError(f"body is not valid JSON: {exc}") from None
        return [json.dumps(item, ensure_ascii=False).encode() for item in items]
    lines = [line for line in body.splitlines() if line.strip()]
    if not lines:
        raise BodyError("body holds no events: send a JSON array or NDJSON (one event per line)")
    return lines


async def ingest(body: bytes, content_type: str, topics: Topics, producer: Producer) -> IngestResult:
    result = IngestResult()
    now = datetime.now(UTC)
    messages: list[tuple[str, bytes | None, bytes]] = []
    indices: list[int] = []
    for i, raw in enumerate(split_body(body, content_type)):
        checked = validate_value(raw, now)
        if isinstance(checked, Rejection):
            result.rejected.append({"index": i, "code": checked.code, "message": checked.message})
            continue
        schema = checked["schema"]
        key = str(checked[_KEY_FIELD[schema]]).encode()  # type: ignore[literal-required]
        messages.append((topics.for_schema(schema), key, raw))
        indices.append(i)
    if messages:
        errors = await producer.send_all(messages)
        for i, err in zip(indices, errors, strict=True):
            if err is None:
                result.accepted += 1
            else:
                result.rejected.append({"index": i, "code": "unavailable", "message": f"not published: {err!r}"})
    result.rejected.sort(key=lambda r: r["index"])
    return result
