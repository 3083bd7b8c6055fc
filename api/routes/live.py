"""``GET /v1/channels/{id}/live``: Server-Sent Events pushing the channel as it changes.

The dashboard must show a new order within 2 s. Polling a change marker (max stored_at
of the channel's rows: a primary-key lookup) every 0.5 s and pushing summary + minutes
only when it moved keeps that promise at a few cheap queries per viewer.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from api.context import STORE
from api.queries import channels as q
from api.routes.channels import resolve

routes = web.RouteTableDef()
POLL_S = 0.5
KEEPALIVE_S = 15.0
CLOSING: web.AppKey[asyncio.Event] = web.AppKey("closing", asyncio.Event)


@routes.get("/v1/channels/{channel_id}/live")
async def live(request: web.Request) -> web.StreamResponse:
    principal, channel_id, tp = await resolve(request)
    store = request.app[STORE]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                       "X-Accel-Buffering": "no"})  # fmt: skip
    await resp.prepare(request)
    marker: object = None
    last_sent = time.monotonic()
    try:
        while not request.app[CLOSING].is_set():
            now_marker = await q.change_marker(store, channel_id)
            if now_marker != marker:
                marker = now_marker
                summary, minutes = await asyncio.gather(
                    q.summary(store, channel_id, principal.scope, tp), q.minutes(store, channel_id, principal.scope, tp)
                )
                if summary is None:  # cannot happen for a channel that existed; end the stream
                    break
                payload = {"summary": summary, "minutes": {"channel_id": channel_id, "tz": tp.tz, "minutes": minutes}}
                data = json.dumps(payload, ensure_ascii=False)
                await resp.write(f"event: update\ndata: {data}\n\n".encode())
                last_sent = time.monotonic()
            elif time.monotonic() - last_sent > KEEPALIVE_S:
                await resp.write(b": keepalive\n\n")
                last_sent = time.monotonic()
            await asyncio.sleep(POLL_S)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return resp


async def close_streams(app: web.Application) -> None:
    """On shutdown, end open streams (within one poll) so the server stops promptly."""
    app[CLOSING].set()
