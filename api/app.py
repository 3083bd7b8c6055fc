"""The aiohttp application factory: routes, middlewares and shared state, no globals.

The runtime (livesales.runtime) owns the ClickHouse handle, the producer and the
metrics, and passes them in; the app only borrows them, so consumers and API share one
ClickHouse client in one process (chDB admits one process per data path).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

import api.routes.alerts as alert_routes
import api.routes.labels as label_routes
from api.auth import LIMITER, TOKENS, RateLimiter, TokenStore
from api.channel_snapshot import CHANNEL_SNAPSHOTS, ChannelSnapshots, channel_snapshots_ctx
from api.context import CONFIG, HEALTH, METRICS, PIVOT_LIMITS, PUBLISHER, READY, STORE, ApiConfig, Readiness
from api.errors import Handler, json_errors
from api.live.hub import LiveHub
from api.live.summaries import SUMMARIES, SummaryReads
from api.openapi import openapi_json
from api.queries.pivot_limits import LIMITS, PivotLimits
from api.routes import channels, connectors, events, health, live, onboarding, pivot, regions
from api.routes.dashboard import add_dashboard
from ground.metrics import Metrics
from ingest.producer import Producer
from processors.store import ClickHouse


def _timing(metrics: Metrics) -> Callable[[web.Request, Handler], object]:
    @web.middleware
    async def timing(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        finally:
            info = request.match_info.route.resource
            route = info.canonical if info is not None else "unmatched"
            metrics.api_seconds.labels(route, str(status)).observe(time.perf_counter() - started)

    return timing


def create_app(
    config: ApiConfig,
    store: ClickHouse,
    metrics: Metrics,
    publisher: Producer | None,
    is_ready: Callable[[], bool],
    live_hub: LiveHub | None = None,
    readiness: Readiness | None = None,
    pivot_limits: PivotLimits = LIMITS,
) -> web.Application:
    app = web.Application(
        middlewares=[_timing(metrics), json_errors],  # type: ignore[list-item]
        client_max_size=config.max_body_bytes,
    )
    app[CONFIG] = config
    app[STORE] = store
    app[METRICS] = metrics
    app[PUBLISHER] = publisher
    app[READY] = is_ready
    app[HEALTH] = readiness  # per-component readiness (livesales.health); None: is_ready alone
    app[PIVOT_LIMITS] = pivot_limits  # cells, seconds, groups, memory per pivot request
    app[TOKENS] = TokenStore.load(config.tokens_file)
    app[LIMITER] = RateLimiter(config.rate_per_s, max(1, round(2 * config.rate_per_s)))
    app[live.HUB] = live_hub or LiveHub(store, config.live, metrics)
    reads = store.lane(config.read_threads, "api") if config.read_threads else store
    app[SUMMARIES] = SummaryReads(reads, app[live.HUB], metrics, config.max_age_ms)
    app[CHANNEL_SNAPSHOTS] = ChannelSnapshots(store.lane(1, "channel-list"), config.max_age_ms)
    app.cleanup_ctx.append(channel_snapshots_ctx)
    for module in (health, channels, pivot, events, onboarding, connectors, live, regions):
        app.add_routes(module.routes)
    app.router.add_get("/v1/openapi.json", openapi_json)
    app.add_routes(alert_routes.routes)
    app.add_routes(label_routes.routes)
    add_dashboard(app)
    app.on_shutdown.append(live.close_streams)
    return app
