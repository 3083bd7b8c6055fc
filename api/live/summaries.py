"""``GET /v1/channels/{id}/summary`` under a room full of live screens.

At 100 orders/s with 1,100 live viewers, a ``/summary`` query waited behind the live
hub's rounds and the consumers' inserts in the shared storage threads: p99 ~1 s where
the target is 100 ms (docs/BENCHMARKS.md, "Live screens"). Yet the hub has just computed
that very summary for the screens of the same view. So an answer comes, in this order:

1. from the live hub (api.live.hub): the view's newest summary, when it shows every row
   stored up to at most ``summary_max_age_ms`` before the request arrived;
2. from the same view's last query, done or (else) under way, on the same condition
   (single-flight: concurrent and close requests share one query);
3. from a query of its own, on the API's own storage threads (``ClickHouse.lane``): it
   waits neither behind a round of the hub's queries nor behind an insert.

An answer from 1 or 2 older than a quarter of the bound starts one query in the
background (refresh-ahead; one at a time per view), so a view asked again and again
finds a young enough answer ready instead of waiting for one every ``summary_max_age_ms``.

So an answer is exactly what a fresh query would have returned at some moment no more
than ``summary_max_age_ms`` before the request arrived (docs/DESIGN.md, "Queries"):
every row stored, by any process, before that moment is in it. A view is the channel,
the caller's scope, tz, from and to: a token never gets what another scope's query
returned (a township's payload is not lent to another township, nor the bureau's to a
township). ``summary_max_age_ms = 0`` turns both off: every request queries.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from api.auth import Scope
from api.live.hub import LiveHub
from api.live.view import ViewKey
from api.params import TimeParams
from api.queries import channels as q
from ground.metrics import Metrics
from processors.store import ClickHouse

Summary = dict[str, Any]


@dataclass
class _Flight:
    began: float  # monotonic, before the query was issued: it shows every row stored before then
    task: asyncio.Task[Summary | None]


@dataclass
class _View:
    done: tuple[float, Summary | None] | None = None  # the newest answered query: when it began, its answer
    pending: _Flight | None = None  # the query under way

    def newest(self) -> float:
        return max(self.done[0] if self.done else -math.inf, self.pending.began if self.pending else -math.inf)


class SummaryReads:
    """The process's ``/summary`` answers: lent by the live hub, shared, or queried."""

    def __init__(
        self, store: ClickHouse, hub: LiveHub, metrics: Metrics, max_age_ms: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock  # monotonic seconds; a test's own to step
        self.store = store
        self.hub = hub
        self.metrics = metrics
        self.max_age_s = max_age_ms / 1000
        # per view asked lately, its last queries, least recently asked first: swept as
        # they age, so it holds the views asked within the bound, never more than MAX_KEPT
        self._views: dict[ViewKey, _View] = {}

    async def summary(self, channel_id: str, scope: Scope, tp: TimeParams) -> Summary | None:
        """The channel's summary for this scope, or None when it does not exist for it."""
        arrived = self.clock()
        key = ViewKey(channel_id, scope, tp.tz, tp.from_, tp.to)
        if self.max_age_s <= 0:
            self.metrics.summary_answers.labels("query").inc()
            return await asyncio.shield(self._query(key, tp))
        since = arrived - self.max_age_s
        view = self._views.pop(key, None) or _View()
        self._sweep(arrived)
        self._views[key] = view  # last: the dict stays least recently asked first
        lent = self.hub.summary(key, since)
        answer: tuple[float, Summary | None, str] | None = (lent[1], lent[0], "live_hub") if lent else None
        if view.done is not None and view.done[0] >= since and (answer is None or view.done[0] > answer[0]):
            answer = (view.done[0], view.done[1], "shared")
        if answer is not None:
            if answer[0] < arrived - self.max_age_s * REFRESH_AHEAD and view.pending is None:
                self._fly(key, view, tp)  # refresh ahead: the next request finds a younger one
            self.metrics.summary_answers.labels(answer[2]).inc()
            return answer[1]
        if view.pending is not None and view.pending.began >= since:
            self.metrics.summary_answers.labels("shared").inc()
            return await asyncio.shield(view.pending.task)
        self.metrics.summary_answers.labels("query").inc()
        return await asyncio.shield(self._fly(key, view, tp))

    def _query(self, key: ViewKey, tp: TimeParams) -> asyncio.Task[Summary | None]:
        task = asyncio.create_task(q.summary(self.store, key.channel_id, key.scope, tp))
        task.add_done_callback(_retrieve)
        return task

    def _fly(self, key: ViewKey, view: _View, tp: TimeParams) -> asyncio.Task[Summary | None]:
        flight = view.pending = _Flight(self.clock(), self._query(key, tp))

        def done(t: asyncio.Task[Summary | None]) -> None:
            if view.pending is flight:
                view.pending = None
            if not t.cancelled() and t.exception() is None and (view.done is None or view.done[0] < flight.began):
                view.done = (flight.began, t.result())  # a failure is not kept: the next request asks again

        flight.task.add_done_callback(done)
        return flight.task

    def _sweep(self, now: float) -> None:
        stale = now - self.max_age_s
        while self._views:
            key, view = next(iter(self._views.items()))
            if len(self._views) <= MAX_KEPT and (view.pending is not None or view.newest() >= stale):
                break
            del self._views[key]


MAX_KEPT = 1024  # views whose last query is kept for sharing
# An answer older than this share of the bound starts a refresh: under load a query takes
# most of a second, and it must be done before the answer it replaces is too old to lend.
REFRESH_AHEAD = 0.25


def _retrieve(task: asyncio.Task[Summary | None]) -> None:
    """Retrieve a failed query's error: every caller may have gone meanwhile."""
    if not task.cancelled():
        task.exception()


SUMMARIES: web.AppKey[SummaryReads] = web.AppKey("summaries", SummaryReads)
