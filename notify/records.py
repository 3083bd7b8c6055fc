"""The ``notifications`` table (schemas/ddl_notify.py): what was posted, and its state.

A sender looks a delivery up here before posting it (a ``sent`` or ``dropped`` row means
"done, skip"), records ``retrying`` after each failed attempt and ``sent`` or ``dropped``
at the end; only then is its Kafka offset committed (docs/NOTIFY.md). ``latest`` answers
``GET /v1/notifications``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timezone
from typing import Any

from notify.messages import CHINA
from notify.transitions import Delivery
from processors.store import ClickHouse, StorageError

STATES = ("retrying", "dropped", "sent")  # by rank: a later one outranks an earlier one
FINAL_STATES = frozenset({"sent", "dropped"})
_RANK = {s: i for i, s in enumerate(STATES)}
_MICROS_BITS = 53  # microseconds since 1970 stay under 2**53 until the year 2255
COLUMNS = ("robot", "notification_id", "channel_id", "rule", "kind", "state", "attempts", "created_at",
           "happened_at", "updated_at", "last_error", "seq")  # fmt: skip
MAX_LIMIT = 1000


def seq(state: str, at_s: float) -> int:
    """The ReplacingMergeTree version of a row: state rank first, then time (see the DDL)."""
    return (_RANK[state] << _MICROS_BITS) | min(int(at_s * 1_000_000), (1 << _MICROS_BITS) - 1)


def _utc(ms: int | float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(frozen=True)
class Recorded:
    state: str
    attempts: int
    created_ms: int


class Records:
    """Reads and writes of the notifications table, on the process's store."""

    def __init__(self, store: ClickHouse, clock: Any = time.time) -> None:
        self.store = store
        self._clock = clock

    async def record(
        self, d: Delivery, state: str, attempts: int, created_ms: int, error: str | None = None
    ) -> None:
        """One state of one delivery; raises processors.store.StorageError when not stored."""
        now = self._clock()
        t = d.transition
        row = [d.robot, t.id, t.channel_id, t.rule, t.edge, state, attempts, _utc(created_ms), _utc(t.at_ms),
               _utc(now * 1000), error, seq(state, now)]  # fmt: skip
        await self.store.run_in_thread(self._insert, [row])

    def _insert(self, rows: list[list[Any]]) -> None:
        try:
            self.store.client.insert("notifications", rows, column_names=list(COLUMNS))
        except Exception as exc:
            raise StorageError(str(exc)) from exc

    async def states(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Recorded]:
        """The latest recorded state of each (robot, notification id) that has one."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        robots = sorted({r for r, _ in wanted})
        ids = sorted({i for _, i in wanted})
        rows = await self.store.query(
            """SELECT robot, notification_id, state, attempts, created_at FROM notifications FINAL
               WHERE robot IN {robots:Array(String)} AND notification_id IN {ids:Array(String)}""",
            {"robots": robots, "ids": ids},
        )
        out = {}
        want = set(wanted)
        for r in rows:
            key = (str(r["robot"]), str(r["notification_id"]))
            if key in want:
                created = r["created_at"] if r["created_at"].tzinfo else r["created_at"].replace(tzinfo=UTC)
                out[key] = Recorded(str(r["state"]), int(r["attempts"]), int(created.timestamp() * 1000))
        return out


def _render(value: datetime | None, tz: timezone) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(tz).isoformat(timespec="milliseconds")


async def latest(store: ClickHouse, limit: int = 100, tz: timezone = CHINA) -> list[dict[str, Any]]:
    """The newest notifications by last update (``GET /v1/notifications?limit``, scope
    ``all``): robot, channel_id, kind (firing, cleared, live, ended), rule, state (sent,
    retrying, dropped), attempts, created_at (first seen), happened_at (on the channel's
    clock), updated_at, last_error, notification_id. ``limit`` is clamped to 1..1000."""
    n = max(1, min(int(limit), MAX_LIMIT))
    rows = await store.query(
        """SELECT robot, notification_id, channel_id, toString(rule) AS rule, toString(kind) AS kind,
                  toString(state) AS state, attempts, created_at, happened_at, updated_at, last_error
           FROM notifications FINAL
           ORDER BY updated_at DESC, robot, notification_id LIMIT {n:UInt32}""",
        {"n": n},
    )
    return [
        {
            "robot": r["robot"],
            "channel_id": r["channel_id"],
            "kind": r["kind"],
            "rule": r["rule"],
            "state": r["state"],
            "attempts": int(r["attempts"]),
            "created_at": _render(r["created_at"], tz),
            "happened_at": _render(r["happened_at"], tz),
            "updated_at": _render(r["updated_at"], tz),
            "last_error": r["last_error"],
            "notification_id": r["notification_id"],
        }
        for r in rows
    ]
