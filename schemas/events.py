"""Pydantic v2 schemas of the three wire events (contract §2).

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

from pydantic import AwareDatetime, ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict

MAX_MONEY_FEN = 10**12
# occurred_at must lie in [EARLIEST, processing time + FUTURE_SLACK] (its own error code)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(hours=24)
SCHEMAS = ("order.v1", "onboarding.v1", "stream_stats.v1")

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


AnyEvent = OrderEvent | OnboardingEvent | StreamStatsEvent
EVENT_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(
    Annotated[AnyEvent, Field(discriminator="schema")]
)
