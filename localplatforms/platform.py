"""What the fake 抖店 and 快手 share: the truth (orders, payments, refunds), a push outbox
that loses, repeats and reorders on demand, and API faults (down, slow, rate limited).

Each fake (localplatforms/douyin.py, fake_kuaishou.py) speaks its platform's format on
top of this: the push bodies and signatures, the token endpoints, the list and detail calls.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web


@dataclass
class FakeRefund:
    refund_id: str
    amount_fen: int
    success_at: datetime
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))  # when the platform recorded it


@dataclass
class FakeOrder:
    order_id: str
    shop_id: str
    created_at: datetime
    items: list[tuple[str, str, int, int]]  # sku, name, quantity, unit price fen
    room_id: str | None = None
    paid_at: datetime | None = None
    cancelled_at: datetime | None = None
    refunds: list[FakeRefund] = field(default_factory=list)
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def value_fen(self) -> int:
        return sum(q * p for _, _, q, p in self.items)


@dataclass
class Faults:
    """Switch at run time: every call and push consults these."""

    down: bool = False  # API answers 503
    slow_s: float = 0.0  # API answers after this long
    rate_per_s: float | None = None  # API refuses over this many calls a second (429 or the platform's code)
    loss: float = 0.0  # share of pushes never sent
    repeat: float = 0.0  # share of pushes sent twice
    reorder: float = 0.0  # share of pushes swapped with the next one


class FakePlatform:
    """The truth and the faults; subclasses add the wire formats and routes."""

    def __init__(self, seed: int = 1) -> None:
        self.orders: dict[str, FakeOrder] = {}
        self.faults = Faults()
        self.rng = random.Random(seed)  # noqa: S311 - which pushes to lose: faults, not secrets
        self.calls: Counter[str] = Counter()
        self.windows: list[tuple[str, str, int, int]] = []  # (method, shop, start, end) of list calls
        self.outbox: list[Any] = []  # pushes not yet sent (platform-specific payloads)
        self.lost: list[Any] = []
        self.sent = 0
        self.answers: Counter[int] = Counter()
        self._runner: web.AppRunner | None = None
        self._rate: list[float] = []
        self.url = ""

    # -- truth --------------------------------------------------------------------------
    def _touch(self, order: FakeOrder, at: datetime) -> None:
        order.updated_at = max(order.updated_at, at, datetime.now(UTC))

    def create(self, order: FakeOrder) -> FakeOrder:
        self.orders[order.order_id] = order
        self._touch(order, order.created_at)
        self.push(order, "created")
        return order

    def pay(self, order_id: str, at: datetime) -> None:
        order = self.orders[order_id]
        order.paid_at = at
        self._touch(order, at)
        self.push(order, "paid")

    def cancel(self, order_id: str, at: datetime) -> None:
        order = self.orders[order_id]
        order.cancelled_at = at
        self._touch(order, at)
        self.push(order, "cancelled")

    def refund(self, order_id: str, refund_id: str, amount_fen: int, at: datetime) -> None:
        order = self.orders[order_id]
        r = FakeRefund(refund_id, amount_fen, at)
        order.refunds.append(r)
        self._touch(order, at)
        self.push(order, "refunded", r)

    def push(self, order: FakeOrder, kind: str, refund: FakeRefund | None = None) -> None:
        raise NotImplementedError

    # -- pushes -------------------------------------------------------------------------
    def take_outbox(self) -> list[Any]:
        """The pushes to send, faults applied: some lost, some twice, some swapped."""
        out: list[Any] = []
        for payload in self.outbox:
            if self.rng.random() < self.faults.loss:
                self.lost.append(payload)
                continue
            out.append(payload)
            if self.rng.random() < self.faults.repeat:
                out.append(payload)
        for i in range(len(out) - 1):
            if self.rng.random() < self.faults.reorder:
                out[i], out[i + 1] = out[i + 1], out[i]
        self.outbox = []
        return out

    async def post(self, session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> int:
        """Send one push as the platform does; a failure is retried (up to 3 times, as 快手 says)."""
        for _ in range(4):
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    self.answers[resp.status] += 1
                    if resp.status == 200:
                        self.sent += 1
                        return resp.status
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        return 0

    # -- API guard ----------------------------------------------------------------------
    async def guard(self) -> web.Response | None:
        """Apply the API faults; a response to send instead of the real answer, or None."""
        if self.faults.slow_s:
            await asyncio.sleep(self.faults.slow_s)
        if self.faults.down:
            return web.Response(status=503, text="down")
        if self.faults.rate_per_s is not None:
            now = time.monotonic()
            self._rate = [t for t in self._rate if now - t < 1.0]
            if len(self._rate) >= self.faults.rate_per_s:
                return web.Response(status=429, text="rate limited")
            self._rate.append(now)
        return None

    def routes(self) -> web.RouteTableDef:
        raise NotImplementedError

    async def start(self) -> str:
        app = web.Application()
        app.add_routes(self.routes())
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
