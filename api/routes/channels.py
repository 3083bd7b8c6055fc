"""The cadre's view: channels, one channel's minutes and its summary."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiohttp import web

from api.auth import Principal, principal_of
from api.channel_snapshot import CHANNEL_SNAPSHOTS
from api.context import STORE
from api.errors import ApiError
from api.live.summaries import SUMMARIES
from api.params import TimeParams, int_param, strict_time_params, time_params
from api.queries import channel_list as cl
from api.queries import channels as q
from api.responses import json_response

routes = web.RouteTableDef()


def not_found(channel_id: str) -> ApiError:
    """Out of scope and nonexistent answer alike, so a scope reveals nothing."""
    return ApiError(404, f"no channel {channel_id!r}")


async def resolve(request: web.Request) -> tuple[Principal, str, TimeParams]:
    """Caller, channel id and time params; 404 when out of scope."""
    principal = principal_of(request)
    tp = time_params(request)
    channel_id = request.match_info["channel_id"]
    if await q.channel_in_scope(request.app[STORE], channel_id, principal.scope) is None:
        raise not_found(channel_id)
    return principal, channel_id, tp


MAX_LIMIT = 1000


def list_filters(request: web.Request) -> cl.ListFilters:
    """Filters, limit and cursor of ``GET /v1/channels``; a 400 naming what is allowed."""
    query = request.query
    limit = int_param(request, "limit", 100, 1, MAX_LIMIT)
    status = query.get("status")
    if status is not None and status not in cl.STATUSES:
        raise ApiError(400, f"status must be one of: {', '.join(cl.STATUSES)}")
    cursor = None
    if "cursor" in query:
        try:
            cursor = cl.decode_cursor(query["cursor"])
        except ValueError as exc:
            raise ApiError(400, f"{exc}; pass next_cursor from the previous page") from None
    text = {name: query.get(name) for name in ("platform", "district", "township")}
    for name, value in text.items():
        if value is not None and not 1 <= len(value) <= 200:
            raise ApiError(400, f"{name} must be 1-200 characters")
    return cl.ListFilters(status=status, limit=limit, cursor=cursor, **text)


@routes.get("/v1/channels")
async def list_channels(request: web.Request) -> web.Response:
    principal = principal_of(request)
    tp = strict_time_params(request)
    filters = list_filters(request)
    # from the in-process snapshot when young enough (api.channel_snapshot), else a query;
    # a range's channels with events in it are read now, whatever the snapshot's age
    # (up to cl.ACTIVE_CAP of them: more, and the query path is cheaper)
    snapshots = request.app[CHANNEL_SNAPSHOTS]
    snapshot = snapshots.fresh()
    active = None
    if snapshot is not None and (tp.from_ is not None or tp.to is not None):
        active = await cl.active_ids(request.app[STORE], *tp.bounds())
        if active is None:
            snapshot = None
            snapshots.declined()
    if snapshot is not None:
        page, cursor = snapshot.page(principal.scope, tp, filters, datetime.now(UTC), active)
    else:
        page, cursor = await cl.list_channels(request.app[STORE], principal.scope, tp, filters)
    return json_response({"channels": page, "next_cursor": cursor})


@routes.get("/v1/channels/{channel_id}/minutes")
async def minutes(request: web.Request) -> web.Response:
    principal = principal_of(request)
    tp = time_params(request)
    channel_id = request.match_info["channel_id"]
    store = request.app[STORE]
    scope = principal.scope
    if scope.is_all:
        # With no region to check, any row of the channel proves that it exists: the
        # existence check (a query as costly as the curve's) is needed only for an empty window.
        rows = await q.minutes(store, channel_id, scope, tp)
        exists = bool(rows) or await q.channel_in_scope(store, channel_id, scope) is not None
    else:  # the latest region decides: check it beside the (scoped) query
        attrs, rows = await asyncio.gather(
            q.channel_in_scope(store, channel_id, scope), q.minutes(store, channel_id, scope, tp)
        )
        exists = attrs is not None
    if not exists:
        raise not_found(channel_id)
    return json_response({"channel_id": channel_id, "tz": tp.tz, "minutes": rows})


@routes.get("/v1/channels/{channel_id}/summary")
async def summary(request: web.Request) -> web.Response:
    principal = principal_of(request)
    tp = time_params(request)
    channel_id = request.match_info["channel_id"]
    # lent by the live hub or shared with a query under way when recent enough (api.live.summaries)
    body = await request.app[SUMMARIES].summary(channel_id, principal.scope, tp)
    if body is None:
        raise not_found(channel_id)
    return json_response(body)
