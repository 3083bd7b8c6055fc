"""``GET /v1/connectors`` (contract §7, scope ``all`` only): each shop's pushes, bad
signatures, reconciliation watermark, recovered steps and last error.

The connectors are a component beside the API (connectors/); the runtime hands their
status over as a callable (``CONNECTOR_STATUS``), so this package needs none of them.
"""

from __future__ import annotations

from aiohttp import web

from api.auth import principal_of
from api.context import CONNECTOR_STATUS
from api.errors import ApiError
from api.responses import json_response

routes = web.RouteTableDef()


@routes.get("/v1/connectors")
async def connectors(request: web.Request) -> web.Response:
    principal = principal_of(request)
    if not principal.scope.is_all:
        raise ApiError(403, "connectors are listed for a token of scope all only")
    status = request.app.get(CONNECTOR_STATUS)
    return json_response(await status() if status is not None else {"connectors": []})
