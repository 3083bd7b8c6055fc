"""Errors at the edge are JSON values: ``{"error": {"code", "message"}}`` (contract §6)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from api.responses import json_response
from processors.store import StorageError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 413: "payload_too_large", 429: "rate_limited",
    500: "internal", 503: "unavailable",
}  # fmt: skip


class ApiError(Exception):
    """Raised inside handlers; the middleware turns it into a JSON error response."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None,
                 details: dict[str, Any] | None = None):  # fmt: skip
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.headers = headers or {}
        self.details = details or {}  # more fields of the error object, e.g. a pivot's limit


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, details: dict[str, Any] | None = None
) -> web.Response:
    body = {"error": {"code": code, "message": message, **(details or {})}}
    return json_response(body, status=status, headers=headers)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.headers, exc.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        if exc.status == 413:
            message = "request body too large"
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return error_response(exc.status, _CODES.get(exc.status, "error"), message, headers)
    except StorageError as exc:
        log.warning("storage unavailable on %s %s: %s", request.method, request.path, exc)
        return error_response(503, "unavailable", "storage is unavailable; retry shortly", {"Retry-After": "5"})
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error; see the server log")
