"""``GET /v1/labels``: the display names of api.labels, so the dashboard reads the same table as the exports."""

from __future__ import annotations

from aiohttp import web

from api import labels
from api.auth import principal_of
from api.responses import json_response

routes = web.RouteTableDef()


@routes.get("/v1/labels")
async def get_labels(request: web.Request) -> web.Response:
    principal_of(request)  # any valid token; the table holds no data of any scope
    return json_response(labels.as_json(), headers={"Cache-Control": "private, max-age=300"})
