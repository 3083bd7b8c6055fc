"""Typed keys for what the app shares with its handlers (no module globals)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from api.alerts import Thresholds
from api.live.hub import LiveConfig
from api.queries.pivot_limits import PivotLimits
from ground.metrics import Metrics
from ingest.producer import Producer
from ingest.topics import Topics
from processors.store import ClickHouse


@dataclass(frozen=True)
class ApiConfig:
    """What the API needs to know (the runtime builds it from ground.settings)."""

    tokens_file: Path | None = None  # none: every call but health is refused
    rate_per_s: float = 50.0  # per token; the burst is twice that
    max_body_bytes: int = 8 * 1024 * 1024
    read_threads: int = 2  # storage threads of /summary's own queries; 0: the store's
    max_age_ms: int = 1000  # how old an answer of /summary or /v1/channels may be; 0: always query
    topics: Topics = field(default_factory=Topics)  # where POST /v1/events publishes
    thresholds: Thresholds = field(default_factory=Thresholds)
    live: LiveConfig = field(default_factory=LiveConfig)


class Readiness(Protocol):
    """Per-component readiness (livesales.health.Health): (ready, body naming each part)."""

    async def report(self) -> tuple[bool, dict[str, Any]]: ...


CONFIG: web.AppKey[ApiConfig] = web.AppKey("config", ApiConfig)
STORE: web.AppKey[ClickHouse] = web.AppKey("store", ClickHouse)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
PUBLISHER: web.AppKey[Producer | None] = web.AppKey("publisher")
READY: web.AppKey[Callable[[], bool]] = web.AppKey("ready")
HEALTH: web.AppKey[Readiness | None] = web.AppKey("health")
# GET /v1/connectors' body, from the connectors beside the API (livesales.runtime); None: none
CONNECTOR_STATUS: web.AppKey[Callable[[], Awaitable[dict[str, Any]]] | None] = web.AppKey("connector_status")
PIVOT_LIMITS: web.AppKey[PivotLimits] = web.AppKey("pivot_limits", PivotLimits)  # what one pivot may cost
