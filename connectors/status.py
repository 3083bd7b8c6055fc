"""``GET /v1/connectors`` (contract §7) from durable state, right across processes.

Pushes arrive at any number of ``serve`` processes. Each counts its own in a
:class:`StatusBook` and a :class:`StatusFlusher` writes the book's cumulative rows (one per
process and shop) every ``flush_s``; the answer sums every process's latest row, so it is
right whatever process answers. What a kill -9 loses is a counter increment not yet
flushed (at most ``flush_s`` of them), never a push: the push itself is on Kafka. The
watermark and the recovered steps are read from the rows reconciliation writes.

Bad signatures cannot be trusted to name their shop (the body is unauthenticated), so they
are counted per app (row ``@<app_key>``) and shown on each shop of that app.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.config import ConnectorsConfig
from connectors.state import ConnectorState, ProcessRow, next_seq
from ground.stopping import cancel_and_wait
from processors.store import StorageError

log = logging.getLogger(__name__)
MAX_ERROR = 300


def app_row(app_key: str) -> str:
    return f"@{app_key}"


@dataclass
class _Counts:
    pushes: int = 0
    bad_signatures: int = 0
    last_push_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    seq: int = 0


@dataclass
class StatusBook:
    """This process's counters, per (platform, shop or ``@app``); cheap to call per push."""

    process_id: str
    _counts: dict[tuple[str, str], _Counts] = field(default_factory=dict)
    _dirty: set[tuple[str, str]] = field(default_factory=set)

    def _row(self, platform: str, shop_id: str) -> _Counts:
        key = (platform, shop_id)
        self._dirty.add(key)
        return self._counts.setdefault(key, _Counts())

    def push(self, platform: str, shop_id: str, at: datetime) -> None:
        c = self._row(platform, shop_id)
        c.pushes += 1
        c.last_push_at = at if c.last_push_at is None else max(c.last_push_at, at)

    def bad_signature(self, platform: str, app_key: str) -> None:
        self._row(platform, app_row(app_key)).bad_signatures += 1

    def error(self, platform: str, shop_id: str, what: str, at: datetime | None = None) -> None:
        """Record a shop's last error: ``what`` is written by us and carries no secret."""
        c = self._row(platform, shop_id)
        c.last_error, c.last_error_at = what[:MAX_ERROR], at or datetime.now(UTC)

    def take(self) -> list[ProcessRow]:
        """The rows changed since the last take, each with a later ``seq``."""
        rows = []
        for key in sorted(self._dirty):
            c = self._counts[key]
            c.seq = next_seq(c.seq)
            rows.append(ProcessRow(key[0], key[1], self.process_id, c.pushes, c.bad_signatures, c.last_push_at,
                                   c.last_error, c.last_error_at, c.seq))  # fmt: skip
        self._dirty.clear()
        return rows

    def untake(self, rows: list[ProcessRow]) -> None:
        """A flush failed: these rows are written with the next one."""
        self._dirty.update((r.platform, r.shop_id) for r in rows)


@dataclass(frozen=True)
class StatusConfig:
    flush_s: float = 2.0


class StatusFlusher:
    """Writes a StatusBook's changed rows every ``flush_s`` and once more at stop."""

    def __init__(self, book: StatusBook, state: ConnectorState, config: StatusConfig = StatusConfig()) -> None:
        self.book, self.state, self.config = book, state, config
        self._task: asyncio.Task[None] | None = None

    async def flush(self) -> None:
        rows = self.book.take()
        if not rows:
            return
        try:
            await self.state.write_process_rows(rows, datetime.now(UTC))
        except StorageError as exc:
            self.book.untake(rows)
            log.warning("connector status not written (retried): %s", exc)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_s)
            await self.flush()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="connector-status")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        await self.flush()


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def connectors_status(state: ConnectorState, config: ConnectorsConfig) -> dict[str, Any]:
    """The body of ``GET /v1/connectors``: one entry per configured shop, file order."""
    marks = await state.watermarks()
    recovered = await state.recovered()
    per: dict[tuple[str, str], _Counts] = {}
    for r in await state.process_rows():
        c = per.setdefault((r.platform, r.shop_id), _Counts())
        c.pushes += r.pushes
        c.bad_signatures += r.bad_signatures
        if r.last_push_at is not None and (c.last_push_at is None or r.last_push_at > c.last_push_at):
            c.last_push_at = r.last_push_at
        if r.last_error_at is not None and (c.last_error_at is None or r.last_error_at > c.last_error_at):
            c.last_error, c.last_error_at = r.last_error, r.last_error_at
    out = []
    for app, shop in config.shops():
        c = per.get((app.platform, shop.shop_id), _Counts())
        bad = per.get((app.platform, app_row(app.app_key)), _Counts())
        mark = marks.get((app.platform, shop.shop_id))
        out.append({
            "platform": app.platform, "shop_id": shop.shop_id, "last_push_at": _iso(c.last_push_at),
            "pushes": c.pushes, "bad_signatures": bad.bad_signatures,
            "last_reconciled_to": _iso(mark.reconciled_to if mark else None),
            "recovered_steps": recovered.get((app.platform, shop.shop_id), 0),
            "last_error": c.last_error, "last_error_at": _iso(c.last_error_at),
        })  # fmt: skip
    return {"connectors": out}
