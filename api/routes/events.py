"""``POST /v1/events``: the ingest gateway behind a token with ``"ingest": true``."""

from __future__ import annotations

from aiohttp import web

from api.auth import Principal, principal_of
from api.context import CONFIG, METRICS, PUBLISHER
from api.errors import ApiError
from api.responses import json_response
from ingest.gateway import BodyError, ingest
from ingest.producer import Producer

routes = web.RouteTableDef()


def ingest_publisher(request: web.Request, principal: Principal) -> Producer:
    """The producer, for a caller whose token may ingest (403 otherwise; 503 without a broker)."""
    if not principal.ingest:
        raise ApiError(403, "this token may not ingest events")
    producer = request.app[PUBLISHER]
    if producer is None or not producer.started:
        raise ApiError(503, "the Kafka producer is not running")
    return producer


@routes.post("/v1/events")
async def post_events(request: web.Request) -> web.Response:
    producer = ingest_publisher(request, principal_of(request))
    body = await request.read()
    try:
        result = await ingest(body, request.content_type, request.app[CONFIG].topics, producer)
    except BodyError as exc:
        raise ApiError(400, str(exc), code="invalid_json") from None
    metrics = request.app[METRICS]
    metrics.ingested.labels("accepted").inc(result.accepted)
    metrics.ingested.labels("rejected").inc(len(result.rejected))
    if result.accepted == 0 and any(r["code"] == "unavailable" for r in result.rejected):
        raise ApiError(503, "the broker did not acknowledge any event; retry later")
    return json_response({"accepted": result.accepted, "rejected": result.rejected})
