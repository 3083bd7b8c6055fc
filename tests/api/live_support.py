"""Helpers for the live-stream tests: read SSE updates, build an app with live settings."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.live.hub import LiveHub
from api.routes.live import HUB
from ground.metrics import Metrics
from ground.settings import Settings
from livesales.wiring import api_config
from processors.store import ClickHouse
from tests.support.settings import tuned

Client = TestClient[Any, Any]
MakeClient = Callable[..., AbstractAsyncContextManager[Client]]


async def next_update(resp: Any, timeout: float = 10.0) -> dict[str, Any]:
    """Read SSE lines until one complete ``update`` event; fail after ``timeout``."""

    async def read() -> dict[str, Any]:
        event, data = None, []
        while True:
            raw = await resp.content.readline()
            if not raw:
                raise EOFError("the stream ended")
            line = raw.decode().rstrip("\n")
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data.append(line.split(":", 1)[1].strip())
            elif line == "" and event == "update":
                parsed: dict[str, Any] = json.loads("\n".join(data))
                return parsed

    return await asyncio.wait_for(read(), timeout)


async def paid_reaches(reader: Any, n: int, timeout: float = 5.0) -> dict[str, Any]:
    """Read updates until one shows ``n`` paid orders; return it. A frame may differ from the last in
    more than the count, so the one before ``n`` can come again: a computation whose
    queries straddle an insert (summary before it, minutes after) shows a mixed state,
    and the next poll sees the change and sets it right."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        update = await next_update(reader, timeout=max(left, 0.01))
        paid = update["summary"]["paid_orders"]
        assert paid <= n, f"an update showed {paid} paid orders before the {n}th was stored"
        if paid == n:
            return update


def hub_of(client: Client) -> LiveHub:
    return client.server.app[HUB]


def sample(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.registry.get_sample_value(name, labels or {}) or 0.0


def client_factory(api_settings: Settings, store: ClickHouse) -> Callable[..., AbstractAsyncContextManager[Client]]:
    """``async with make(live_poll_ms=100, ...) as client``: an app over ``store`` with
    those settings changed; its Metrics are ``client.server.app[METRICS]``."""

    @asynccontextmanager
    async def make(**changes: Any) -> AsyncIterator[Client]:
        settings = tuned(api_settings, **changes)
        app = create_app(api_config(settings), store, Metrics(), None, lambda: True)
        async with TestClient(TestServer(app)) as c:
            yield c

    return make
