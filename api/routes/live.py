"""``GET /v1/channels/{id}/live``: Server-Sent Events pushing the channel as it changes.

The dashboard must show a new order within 2 s, to every one of a room full of screens.
A stream computes nothing itself: it joins the view's shared watcher (api.live.hub),
which the writer wakes when it stores the channel's rows, and writes out the newest
frame the watcher offers. The first frame doubles as the existence and scope check, so
a thousand screens opening at once cost one query round, and an unknown or out-of-scope
channel answers 404 before the stream starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from aiohttp import web

from api.auth import principal_of
from api.live.hub import LiveHub
from api.live.view import Viewer
from api.params import time_params
from api.routes.channels import not_found
from processors.store import StorageError

routes = web.RouteTableDef()
KEEPALIVE_S = 15.0
KEEPALIVE = b": keepalive\n\n"
HUB: web.AppKey[LiveHub] = web.AppKey("live_hub", LiveHub)


@routes.get("/v1/channels/{channel_id}/live")
async def live(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    tp = time_params(request)
    channel_id = request.match_info["channel_id"]
    hub = request.app[HUB]
    viewer = hub.join(channel_id, principal.name, principal.scope, tp, alive=lambda: _connected(request))
    try:
        watcher = viewer.watcher
        await watcher.started.wait()
        if watcher.missing:
            raise not_found(channel_id)
        if watcher.frame is None:  # the JSON error middleware answers 503
            raise watcher.error or StorageError("the server is shutting down")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})  # fmt: skip
        await resp.prepare(request)
        _limit_send_buffer(request, hub.send_buffer_bytes)
        await _stream(request, resp, hub, viewer)
        return resp
    finally:
        hub.leave(viewer)


async def _stream(request: web.Request, resp: web.StreamResponse, hub: LiveHub, viewer: Viewer) -> None:
    while True:
        frame = await viewer.next(KEEPALIVE_S)
        if frame is None:
            return
        try:
            async with asyncio.timeout(hub.send_timeout_s):
                await resp.write(frame or KEEPALIVE)
        except TimeoutError:  # the peer stopped reading: drop it rather than buffer for it
            hub.drop(viewer)
            if request.transport is not None:
                request.transport.abort()
            return
        except ConnectionError:
            return


def _connected(request: web.Request) -> bool:
    transport = request.transport
    return transport is not None and not transport.is_closing()


def _limit_send_buffer(request: web.Request, size: int) -> None:
    """Bound the kernel's buffer for this stream: with autotuning a socket to a peer that
    stopped reading holds megabytes before the send blocks and the drop can happen."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if size and sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


async def close_streams(app: web.Application) -> None:
    """On shutdown, end open streams at once so the server stops promptly."""
    await app[HUB].close()
