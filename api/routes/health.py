"""Liveness, readiness and Prometheus metrics: no token needed (contract §6)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.context import HEALTH, METRICS, READY
from api.responses import json_response

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    health = request.app.get(HEALTH)
    if health is not None:  # each component's state, and the role's policy (livesales.health)
        ready, body = await health.report()
        return json_response(body, status=200 if ready else 503)
    if request.app[READY]():
        return json_response({"status": "ready"})
    return json_response(
        {"error": {"code": "unavailable", "message": "consumers not subscribed or storage not open yet"}},
        status=503,
    )


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
