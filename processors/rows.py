"""Column-oriented row sets, one per table, built straight from validated events.

A ``RowSet`` carries, next to the column values, each row's dedupe identity (exact key
and its hash) so the deduper can drop rows without re-reading the events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from processors.keys import key_hash
from schemas.events import OnboardingEvent, OrderEvent, StreamStatsEvent

ORDER_COLUMNS = (
    "step_hash", "event_hash", "event_id", "platform", "order_id", "status", "occurred_at",
    "channel_id", "merchant_id", "district", "township", "amount_fen", "units", "weight_g",
    "items.sku", "items.name", "items.quantity", "items.unit_price_fen", "items.weight_g",
)  # fmt: skip
ONBOARDING_COLUMNS = (
    "step_hash", "event_hash", "event_id", "platform", "firm_id", "status", "occurred_at",
    "firm_name", "district", "export_oriented",
)  # fmt: skip
STATS_COLUMNS = (
    "event_hash", "event_id", "channel_id", "platform", "occurred_at", "viewers_online", "views_total",
)  # fmt: skip


@dataclass
class RowSet:
    """Rows for one table; ``step_keys`` is None for tables deduped by event id only."""

    table: str
    names: tuple[str, ...]
    has_steps: bool
    columns: list[list[Any]] = field(init=False)
    step_keys: list[tuple[str, ...]] = field(default_factory=list)
    step_hashes: list[int] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    event_hashes: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.columns = [[] for _ in self.names]

    def __len__(self) -> int:
        return len(self.event_ids)

    def append(self, values: tuple[Any, ...], event_id: str, event_hash: int, step: tuple[str, ...] = ()) -> None:
        for col, v in zip(self.columns, values, strict=True):
            col.append(v)
        self.event_ids.append(event_id)
        self.event_hashes.append(event_hash)
        if self.has_steps:
            self.step_keys.append(step)
            self.step_hashes.append(values[0])

    def subset(self, keep: list[int]) -> RowSet:
        out = RowSet(self.table, self.names, self.has_steps)
        out.columns = [[col[i] for i in keep] for col in self.columns]
        out.event_ids = [self.event_ids[i] for i in keep]
        out.event_hashes = [self.event_hashes[i] for i in keep]
        if self.has_steps:
            out.step_keys = [self.step_keys[i] for i in keep]
            out.step_hashes = [self.step_hashes[i] for i in keep]
        return out


def new_row_sets() -> dict[str, RowSet]:
    return {
        "order.v1": RowSet("order_steps", ORDER_COLUMNS, True),
        "onboarding.v1": RowSet("onboarding_steps", ONBOARDING_COLUMNS, True),
        "stream_stats.v1": RowSet("stream_stats", STATS_COLUMNS, False),
    }


def add_order(rows: RowSet, e: OrderEvent) -> None:
    items = e["items"]
    skus, names, qty, price, grams = [], [], [], [], []
    units = weight = 0
    for it in items:
        q = it["quantity"]
        g = it.get("weight_g", 0)
        skus.append(it["sku"])
        names.append(it["name"])
        qty.append(q)
        price.append(it["unit_price_fen"])
        grams.append(g)
        units += q
        weight += q * g
    step = (e["platform"], e["order_id"], e["status"])
    region = e["region"]
    eid = e["event_id"]
    ehash = key_hash(eid)
    rows.append(
        (
            key_hash(*step), ehash, eid, e["platform"], e["order_id"], e["status"],
            e["occurred_at"].astimezone(UTC), e["channel_id"], e["merchant_id"],
            region["district"], region.get("township", ""), e["amount_fen"], units, weight,
            skus, names, qty, price, grams,
        ),  # fmt: skip
        eid,
        ehash,
        step,
    )


def add_onboarding(rows: RowSet, e: OnboardingEvent) -> None:
    step = (e["platform"], e["firm_id"], e["status"])
    eid = e["event_id"]
    ehash = key_hash(eid)
    rows.append(
        (
            key_hash(*step), ehash, eid, e["platform"], e["firm_id"], e["status"],
            e["occurred_at"].astimezone(UTC), e["firm_name"], e["district"], e["export_oriented"],
        ),  # fmt: skip
        eid,
        ehash,
        step,
    )


def add_stats(rows: RowSet, e: StreamStatsEvent) -> None:
    eid = e["event_id"]
    ehash = key_hash(eid)
    rows.append(
        (
            ehash, eid, e["channel_id"], e["platform"], e["occurred_at"].astimezone(UTC),
            e["viewers_online"], e["views_total"],
        ),  # fmt: skip
        eid,
        ehash,
    )


ADDERS: dict[str, Any] = {"order.v1": add_order, "onboarding.v1": add_onboarding, "stream_stats.v1": add_stats}
