"""A fast, stricter mirror of ``schemas.events`` for the consumer's hot path (msgspec).

Why two definitions: pydantic validates a nested order in ~6.5 µs on these machines and
the consumer's whole budget at 100,000 events/s is ~10 µs of one core; msgspec decodes
and checks the same event in ~2.5 µs (docs/BENCHMARKS.md). Pydantic stays the single
authority: this mirror may only ever *accept less*. Anything it does not accept outright
(a bad event, or a good one in an unusual shape: an escaped control character, a
non-printable identifier, a timestamp out of range) returns ``None`` and the caller asks
pydantic, which accepts it or names the contract error code. ``tests/schemas`` checks on
thousands of mutated events that whatever this accepts, pydantic accepts with the same
values; regexes are replaced by ``str`` methods because Python's ``re`` would cost more
than the whole decode.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from schemas.events import EARLIEST, FUTURE_SLACK, MAX_MONEY_FEN, SCHEDULE_LATEST

_MARGIN = timedelta(seconds=1)
_SCHEDULE_LO, _SCHEDULE_HI = EARLIEST + _MARGIN, SCHEDULE_LATEST - _MARGIN
SLUG_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"

Ident = Annotated[str, Meta(min_length=1, max_length=128)]  # + isprintable(), see _ident_ok
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Slug = Annotated[str, Meta(min_length=1, max_length=32)]  # + charset, see _slug_ok
Money = Annotated[int, Meta(ge=0, le=MAX_MONEY_FEN)]
Count = Annotated[int, Meta(ge=0)]
Aware = Annotated[datetime, Meta(tz=True)]


class Region(Struct, frozen=True, forbid_unknown_fields=True):
    district: Name
    township: Name | UnsetType = UNSET


class Item(Struct, frozen=True, forbid_unknown_fields=True):
    sku: Ident
    name: Name
    quantity: Annotated[int, Meta(ge=1, le=100_000)]
    unit_price_fen: Money
    weight_g: Annotated[int, Meta(ge=0, le=10**7)] | UnsetType = UNSET


# Identifiers are checked with str.isprintable(): False for every control character (and
# for a few characters pydantic allows, which then simply take the slow path).


class FastOrder(Struct, frozen=True, forbid_unknown_fields=True, tag_field="schema", tag="order.v1"):
    event_id: Ident
    occurred_at: Aware
    order_id: Ident
    status: Literal["created", "paid", "refunded"]
    channel_id: Ident
    platform: Slug
    merchant_id: Ident
    region: Region
    items: Annotated[list[Item], Meta(min_length=1, max_length=100)]
    amount_fen: Money
    refund_id: Ident | UnsetType = UNSET  # v1.2

    def ok(self) -> bool:
        if not (
            self.event_id.isprintable()
            and self.order_id.isprintable()
            and (self.refund_id is UNSET or self.refund_id.isprintable())
            and self.channel_id.isprintable()
            and self.merchant_id.isprintable()
            and _slug_ok(self.platform)
        ):
            return False
        for item in self.items:  # noqa: SIM110 - all(generator) costs ~0.5 µs more per event
            if not item.sku.isprintable():
                return False
        return True

    def step(self) -> tuple[str, ...]:
        if self.status == "refunded" and self.refund_id is not UNSET:
            return (self.platform, self.order_id, self.status, self.refund_id)
        return (self.platform, self.order_id, self.status)


class FastOnboarding(Struct, frozen=True, forbid_unknown_fields=True, tag_field="schema", tag="onboarding.v1"):
    event_id: Ident
    occurred_at: Aware
    firm_id: Ident
    firm_name: Name
    platform: Slug
    district: Name
    export_oriented: bool
    status: Literal["onboarded", "withdrawn"]

    def ok(self) -> bool:
        return self.event_id.isprintable() and self.firm_id.isprintable() and _slug_ok(self.platform)

    def step(self) -> tuple[str, ...]:
        return (self.platform, self.firm_id, self.status)


class FastStreamStats(Struct, frozen=True, forbid_unknown_fields=True, tag_field="schema", tag="stream_stats.v1"):
    event_id: Ident
    occurred_at: Aware
    channel_id: Ident
    platform: Slug
    viewers_online: Count
    views_total: Count

    def ok(self) -> bool:
        return self.event_id.isprintable() and self.channel_id.isprintable() and _slug_ok(self.platform)

    def step(self) -> tuple[str, ...]:
        return ()


class FastChannel(Struct, frozen=True, forbid_unknown_fields=True, tag_field="schema", tag="channel.v1"):
    event_id: Ident
    occurred_at: Aware
    channel_id: Ident
    platform: Slug
    title: Name
    region: Region
    host: Name | UnsetType = UNSET
    scheduled_start: Aware | UnsetType = UNSET
    scheduled_end: Aware | UnsetType = UNSET
    platform_room_id: Ident | UnsetType = UNSET  # v1.2

    def ok(self) -> bool:
        if not (self.event_id.isprintable() and self.channel_id.isprintable() and _slug_ok(self.platform)):
            return False
        if self.platform_room_id is not UNSET and not self.platform_room_id.isprintable():
            return False
        start, end = self.scheduled_start, self.scheduled_end
        # near a bound or out of order (within msgspec's rounding): pydantic decides
        for at in (start, end):
            if at is not UNSET and not _SCHEDULE_LO < at < _SCHEDULE_HI:
                return False
        return start is UNSET or end is UNSET or end - start > _MARGIN

    def step(self) -> tuple[str, ...]:
        return ()


FastEvent = FastOrder | FastOnboarding | FastStreamStats | FastChannel
SCHEMA_OF: dict[type[FastEvent], str] = {
    FastOrder: "order.v1",
    FastOnboarding: "onboarding.v1",
    FastStreamStats: "stream_stats.v1",
    FastChannel: "channel.v1",
}


def _slug_ok(value: str) -> bool:
    return value.isascii() and not value.strip(SLUG_CHARS)


class _Tag(Struct):
    schema: str


class FastChecker:
    """Decode-and-check one value, or ``None``: "not sure, ask pydantic"."""

    def __init__(self) -> None:
        self._decoder: msgspec.json.Decoder[FastEvent] = msgspec.json.Decoder(FastEvent)
        self._tag: msgspec.json.Decoder[_Tag] = msgspec.json.Decoder(_Tag)

    def schema_of(self, value: bytes) -> str | None:
        """The ``schema`` string of a value that is a well-formed JSON object, else None.
        For the dead-letter path: an object whose schema is none of ours is
        ``unknown_schema`` for pydantic too, which takes ~20 µs to say so."""
        try:
            return self._tag.decode(value).schema
        except (msgspec.DecodeError, ValueError, RecursionError):
            return None

    def check(self, value: bytes, earliest: datetime, latest: datetime) -> FastEvent | None:
        """``earliest``/``latest``: from ``bounds(now)``, computed once per batch."""
        try:
            event = self._decoder.decode(value)
        except (msgspec.DecodeError, ValueError, RecursionError):  # ValueError: bad UTF-8
            return None
        if not event.ok():
            return None
        if not earliest < event.occurred_at < latest:
            return None
        return event

    def decode(self, value: bytes) -> FastEvent | None:
        """``check`` without the time bounds: the caller tells a clearly out-of-range time
        (a dead letter pydantic would give the same code) from one near a bound."""
        try:
            event = self._decoder.decode(value)
        except (msgspec.DecodeError, ValueError, RecursionError):
            return None
        return event if event.ok() else None

    @staticmethod
    def outer_bounds(now: datetime) -> tuple[datetime, datetime]:
        """Times outside these, a second beyond the contract's range at both ends, are
        out of range whatever msgspec's and pydantic's rounding (see ``bounds``)."""
        return EARLIEST - _MARGIN, now + FUTURE_SLACK + _MARGIN

    @staticmethod
    def bounds(now: datetime) -> tuple[datetime, datetime]:
        """The accepted occurred_at range, a second inside the contract's at both ends:
        msgspec rounds sub-microsecond digits where pydantic truncates, so right at a
        bound only pydantic may decide."""
        return EARLIEST + _MARGIN, now + FUTURE_SLACK - _MARGIN
