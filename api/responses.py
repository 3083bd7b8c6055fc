"""JSON answers: every handler's and every error's."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON as UTF-8 text: Chinese names stay readable in curl and logs, not \\u-escaped.

    orjson, not json: a 6-hour channel's 360 minutes encode in ~0.13 ms instead of ~1.7 ms,
    and the event loop (every other request) waits while they do."""
    return web.Response(
        body=orjson.dumps(data), status=status, headers=headers, content_type="application/json", charset="utf-8"
    )
