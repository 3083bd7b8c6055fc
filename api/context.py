"""Typed keys for what the app shares with its handlers (no module globals)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from ingest.producer import Producer
from livesales.metrics import Metrics
from livesales.settings import Settings
from processors.store import ClickHouse

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
STORE: web.AppKey[ClickHouse] = web.AppKey("store", ClickHouse)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
PUBLISHER: web.AppKey[Producer | None] = web.AppKey("publisher")
READY: web.AppKey[Callable[[], bool]] = web.AppKey("ready")
