"""``GET /v1/notifications?limit`` (contract §8, scope ``all`` only): the latest posts.

Mounted on the API app by the runtime (livesales.runtime), so the api package need not
know about robots; authentication and errors are the API's own.
"""

from __future__ import annotations

from aiohttp import web

from api.auth import principal_of
from api.context import STORE
from api.errors import ApiError
from api.params import int_param
from api.responses import json_response
from notify.records import MAX_LIMIT, latest

routes = web.RouteTableDef()


@routes.get("/v1/notifications")
async def notifications(request: web.Request) -> web.Response:
    principal = principal_of(request)
    if not principal.scope.is_all:
        raise ApiError(403, "notifications are listed for a token of scope all only")
    limit = int_param(request, "limit", 100, 1, MAX_LIMIT)
    return json_response({"notifications": await latest(request.app[STORE], limit)})
