"""Typed keys for what the app shares with its handlers (no module globals)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from api.queries.pivot_limits import PivotLimits
from ground.metrics import Metrics
from ground.settings import Settings
from ingest.producer import Producer
from livesales.health import Health
from processors.store import ClickHouse

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
STORE: web.AppKey[ClickHouse] = web.AppKey("store", ClickHouse)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
PUBLISHER: web.AppKey[Producer | None] = web.AppKey("publisher")
READY: web.AppKey[Callable[[], bool]] = web.AppKey("ready")
HEALTH: web.AppKey[Health | None] = web.AppKey("health")
PIVOT_LIMITS: web.AppKey[PivotLimits] = web.AppKey("pivot_limits", PivotLimits)  # what one pivot may cost


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON as UTF-8 text: Chinese names stay readable in curl and logs, not \\u-escaped.

    orjson, not json: a 6-hour channel's 360 minutes encode in ~0.13 ms instead of ~1.7 ms,
    and the event loop (every other request) waits while they do."""
    return web.Response(
        body=orjson.dumps(data), status=status, headers=headers, content_type="application/json", charset="utf-8"
    )
