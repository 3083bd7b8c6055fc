"""``POST /connect/{platform}``: verify a push, put it on Kafka, and only then say success.

The platform's own check authenticates the push (抖店 ``event-sign``, 快手 the AES
decryption), so there is no bearer token here; a push that fails it is answered 401 and
nothing is published. A verified push's order messages go to the raw topic keyed by shop
(``connectors.RAW_TOPIC``) and the platform's success body is sent only once the broker
acknowledged them (acks=all): a push answered with success is durably on Kafka, and one
whose publish failed gets 503, so the platform sends it again. The activation (抖店 tag
"0") and test (快手 ``test``) messages are answered with success and publish nothing.

Guards (issue 20 §9): a body limit, a token bucket per source address (behind a proxy that
is the proxy's address: put the limit there too), and nothing of a secret in any answer or
log line (the errors name the check that failed, never the expected value).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from connectors import RAW_TOPIC
from connectors.config import AppConfig, ConnectorsConfig
from connectors.metrics import ConnectorMetrics
from connectors.platform import Platform, PushRejected
from connectors.registry import PLATFORMS
from connectors.status import StatusBook
from ingest.producer import ProduceError, Producer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReceiverConfig:
    raw_topic: str = RAW_TOPIC
    max_body_bytes: int = 1 << 20  # a 抖店 batch is a few KB; 1 MiB is far above any real push
    rate_per_s: float = 500.0  # per source address; the platforms push from a few addresses
    burst: float = 1000.0
    max_sources: int = 10_000  # buckets kept (least recently used dropped)
    ack_timeout_s: float = 4.0  # 抖店 wants an answer within 5 s: better a 503 it retries than none


class RateLimit:
    """Token buckets per source address, in bounded memory."""

    def __init__(self, rate: float, burst: float, max_sources: int) -> None:
        self.rate, self.burst, self.max_sources = rate, burst, max_sources
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, source: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.pop(source, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        ok = tokens >= 1.0
        self._buckets[source] = (tokens - 1.0 if ok else tokens, now)
        while len(self._buckets) > self.max_sources:
            self._buckets.popitem(last=False)
        return ok


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def push_routes(
    config: ReceiverConfig, connectors: ConnectorsConfig, producer: Producer, book: StatusBook,
    metrics: ConnectorMetrics, platforms: Mapping[str, Platform] = PLATFORMS,
) -> web.RouteTableDef:
    """The routes to mount on the API app (no auth middleware may guard ``/connect/``)."""
    routes = web.RouteTableDef()
    limit = RateLimit(config.rate_per_s, config.burst, config.max_sources)

    @routes.post("/connect/{platform}")
    async def receive(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        name = request.match_info["platform"]
        platform = platforms.get(name)
        apps = connectors.apps(name)
        if platform is None or not apps:
            return _error(404, "not_found", f"no connector for platform {name!r}")
        response = await _handle(request, name, platform, apps)
        metrics.push_requests.labels(name, str(response.status)).inc()
        metrics.push_ack_seconds.labels(name).observe(time.perf_counter() - started)
        return response

    async def _handle(
        request: web.Request, name: str, platform: Platform, apps: tuple[AppConfig, ...]
    ) -> web.StreamResponse:
        if not limit.allow(request.remote or "?"):
            return _error(429, "rate_limited", "too many pushes from this address")
        if (request.content_length or 0) > config.max_body_bytes:
            return _error(413, "too_large", f"push bodies are limited to {config.max_body_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        while chunk := await request.content.read(1 << 16):  # read() returns what has arrived: loop to the end
            size += len(chunk)
            if size > config.max_body_bytes:
                return _error(413, "too_large", f"push bodies are limited to {config.max_body_bytes} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        now = datetime.now(UTC)
        try:
            batch = platform.verify(apps, request.headers, body, now)
        except PushRejected as exc:
            metrics.bad_signatures.labels(name).inc()
            for app in apps:
                if exc.app_key is None or app.app_key == exc.app_key:
                    book.bad_signature(name, app.app_key)
                    break
            log.warning("push to /connect/%s refused: %s", name, exc)
            return _error(401, "bad_signature", "the push's signature does not verify")
        messages = []
        for notice in batch.notices:
            if batch.app.shop(notice.shop_id) is None:
                metrics.unknown_shops.labels(name).inc()
                log.warning("push for %s shop %s, which the connectors file does not list: dropped", name,
                            notice.shop_id)  # fmt: skip
                continue
            messages.append((config.raw_topic, notice.key, notice.encode()))
        if messages:
            try:
                async with asyncio.timeout(config.ack_timeout_s):  # no task per push, as wait_for makes
                    await producer.send_all_or_raise(messages)
            except (ProduceError, TimeoutError) as exc:
                log.warning("push to /connect/%s not published (the platform will retry): %r", name, exc)
                return _error(503, "unavailable", "the push could not be stored; send it again")
            for notice in batch.notices:
                if batch.app.shop(notice.shop_id) is not None:
                    book.push(name, notice.shop_id, now)
            metrics.pushes.labels(name).inc(len(messages))
        return web.Response(body=platform.success_body, content_type="application/json")

    return routes
