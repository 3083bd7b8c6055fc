"""Logging set-up: text or JSON lines, and malformed HTTP requests kept to one quiet line.

``LIVESALES_LOG_FORMAT=json`` writes one JSON object per line (``ts``, ``level``,
``logger``, ``msg``, and ``exc`` when there is a traceback), for log shippers.

aiohttp logs each malformed request (bad request line, bad headers) with a traceback
that quotes the sender's bytes: anyone without a token could fill the log, and put in
it what they like. ``QuietBadRequests`` turns those records into one line naming only
the peer and the kind of error, and lets at most one through per ``interval`` seconds,
counting the rest.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

from aiohttp.http_exceptions import HttpProcessingError

SERVER_LOGGER = "aiohttp.server"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class QuietBadRequests(logging.Filter):
    """On aiohttp's server logger: a malformed request becomes one rate-limited line."""

    def __init__(self, interval: float = 10.0) -> None:
        super().__init__()
        self.interval = interval
        self._last = -1e9
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        now = time.monotonic()
        if now - self._last < self.interval:
            self._suppressed += 1
            return False
        self._last = now
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        more = f" ({self._suppressed} more since the last such line)" if self._suppressed else ""
        self._suppressed = 0
        record.msg = "malformed HTTP request from %s: %s, answered %s%s"
        record.args = (peer, type(exc).__name__, exc.code, more)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
        return True


def quiet_bad_requests(logger: logging.Logger | None = None, interval: float = 10.0) -> QuietBadRequests:
    """Install the filter once on aiohttp's server logger (idempotent)."""
    target = logger or logging.getLogger(SERVER_LOGGER)
    for existing in target.filters:
        if isinstance(existing, QuietBadRequests):
            return existing
    quiet = QuietBadRequests(interval)
    target.addFilter(quiet)
    return quiet


def configure_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    quiet_bad_requests()
