"""Pydantic v2 schemas of the four wire events (contract §2).

They are TypedDicts validated by pydantic rather than BaseModels: the consumer builds
ClickHouse columns straight from the validated dicts, and on this hot path pydantic
producing plain dicts is about twice as fast as building model instances (measured in
docs/BENCHMARKS.md). Types are strict (a quantity sent as ``"3"`` is a producer bug we
surface, not paper over); unknown fields are ignored (forward compatibility).
The check that depends on the processing time (``occurred_at`` ≤ now + 24 h) is a
separate error code and lives in ``processors.validate``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, NotRequired

from pydantic import AfterValidator, AwareDatetime, ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict

MAX_MONEY_FEN = 10**12
# occurred_at must lie in [EARLIEST, processing time + FUTURE_SLACK] (its own error code)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(hours=24)
# A channel's schedule must be storable (DateTime64 ends in 2299) and plausible: outside
# [EARLIEST, SCHEDULE_LATEST) it is a schema_violation, not a poison pill for the insert.
SCHEDULE_LATEST = datetime(2200, 1, 1, tzinfo=UTC)
SCHEMAS = ("order.v1", "onboarding.v1", "stream_stats.v1", "channel.v1")

# Identifiers: 1-128 chars without control characters (they break logs, keys, CSV).
Ident = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")]
# Names are free Unicode text; Chinese is the normal case.
Name = Annotated[str, Field(min_length=1, max_length=200)]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")]
Money = Annotated[int, Field(ge=0, le=MAX_MONEY_FEN)]
Count = Annotated[int, Field(ge=0)]

_STRICT = ConfigDict(strict=True, extra="ignore")


@with_config(_STRICT)
class Region(TypedDict):
    district: Name
    township: NotRequired[Name]


@with_config(_STRICT)
class Item(TypedDict):
    sku: Ident
    name: Name
    quantity: Annotated[int, Field(ge=1, le=100_000)]
    unit_price_fen: Money
    weight_g: NotRequired[Annotated[int, Field(ge=0, le=10**7)]]


@with_config(_STRICT)
class OrderEvent(TypedDict):
    schema: Literal["order.v1"]
    event_id: Ident
    occurred_at: AwareDatetime
    order_id: Ident
    status: Literal["created", "paid", "refunded"]
    channel_id: Ident
    platform: Slug
    merchant_id: Ident
    region: Region
    items: Annotated[list[Item], Field(min_length=1, max_length=100)]
    amount_fen: Money
    refund_id: NotRequired[Ident]  # v1.2: a refunded step counts once per refund


@with_config(_STRICT)
class OnboardingEvent(TypedDict):
    schema: Literal["onboarding.v1"]
    event_id: Ident
    occurred_at: AwareDatetime
    firm_id: Ident
    firm_name: Name
    platform: Slug
    district: Name
    export_oriented: bool
    status: Literal["onboarded", "withdrawn"]


@with_config(_STRICT)
class StreamStatsEvent(TypedDict):
    schema: Literal["stream_stats.v1"]
    event_id: Ident
    occurred_at: AwareDatetime
    channel_id: Ident
    platform: Slug
    viewers_online: Count
    views_total: Count


@with_config(_STRICT)
class ChannelEvent(TypedDict):
    """The channel registry (v1.1): what people call a sale, who hosts it, where and when."""

    schema: Literal["channel.v1"]
    event_id: Ident
    occurred_at: AwareDatetime
    channel_id: Ident
    platform: Slug
    title: Name
    host: NotRequired[Name]
    region: Region
    scheduled_start: NotRequired[AwareDatetime]
    scheduled_end: NotRequired[AwareDatetime]
    platform_room_id: NotRequired[Ident]  # v1.2: the platform's live room (connectors map its orders here)


def _schedule_in_order(event: ChannelEvent) -> ChannelEvent:
    start, end = event.get("scheduled_start"), event.get("scheduled_end")
    for name, at in (("scheduled_start", start), ("scheduled_end", end)):
        if at is not None and not EARLIEST <= at < SCHEDULE_LATEST:
            raise ValueError(f"{name} must lie in [2000-01-01T00:00:00Z, 2200-01-01T00:00:00Z)")
    if start is not None and end is not None and end <= start:
        raise ValueError("scheduled_end must be after scheduled_start")
    return event


AnyEvent = OrderEvent | OnboardingEvent | StreamStatsEvent | ChannelEvent
EVENT_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(
    Annotated[
        OrderEvent | OnboardingEvent | StreamStatsEvent | Annotated[ChannelEvent, AfterValidator(_schedule_in_order)],
        Field(discriminator="schema"),
    ]
)
