"""The cadre's view: channels, one channel's minutes and its summary."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.auth import Principal, principal_of
from api.context import STORE, json_response
from api.errors import ApiError
from api.params import TimeParams, time_params
from api.queries import channels as q

routes = web.RouteTableDef()


async def resolve(request: web.Request) -> tuple[Principal, str, dict[str, Any], TimeParams]:
    """Caller, channel id, channel attributes and time params; 404 when out of scope."""
    principal = principal_of(request)
    tp = time_params(request)
    channel_id = request.match_info["channel_id"]
    attrs = await q.channel_in_scope(request.app[STORE], channel_id, principal.scope)
    if attrs is None:
        raise ApiError(404, f"no channel {channel_id!r}")
    return principal, channel_id, attrs, tp


@routes.get("/v1/channels")
async def list_channels(request: web.Request) -> web.Response:
    principal = principal_of(request)
    tp = time_params(request)
    return json_response({"channels": await q.list_channels(request.app[STORE], principal.scope, tp)})


@routes.get("/v1/channels/{channel_id}/minutes")
async def minutes(request: web.Request) -> web.Response:
    principal, channel_id, _, tp = await resolve(request)
    rows = await q.minutes(request.app[STORE], channel_id, principal.scope, tp)
    return json_response({"channel_id": channel_id, "tz": tp.tz, "minutes": rows})


@routes.get("/v1/channels/{channel_id}/summary")
async def summary(request: web.Request) -> web.Response:
    principal, channel_id, attrs, tp = await resolve(request)
    return json_response(await q.summary(request.app[STORE], channel_id, attrs, principal.scope, tp))
