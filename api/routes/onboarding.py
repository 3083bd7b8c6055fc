"""``POST /v1/onboarding/import`` (contract v1.2 §6): a spreadsheet of onboarded firms.

What each row becomes is api.onboarding_import's; here: who may import (an ingest token,
rows inside its scope), which rows are already counted (duplicates), and publishing.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from api.auth import Scope, principal_of
from api.context import CONFIG, METRICS, STORE
from api.errors import ApiError
from api.onboarding_import import FileError, parse
from api.params import time_params
from api.responses import json_response
from api.routes.events import ingest_publisher
from processors.store import ClickHouse

routes = web.RouteTableDef()


@routes.post("/v1/onboarding/import")
async def import_firms(request: web.Request) -> web.Response:
    principal = principal_of(request)
    producer = ingest_publisher(request, principal)  # an ingest token (403), a running producer (503)
    tz = time_params(request).tzinfo
    try:
        parsed = parse(await request.read(), tz)
    except FileError as exc:
        raise ApiError(400, str(exc), code="bad_file") from None
    rejected = parsed.rejected
    fresh: list[tuple[int, bytes, dict[str, Any]]] = []
    for n, raw in parsed.events:
        event = json.loads(raw)
        if not _in_scope(principal.scope, event["district"]):
            rejected.append({"row": n, "column": "区县", "code": "out_of_scope",
                             "message": f"区县「{event['district']}」不在本账号的范围内"})  # fmt: skip
        else:
            fresh.append((n, raw, event))
    known = await _counted(request.app[STORE], [e for _, _, e in fresh])
    duplicates, publish, seen = 0, [], set()
    for _, raw, event in fresh:
        step = (event["platform"], event["firm_id"], event["status"])
        if event["event_id"] in known or step in known or step in seen:
            duplicates += 1  # in the file twice, or already counted: it would count nothing
            continue
        seen.add(step)
        publish.append((request.app[CONFIG].topics.onboarding, event["firm_id"].encode(), raw))
    errors = await producer.send_all(publish) if publish else []
    if any(e is not None for e in errors):
        raise ApiError(503, "the broker did not acknowledge every row; importing the same file again is safe")
    metrics = request.app[METRICS]
    metrics.ingested.labels("accepted").inc(len(publish))
    metrics.ingested.labels("rejected").inc(len(rejected))
    rejected.sort(key=lambda r: r["row"])
    return json_response({"accepted": len(publish), "duplicates": duplicates, "rejected": rejected})


def _in_scope(scope: Scope, district: str) -> bool:
    """Onboarding rows have a district only: a township token imports its district's firms."""
    return scope.is_all or scope.district == district


async def _counted(store: ClickHouse, events: list[dict[str, Any]]) -> set[Any]:
    """Event ids and (platform, firm_id, status) steps of these rows already stored."""
    if not events:
        return set()
    rows = await store.query(
        "SELECT event_id, platform, firm_id, toString(status) AS status FROM onboarding_steps"
        " WHERE firm_id IN {ids:Array(String)}",
        {"ids": sorted({e["firm_id"] for e in events})},
    )
    return {r["event_id"] for r in rows} | {(r["platform"], r["firm_id"], r["status"]) for r in rows}
