"""GET /v1/connectors answers for a token of scope all only, from what the runtime hands over."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.context import CONNECTOR_STATUS
from ground.metrics import Metrics
from ground.settings import Settings
from livesales.wiring import api_config
from processors.store import ClickHouse
from tests.api.conftest import auth


async def test_scope_all_only_and_the_components_own_body(api_settings: Settings, clickhouse: ClickHouse) -> None:
    app = create_app(api_config(api_settings), clickhouse, Metrics(), None, lambda: True)
    body = {"connectors": [{"platform": "douyin", "shop_id": "s1", "pushes": 3}]}

    async def status() -> dict[str, Any]:
        return body

    app[CONNECTOR_STATUS] = status
    async with TestClient(TestServer(app)) as c:
        assert await (await c.get("/v1/connectors", headers=auth("all"))).json() == body
        assert (await c.get("/v1/connectors", headers=auth("township"))).status == 403
        assert (await c.get("/v1/connectors")).status == 401
