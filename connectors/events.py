"""A platform order → its ``order.v1`` events (contract §7), the one mapping for every platform.

Each order becomes ``created`` (at its creation, the order value), ``paid`` (at its pay time,
the amount paid) and one ``refunded`` per successful refund (at its success time, the amount,
``refund_id``), with ``event_id`` = ``{platform}:{order id}:{status}[:{refund_id}]``: a push
and a pull of one step are one event, so §3's dedupe keeps a step counted once whoever saw it
first. Every event is checked by ``processors.validate`` (the consumer's own rules) before
it may be published: the connector never puts on the orders topic what the service would
dead-letter.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from connectors.config import AppConfig, ShopConfig
from connectors.model import PlatformOrder
from processors.store import ClickHouse, StorageError
from processors.validate import Rejection, validate_value

log = logging.getLogger(__name__)

MAX_ITEMS = 100
MAX_NAME = 200


class RoomDirectory(Protocol):
    """Which registered channel (``channel.v1`` ``platform_room_id``) a live room is."""

    async def channel_for(self, platform: str, room_id: str) -> str | None: ...


class StaticRooms:
    """A fixed room → channel map (tests; a deployment without a registry)."""

    def __init__(self, rooms: Mapping[tuple[str, str], str] | None = None) -> None:
        self.rooms = dict(rooms or {})

    async def channel_for(self, platform: str, room_id: str) -> str | None:
        return self.rooms.get((platform, room_id))


# Per channel its latest registry entry wins (contract §3); a room then belongs to the
# channel whose latest entry names it most recently.
_ROOMS_SQL = """
SELECT platform, room, argMax(channel_id, at) AS channel_id FROM (
    SELECT channel_id, argMax(platform, (occurred_at, event_id)) AS platform,
           argMax(ifNull(toString(platform_room_id), ''), (occurred_at, event_id)) AS room,
           max((occurred_at, event_id)) AS at
    FROM channel_registry GROUP BY channel_id
) WHERE room != '' GROUP BY platform, room
"""


class RegistryRooms:
    """Rooms from the channel registry in ClickHouse (``channel.v1`` ``platform_room_id``,
    migration 12), re-read at most every ``ttl_s``, and on a miss at most every ``miss_s``:
    a room registered a moment before its first order is found at once, not after ``ttl_s``
    (its orders would otherwise land on ``{platform}-room-{id}`` for up to ``ttl_s``), while
    a flood of orders from unregistered rooms costs one registry read a second, not one each."""

    def __init__(
        self, store: ClickHouse, ttl_s: float = 30.0, miss_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.miss_s = miss_s
        self.clock = clock
        self._rooms: dict[tuple[str, str], str] = {}
        self._read_at = float("-inf")

    async def channel_for(self, platform: str, room_id: str) -> str | None:
        age = self.clock() - self._read_at
        if age > self.ttl_s or ((platform, room_id) not in self._rooms and age > self.miss_s):
            await self.refresh()
        return self._rooms.get((platform, room_id))

    async def refresh(self) -> None:
        try:
            rows = await self.store.query(_ROOMS_SQL)
        except StorageError as exc:  # keep the last good map; try again next time
            log.warning("reading live rooms from the channel registry failed: %s", exc)
            return
        self._rooms = {(str(r["platform"]), str(r["room"])): str(r["channel_id"]) for r in rows}
        self._read_at = self.clock()


def event_id(platform: str, order_id: str, status: str, refund_id: str | None = None) -> str:
    base = f"{platform}:{order_id}:{status}"
    return f"{base}:{refund_id}" if refund_id is not None else base


def _at(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Step:
    """One ``order.v1`` event, ready to publish: its id, its order (the Kafka key) and value."""

    event_id: str
    order_id: str
    channel_id: str
    value: bytes


async def channel_of(order: PlatformOrder, app: AppConfig, shop: ShopConfig, rooms: RoomDirectory) -> str | None:
    """Contract §7: the room's registered channel, else ``{platform}-room-{room}``; outside
    any room ``{platform}-shop-{shop}``, or None (skip) when the shop is ``live_only``."""
    if order.room_id:
        return await rooms.channel_for(app.platform, order.room_id) or f"{app.platform}-room-{order.room_id}"
    if shop.live_only:
        return None
    return f"{app.platform}-shop-{shop.shop_id}"


def _items(order: PlatformOrder) -> list[dict[str, Any]]:
    items = [
        {"sku": ln.sku, "name": ln.name[:MAX_NAME], "quantity": ln.quantity, "unit_price_fen": ln.unit_price_fen}
        for ln in order.lines[:MAX_ITEMS]
    ]
    if not items:  # order.v1 needs one item: the order itself, at its value
        items = [{"sku": f"order-{order.order_id}", "name": "订单", "quantity": 1, "unit_price_fen": order.order_fen}]
    return items


async def order_steps(
    order: PlatformOrder, app: AppConfig, shop: ShopConfig, rooms: RoomDirectory, now: datetime | None = None
) -> tuple[list[Step], list[str]]:
    """The order's steps as valid ``order.v1`` events, and the problems of those refused."""
    channel = await channel_of(order, app, shop, rooms)
    if channel is None:
        return [], []
    region: dict[str, str] = {"district": shop.region.district}
    if shop.region.township:
        region["township"] = shop.region.township
    common = {"schema": "order.v1", "order_id": order.order_id, "channel_id": channel, "platform": app.platform,
              "merchant_id": shop.merchant_id, "region": region, "items": _items(order)}  # fmt: skip
    raw: list[dict[str, Any]] = [
        {**common, "event_id": event_id(app.platform, order.order_id, "created"), "status": "created",
         "occurred_at": _at(order.created_at), "amount_fen": order.order_fen},
    ]  # fmt: skip
    if order.paid_at is not None:
        raw.append({**common, "event_id": event_id(app.platform, order.order_id, "paid"), "status": "paid",
                    "occurred_at": _at(order.paid_at), "amount_fen": order.paid_fen})  # fmt: skip
    for r in order.refunds:
        raw.append({**common, "event_id": event_id(app.platform, order.order_id, "refunded", r.refund_id),
                    "status": "refunded", "occurred_at": _at(r.refunded_at), "amount_fen": r.amount_fen,
                    "refund_id": r.refund_id})  # fmt: skip
    at = now or datetime.now(UTC)
    steps: list[Step] = []
    problems: list[str] = []
    for ev in raw:
        value = json.dumps(ev, ensure_ascii=False, separators=(",", ":")).encode()
        checked = validate_value(value, at)
        if isinstance(checked, Rejection):
            problems.append(f"{ev['event_id']}: {checked.code}: {checked.message}")
            continue
        steps.append(Step(ev["event_id"], order.order_id, channel, value))
    return steps, problems
