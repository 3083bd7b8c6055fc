"""``GET /v1/regions``: the cadre's overview of their township or district (contract §6)."""

from __future__ import annotations

from aiohttp import web

from api.auth import principal_of
from api.context import STORE
from api.errors import ApiError
from api.params import strict_time_params
from api.queries import regions as q
from api.responses import json_response

routes = web.RouteTableDef()


@routes.get("/v1/regions")
async def regions(request: web.Request) -> web.Response:
    principal = principal_of(request)
    tp = strict_time_params(request)
    level = request.query.get("level", "township")
    if level not in q.LEVELS:
        raise ApiError(400, f"level must be one of: {', '.join(q.LEVELS)}")
    body = await q.regions(request.app[STORE], principal.scope, level, tp)
    return json_response({"level": level, "regions": body})
