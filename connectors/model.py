"""What every platform module produces: a verified push (:class:`Notice`) and an order as
the platform's API tells it (:class:`PlatformOrder`), in platform-neutral terms.

The platform modules (``douyin.py``, ``kuaishou.py``) turn their wire formats into these;
everything after (the raw topic, the worker, the mapping to ``order.v1``, reconciliation)
knows nothing of any platform. Ids are exact strings, money integer fen, times aware UTC.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.money import loads


@dataclass(frozen=True, slots=True)
class Notice:
    """One verified push message: which shop, which order, what the platform said.

    ``kind`` is the neutral step the message reports (``created``, ``paid``, ``cancelled``,
    ``refunded``, or ``other`` for tags we only use as a hint to refresh the order);
    ``message_id`` is the platform's own id (抖店 ``msg_id``, 快手 ``eventId``).
    ``data`` is the platform's payload, kept for the worker's platform module."""

    platform: str
    shop_id: str
    order_id: str
    kind: str
    message_id: str
    received_at: datetime
    refund_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> bytes:
        return shop_key(self.platform, self.shop_id)

    def encode(self) -> bytes:
        """The raw topic's value (ids as strings, so no reader ever rounds them)."""
        return json.dumps(
            {"v": 1, "platform": self.platform, "shop_id": self.shop_id, "order_id": self.order_id,
             "kind": self.kind, "message_id": self.message_id, "refund_id": self.refund_id,
             "received_at": self.received_at.isoformat(), "data": self.data},
            ensure_ascii=False, separators=(",", ":"), default=str,
        ).encode()  # fmt: skip

    @staticmethod
    def decode(value: bytes) -> Notice:
        """Raises ValueError (or KeyError/TypeError) for a value that is not a Notice."""
        d = loads(value)
        if not isinstance(d, dict) or d.get("v") != 1:
            raise ValueError("not a connector push record")
        return Notice(
            platform=str(d["platform"]), shop_id=str(d["shop_id"]), order_id=str(d["order_id"]),
            kind=str(d["kind"]), message_id=str(d["message_id"]),
            received_at=datetime.fromisoformat(d["received_at"]),
            refund_id=None if d.get("refund_id") is None else str(d["refund_id"]),
            data=d.get("data") or {},
        )  # fmt: skip


def shop_key(platform: str, shop_id: str) -> bytes:
    """The raw topic's key: a shop's pushes share a partition, whose owner reconciles it."""
    return f"{platform}:{shop_id}".encode()


@dataclass(frozen=True, slots=True)
class OrderLine:
    sku: str
    name: str
    quantity: int
    unit_price_fen: int


@dataclass(frozen=True, slots=True)
class Refund:
    """A refund that succeeded: its id, when, and how much (partial refunds each count)."""

    refund_id: str
    refunded_at: datetime
    amount_fen: int


@dataclass(frozen=True, slots=True)
class PlatformOrder:
    """An order as the platform's API knows it now.

    ``room_id`` is the live room it was placed in, None outside any live room.
    ``paid_at`` is None while unpaid (and for an order cancelled before paying)."""

    order_id: str
    shop_id: str
    created_at: datetime
    order_fen: int
    lines: tuple[OrderLine, ...]
    room_id: str | None = None
    paid_at: datetime | None = None
    paid_fen: int = 0
    refunds: tuple[Refund, ...] = ()
    updated_at: datetime | None = None


def from_seconds(value: Any) -> datetime:
    """Unix seconds (int or digit string) → aware UTC."""
    return datetime.fromtimestamp(int(value), UTC)


def from_millis(value: Any) -> datetime:
    """Unix milliseconds (int or digit string) → aware UTC, exact to the millisecond."""
    ms = int(value)
    return datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=(ms % 1000) * 1000)
