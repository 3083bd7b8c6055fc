"""Bounded staleness, one way for every answer the API lends instead of querying.

An answer read from storage is *as of* a moment: the monotonic time just before its read
began, so it holds every row any process stored before then. A request that arrives at
``arrived`` may be answered with it when that moment is at most ``max_age_s`` earlier
(``Bound.lends``): then the answer is exactly what a fresh query would have returned at
some moment within the bound (docs/DESIGN.md, "Queries"). The three caches that lend
(/summary's own answers in api.live.summaries, the live hub's views it borrows from in
api.live.hub, the channel list snapshot in api.channel_snapshot) all decide with one
``Bound``; /summary's answers also share reads under way and refresh ahead with an
``AsOf`` cell, and the snapshot refreshes every ``REFRESH_AHEAD`` of the bound.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# An answer older than this share of the bound starts a refresh: under load a query takes
# most of a second, and it must be done before the answer it replaces is too old to lend.
REFRESH_AHEAD = 0.25


@dataclass(frozen=True)
class Bound:
    """How old a lent answer may be; 0 (or less): never lend, always query."""

    max_age_s: float

    @property
    def off(self) -> bool:
        return self.max_age_s <= 0

    def oldest(self, arrived: float) -> float:
        """The oldest as-of moment a request that arrived then may be answered with."""
        return arrived - self.max_age_s

    def lends(self, as_of: float, arrived: float) -> bool:
        return not self.off and as_of >= arrived - self.max_age_s

    def refresh_due(self, as_of: float, arrived: float) -> bool:
        """Past a quarter of the bound: time to start the read that replaces it."""
        return as_of < arrived - self.max_age_s * REFRESH_AHEAD


@dataclass
class Flight(Generic[T]):
    """A read under way, as of ``began`` (before it was issued)."""

    began: float
    task: asyncio.Task[T]


@dataclass
class AsOf(Generic[T]):
    """One view's newest answered read and the read under way (single flight)."""

    done: tuple[float, T] | None = None  # as of when, and the answer
    pending: Flight[T] | None = None

    def newest(self) -> float:
        done = self.done[0] if self.done else -math.inf
        return max(done, self.pending.began if self.pending else -math.inf)

    def fly(self, began: float, read: Callable[[], Coroutine[Any, Any, T]]) -> asyncio.Task[T]:
        """Start a read as of ``began``; when it succeeds it becomes ``done`` unless a
        younger answer came first. A failure is not kept: the next request asks again."""
        task = asyncio.create_task(read())
        task.add_done_callback(_retrieve)
        flight = self.pending = Flight(began, task)

        def landed(t: asyncio.Task[T]) -> None:
            if self.pending is flight:
                self.pending = None
            if not t.cancelled() and t.exception() is None and (self.done is None or self.done[0] < flight.began):
                self.done = (flight.began, t.result())

        task.add_done_callback(landed)
        return task


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Retrieve a failed read's error: every caller may have gone meanwhile."""
    if not task.cancelled():
        task.exception()
