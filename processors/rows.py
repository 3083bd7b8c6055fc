"""The rows of one batch for one table: the validated events' JSON plus dedupe keys.

Rows are kept as the producer's own JSON bytes: ClickHouse parses them (C++) on insert
into the table's ``*_in`` transform (schemas.ddl), which is several times cheaper than
serialising Python values. The validated dicts are kept too, for the rare batch that
ClickHouse's JSON reader refuses although pydantic accepted it (then we re-encode).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from xxhash import xxh3_64_intdigest

from processors.keys import SEP


@dataclass(frozen=True)
class TableSpec:
    table: str  # where rows are stored and looked up
    ingest: str  # the Null table whose materialized view fills ``table``
    step_fields: tuple[str, ...] = ()  # empty: deduped by event_id only

    def step_of(self, event: Any) -> tuple[str, ...]:
        """The step key of a validated event dict (the pydantic path)."""
        return tuple(itemgetter(*self.step_fields)(event)) if self.step_fields else ()


ORDERS = TableSpec("order_steps", "order_events_in", ("platform", "order_id", "status"))
ONBOARDING = TableSpec("onboarding_steps", "onboarding_events_in", ("platform", "firm_id", "status"))
STATS = TableSpec("stream_stats", "stream_stats_in")
SPEC_BY_SCHEMA = {"order.v1": ORDERS, "onboarding.v1": ONBOARDING, "stream_stats.v1": STATS}


@dataclass
class RowSet:
    spec: TableSpec
    payloads: list[bytes] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    event_hashes: list[int] = field(default_factory=list)
    step_keys: list[tuple[str, ...]] = field(default_factory=list)
    step_hashes: list[int] = field(default_factory=list)
    # Duplicates within the batch are dropped here, in the validation thread, so the
    # single writer only has to compare against what is already stored.
    repeated: int = 0
    _seen_events: set[str] = field(default_factory=set, repr=False)
    _seen_steps: set[tuple[str, ...]] = field(default_factory=set, repr=False)

    @property
    def table(self) -> str:
        return self.spec.table

    def __len__(self) -> int:
        return len(self.event_ids)

    def append(self, payload: bytes, event: Any, eid: str, step: tuple[str, ...]) -> None:
        """Add one validated event (a pydantic dict or a msgspec struct) with its keys."""
        if eid in self._seen_events or step in self._seen_steps:
            self.repeated += 1
            return
        self._seen_events.add(eid)
        self.payloads.append(payload)
        self.events.append(event)
        self.event_ids.append(eid)
        self.event_hashes.append(xxh3_64_intdigest(eid.encode()))
        if self.spec.step_fields:
            self._seen_steps.add(step)
            self.step_keys.append(step)
            self.step_hashes.append(xxh3_64_intdigest(SEP.join(step).encode()))

    def subset(self, keep: list[int]) -> RowSet:
        out = RowSet(self.spec)
        out.payloads = [self.payloads[i] for i in keep]
        out.events = [self.events[i] for i in keep]
        out.event_ids = [self.event_ids[i] for i in keep]
        out.event_hashes = [self.event_hashes[i] for i in keep]
        if self.spec.step_fields:
            out.step_keys = [self.step_keys[i] for i in keep]
            out.step_hashes = [self.step_hashes[i] for i in keep]
        return out


def new_row_sets() -> dict[str, RowSet]:
    return {schema: RowSet(spec) for schema, spec in SPEC_BY_SCHEMA.items()}
