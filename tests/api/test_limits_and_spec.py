"""Rate limits, the OpenAPI document against the router, and responses against the spec."""

from __future__ import annotations

from typing import Any

import jsonschema
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.openapi import build_spec
from ground.metrics import Metrics
from ground.settings import Settings
from livesales.wiring import api_config
from processors.store import ClickHouse
from tests.api.conftest import auth
from tests.support.settings import tuned

Client = TestClient[Any, Any]


async def test_rate_limit_answers_429_with_retry_after(api_settings: Settings, loaded: ClickHouse) -> None:
    settings = tuned(api_settings, **{"api_rate_per_s": 1.5})  # a burst of 3; ~no refill between calls
    async with TestClient(TestServer(create_app(api_config(settings), loaded, Metrics(), None, lambda: True))) as c:
        statuses = [(await c.get("/v1/channels", headers=auth("reader"))).status for _ in range(5)]
        assert statuses[:3] == [200, 200, 200] and statuses[3] == 429
        resp = await c.get("/v1/channels", headers=auth("reader"))
        assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
        assert (await resp.json())["error"]["code"] == "rate_limited"
        # another token has its own bucket
        assert (await c.get("/v1/channels", headers=auth("district"))).status == 200



async def test_readyz_503_until_ready(api_settings: Settings, loaded: ClickHouse) -> None:
    ready = {"now": False}
    async with TestClient(TestServer(create_app(api_config(api_settings), loaded, Metrics(), None, lambda: ready["now"]))) as c:
        assert (await c.get("/readyz")).status == 503
        ready["now"] = True
        assert (await c.get("/readyz")).status == 200


async def test_every_route_is_documented(client: Client) -> None:
    spec = build_spec()
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    for route in client.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method == "HEAD" or path is None or not (path.startswith("/v1") or path in ("/healthz", "/readyz", "/metrics")):
            continue
        assert (path, route.method) in documented, f"{route.method} {path} is not in the OpenAPI document"
    served = await (await client.get("/v1/openapi.json")).json()
    assert served == spec and served["openapi"].startswith("3.1")


def _schema(spec: dict[str, Any], path: str, status: int) -> dict[str, Any]:
    schema: dict[str, Any] = spec["paths"][path]["get"]["responses"][str(status)]["content"]["application/json"]["schema"]
    return schema


async def test_responses_match_the_document(client: Client) -> None:
    spec = build_spec()
    cases = [
        ("/v1/channels", "/v1/channels", 200),
        ("/v1/channels/nh-live/minutes", "/v1/channels/{channel_id}/minutes", 200),
        ("/v1/channels/nh-live/summary", "/v1/channels/{channel_id}/summary", 200),
        ("/v1/channels/xs-live/summary", "/v1/channels/{channel_id}/summary", 200),
        ("/v1/channels/nope/summary", "/v1/channels/{channel_id}/summary", 404),
        ("/v1/pivot?dataset=onboarding&rows=export_oriented&cols=platform", "/v1/pivot", 200),
        ("/v1/pivot?dataset=orders&rows=nope", "/v1/pivot", 400),
        ("/v1/pivot?dataset=domestic_sales", "/v1/pivot", 200),
        ("/v1/pivot?dataset=domestic_sales&rows=firm_id", "/v1/pivot", 200),
        ("/v1/channels/nh-live/alerts", "/v1/channels/{channel_id}/alerts", 200),
        ("/v1/channels/nope/alerts", "/v1/channels/{channel_id}/alerts", 404),
        ("/v1/labels", "/v1/labels", 200),
    ]
    for url, path, status in cases:
        resp = await client.get(url, headers=auth("reader"))
        assert resp.status == status, url
        jsonschema.validate(await resp.json(), _schema(spec, path, status))


async def test_storage_outage_answers_503_not_500(api_settings: Settings) -> None:
    closed = ClickHouse("chdb:///never-opened")  # every query raises StorageError
    async with TestClient(TestServer(create_app(api_config(api_settings), closed, Metrics(), None, lambda: False))) as c:
        resp = await c.get("/v1/channels", headers=auth("reader"))
        assert resp.status == 503 and resp.headers["Retry-After"] == "5"
        assert (await resp.json())["error"]["code"] == "unavailable"
