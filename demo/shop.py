"""The demo's 抖店 shop: a second live room of the festival day, sold through the connector.

A local 抖店 (localplatforms.douyin) takes an order every few seconds in the 桃源街道 live
room and pushes it to the demo's ``POST /connect/douyin``, losing about one push in ten as
a real platform sometimes does. Reconciliation pulls the shop's order list (every 30 s in
the demo, windows ending 3 minutes back), so the 数据接入 page shows the lost steps
recovered, and the room's screens stay exact (contract §7).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from localplatforms.douyin import FakeDouyin
from localplatforms.platform import FakeOrder

APP_KEY, APP_SECRET = "demo-app", "demo-secret"
SHOP_ID = "880101"  # 抖店 shop ids are numbers
ROOM_ID = "7301"
CHANNEL_ID = "nh-taoyuan-seafood-live"
ITEMS = [("clam-1kg", "长街蛏子 1kg 尝鲜装", 3980), ("shrimp-500g", "宁海白虾 500g", 5800),
         ("crab-2", "三门青蟹 2 只", 12800)]  # fmt: skip


def registry_event() -> dict[str, Any]:
    """The room's channel (channel.v1), so its orders count under a named sale."""
    return {"schema": "channel.v1", "event_id": f"{CHANNEL_ID}-reg", "occurred_at": datetime.now(UTC).isoformat(),
            "channel_id": CHANNEL_ID, "platform": "douyin", "title": "桃源街道海鲜直播间", "host": "桃源小海",
            "region": {"district": "宁海县", "township": "桃源街道"}, "platform_room_id": ROOM_ID}  # fmt: skip


def write_connectors_file(path: Path, api_base: str) -> Path:
    doc = {"connectors": [{"platform": "douyin", "app_key": APP_KEY, "app_secret": APP_SECRET, "api_base": api_base,
                           "shops": [{"shop_id": SHOP_ID, "merchant_id": "taoyuan-coop",
                                      "region": {"district": "宁海县", "township": "桃源街道"}}]}]}  # fmt: skip
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


class DemoShop:
    def __init__(self, every_s: float = 4.0, loss: float = 0.1, seed: int = 2020) -> None:
        self.fake = FakeDouyin(APP_KEY, APP_SECRET, seed=seed)
        self.fake.faults.loss = loss
        self.every_s = every_s
        self.rng = random.Random(seed)  # noqa: S311 - what a customer buys: not a secret
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> str:
        """Start the platform's API; returns its root (the connectors file's ``api_base``)."""
        return await self.fake.start()

    def sell(self, push_url: str) -> None:
        self._task = asyncio.create_task(self._sell(push_url), name="demo-shop")

    async def _sell(self, push_url: str) -> None:
        n = 0
        while True:
            n += 1
            now = datetime.now(UTC)
            sku, name, price = self.rng.choice(ITEMS)
            order = FakeOrder(f"69170{n:012d}", SHOP_ID, now, [(sku, name, self.rng.randint(1, 3), price)], ROOM_ID)
            self.fake.create(order)
            self.fake.pay(order.order_id, now)
            with contextlib.suppress(Exception):  # the API not up yet, or stopping: the list has it
                await self.fake.send_pushes(push_url)
            await asyncio.sleep(self.every_s)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.fake.stop()
