"""`make demo` posts the festival's 开播 to the 长街镇 work group's robot (demo/robot.py), once."""

from __future__ import annotations

from typing import Any

from tests.conftest import wait_for
from tests.demo.conftest import Demo


async def test_the_festival_going_live_reaches_the_township_robot(demo: Demo) -> None:
    async def posted() -> list[dict[str, Any]] | None:
        rows: list[dict[str, Any]] = (await demo.get("/v1/notifications?limit=100"))["notifications"]
        live = [r for r in rows if r["kind"] == "live" and r["state"] == "sent"]
        return live or None

    live = await wait_for(posted, timeout=60, interval=0.5, what="the 开播 post recorded as sent")
    assert {r["robot"] for r in live} == {"长街镇工作群"}
    assert len({r["channel_id"] for r in live}) == len(live)  # once per channel


async def test_the_demo_shop_sells_through_the_connector(demo: Demo) -> None:
    """demo/shop.py: a local 抖店 pushes the 桃源街道 room's orders to /connect/douyin;
    they count under its registered channel, and 数据接入 reports the shop."""
    from demo.shop import CHANNEL_ID, SHOP_ID

    async def sold() -> dict[str, Any] | None:
        shops: list[dict[str, Any]] = (await demo.get("/v1/connectors"))["connectors"]
        summary = await demo.get(f"/v1/channels/{CHANNEL_ID}/summary")
        if shops and shops[0]["pushes"] and summary["paid_orders"]:
            return shops[0]
        return None

    shop = await wait_for(sold, timeout=60, interval=0.5, what="a pushed order counted under the shop's room")
    assert shop["platform"] == "douyin" and shop["shop_id"] == SHOP_ID and shop["bad_signatures"] == 0
