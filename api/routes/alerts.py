"""``GET /v1/channels/{id}/alerts``: the channel's alert episodes, scope-checked like its other routes."""

from __future__ import annotations

from aiohttp import web

from api.context import CONFIG, STORE
from api.queries.alerts import alerts_of
from api.responses import json_response
from api.routes.channels import resolve

routes = web.RouteTableDef()


@routes.get("/v1/channels/{channel_id}/alerts")
async def alerts(request: web.Request) -> web.Response:
    _, channel_id, tp = await resolve(request)  # 404 outside the scope
    body = await alerts_of(request.app[STORE], channel_id, request.app[CONFIG].thresholds, tp)
    return json_response({"channel_id": channel_id, "alerts": body})
