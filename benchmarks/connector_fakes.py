"""The 抖店 side of ``livesales bench connectors``: a fake fast enough to measure against, and
what the benchmark asks of it (the connectors file naming its shops, signed push bodies, the
reconciled shop's orders).

:class:`FastDouyin` answers as ``localplatforms/douyin.py``'s ``FakeDouyin`` does, but
``FakeDouyin`` scans every order on every call, fine for tests of hundreds but at 100,000
orders the fake would be what is measured. The reconciled shop's fake runs in a process of
its own (``python -m benchmarks.connector_fakes --shop N``, :func:`fake_shop`), so its pages
cost the platform's CPU, not the connector's.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from localplatforms.douyin import FakeDouyin
from localplatforms.platform import FakeOrder, FakeRefund

ROOT = Path(__file__).resolve().parents[1]
APP_KEY, APP_SECRET = "bench-dy-app", "bench-dy-secret"  # the fake's own, on loopback
PUSH_SHOPS = ("4100004", "4100002", "4100000", "4100007")  # one on each raw partition (murmur2 of the key)
RECONCILE_SHOP = "4200000"
ROOM = "7001"  # not registered: its orders count under douyin-room-7001
BIG = 6_917_000_000_000_000_000  # order ids beyond 2^53, as 抖店's are

Push = tuple[bytes, dict[str, str]]  # a body and its headers (app-id, event-sign)


def epoch_secs(t: datetime) -> int:
    return int(t.timestamp())


class FastDouyin(FakeDouyin):
    """``FakeDouyin`` with its two selections indexed per shop (every check and answer is
    the parent's), in time that does not grow with the shop's order count, so the benchmark
    measures the connector rather than the fake. The index is rebuilt when orders were
    added (the benchmark never changes one after)."""

    def __init__(self, app_key: str, app_secret: str) -> None:
        super().__init__(app_key, app_secret)
        self._indexed = -1
        self._by_update: dict[str, tuple[list[int], list[FakeOrder]]] = {}
        self._refunds: dict[str, tuple[list[int], list[tuple[FakeOrder, FakeRefund]]]] = {}

    def index(self) -> None:
        orders: dict[str, list[FakeOrder]] = {}
        refunds: dict[str, list[tuple[FakeOrder, FakeRefund]]] = {}
        for o in self.orders.values():
            orders.setdefault(o.shop_id, []).append(o)
            refunds.setdefault(o.shop_id, []).extend((o, r) for r in o.refunds)
        self._by_update = {}
        for shop, found in orders.items():
            found.sort(key=lambda o: (o.updated_at, o.order_id))
            self._by_update[shop] = ([epoch_secs(o.updated_at) for o in found], found)
        self._refunds = {}
        for shop, pairs in refunds.items():
            pairs.sort(key=lambda p: p[1].updated_at)
            self._refunds[shop] = ([epoch_secs(r.updated_at) for _, r in pairs], pairs)
        self._indexed = len(self.orders)

    def routes(self) -> web.RouteTableDef:
        """The API, and ``GET /_calls``: the calls by method (when the fake runs in a child)."""
        routes = super().routes()

        @routes.get("/_calls")
        async def calls(request: web.Request) -> web.Response:
            return web.json_response(dict(self.calls))

        return routes

    def updated_orders(self, shop: str, lo: int, hi: int) -> list[FakeOrder]:
        if self._indexed != len(self.orders):
            self.index()
        keys, ordered = self._by_update.get(shop, ([], []))
        return ordered[bisect.bisect_left(keys, lo) : bisect.bisect_right(keys, hi)]

    def updated_refunds(self, shop: str, lo: int, hi: int) -> list[tuple[FakeOrder, FakeRefund]]:
        if self._indexed != len(self.orders):
            self.index()
        keys, pairs = self._refunds.get(shop, ([], []))
        return pairs[bisect.bisect_left(keys, lo) : bisect.bisect_right(keys, hi)]


def connectors_json(url: str, shops: Sequence[str]) -> dict[str, Any]:
    """The connectors file (inline secrets: a loopback fake's)."""
    return {"connectors": [{
        "platform": "douyin", "app_key": APP_KEY, "app_secret": APP_SECRET, "api_base": url,
        "shops": [{"shop_id": s, "merchant_id": f"bench-firm-{s}",
                   "region": {"district": "宁海县", "township": "长街镇"}} for s in shops],
    }]}  # fmt: skip


def push_orders(fake: FastDouyin, first: int, pushes: int) -> list[Push]:
    """``pushes`` signed push bodies of one message each (created, then paid, per order),
    for orders created on the fake; the orders last updated two days ago (outside the first
    reconciliation window a consume process runs, so it leaves them to the push path), spread
    over the push shops."""
    at = datetime.now(UTC) - timedelta(days=2)
    for i in range(first, first + (pushes + 1) // 2):
        oid, t = str(BIG + i), at + timedelta(milliseconds=i)
        fake.create(FakeOrder(oid, PUSH_SHOPS[i % len(PUSH_SHOPS)], t,
                              [("clam-2.5kg", "长街蛏子 2.5kg 装", 1 + i % 3, 6800)], ROOM))  # fmt: skip
        fake.pay(oid, t + timedelta(seconds=30))
        fake.orders[oid].updated_at = t + timedelta(seconds=30)
    out = []
    for record in fake.take_outbox()[:pushes]:
        body = json.dumps([record]).encode()
        out.append((body, fake.signed(body)))
    return out


def shop_orders(fake: FastDouyin, n: int, seed: int = 7) -> int:
    """``n`` orders of the reconciled shop updated evenly over the last day (inside the first
    window, which ends 3 min before now), no pushes; the events they imply."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    start, span = now - timedelta(seconds=86_400 - 120), 86_400 - 120 - 600
    events = 0
    for i in range(n):
        t = start + timedelta(seconds=(i + 0.5) * span / n)
        oid = str(BIG + 50_000_000 + i)
        o = FakeOrder(oid, RECONCILE_SHOP, t - timedelta(seconds=60),
                      [(f"sku{rng.randrange(4)}", "长街蛏子", rng.randint(1, 3), rng.choice([1990, 2990, 5800]))],
                      ROOM, updated_at=t)  # fmt: skip
        events += 1
        if rng.random() < 0.9:
            o.paid_at = t - timedelta(seconds=30)
            events += 1
            if rng.random() < 0.1:
                o.refunds.append(FakeRefund(str(BIG + 90_000_000 + i), o.value_fen, t, updated_at=t))
                events += 1
        fake.orders[oid] = o
    fake.index()
    return events


async def serve_shop(n: int) -> None:
    """``python -m benchmarks.connector_fakes --shop N``: the reconciled shop's fake in a process
    of its own, as the platform is (its pages cost its CPU, not the connector's); prints
    ``listening on <url> events <implied>`` and serves until terminated."""
    fake = FastDouyin(APP_KEY, APP_SECRET)
    events = shop_orders(fake, n)
    url = await fake.start()
    print(f"listening on {url} events {events}", flush=True)
    await asyncio.Event().wait()


@asynccontextmanager
async def fake_shop(n: int, log: Path) -> AsyncIterator[tuple[str, int, int]]:
    """(URL, events implied, pid) of :func:`serve_shop` in a child; terminated on exit."""
    with open(log, "ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.connector_fakes", "--shop", str(n)], cwd=ROOT,  # noqa: S603
                                stdout=subprocess.PIPE, stderr=err)  # fmt: skip
    try:
        assert proc.stdout is not None  # noqa: S101 - stdout=PIPE
        line = (await asyncio.to_thread(proc.stdout.readline)).decode()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the fake shop did not start: {line!r}; {log.read_text(errors='replace')[-2000:]}")
        _, _, url, _, events = line.split()
        yield url, int(events), proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--shop":
        asyncio.run(serve_shop(int(sys.argv[2])))
