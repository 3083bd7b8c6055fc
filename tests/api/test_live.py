"""The live stream pushes an update when a new order is stored, without a reload."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp.test_utils import TestClient

from processors.store import ClickHouse
from tests.api.conftest import C25, auth, order, store_events

Client = TestClient[Any, Any]


async def next_update(resp: Any, timeout: float = 10.0) -> dict[str, Any]:
    """Read SSE lines until one complete ``update`` event; fail after ``timeout``."""

    async def read() -> dict[str, Any]:
        event, data = None, []
        while True:
            line = (await resp.content.readline()).decode().rstrip("\n")
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data.append(line.split(":", 1)[1].strip())
            elif line == "" and event == "update":
                parsed: dict[str, Any] = json.loads("\n".join(data))
                return parsed

    return await asyncio.wait_for(read(), timeout)


async def test_live_pushes_new_orders(client: Client, loaded: ClickHouse) -> None:
    resp = await client.get("/v1/channels/nh-live/live", headers=auth("township"))
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    first = await next_update(resp)
    assert first["summary"]["paid_orders"] == 4 and first["minutes"]["minutes"]
    await store_events(loaded, [order("a-o9-p", "o9", "paid", "2020-02-29T10:30:00+08:00", "nh-live", [C25])])
    second = await next_update(resp, timeout=5.0)
    assert second["summary"]["paid_orders"] == 5 and second["summary"]["gmv_fen"] == 59600 + 6800
    assert any(m["minute"] == "2020-02-29T10:30:00+08:00" for m in second["minutes"]["minutes"])
    resp.close()
