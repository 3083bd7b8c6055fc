"""``GET /v1/channels/{id}/summary`` under a room full of live screens.

At 100 orders/s with 1,100 live viewers, a ``/summary`` query waited behind the live
hub's rounds and the consumers' inserts in the shared storage threads: p99 ~1 s where
the target is 100 ms (docs/BENCHMARKS.md, "Live screens"). Yet the hub has just computed
that very summary for the screens of the same view. So an answer comes, in this order:

1. from the live hub (api.live_hub): the view's newest summary, when its computation
   began at most ``summary_max_age_ms`` before the request arrived;
2. from a query for the same view under way or done lately (single-flight, and kept
   while it is that young), on the same condition;
3. from a query of its own, on the API's own storage threads (``ClickHouse.lane``): it
   waits neither behind a round of the hub's queries nor behind an insert.

So an answer is exactly what a fresh query would have returned at some moment no more
than ``summary_max_age_ms`` before the request arrived (docs/DESIGN.md, "Queries"):
every row stored, by any process, before that moment is in it. A view is the channel,
the caller's scope, tz, from and to: a token never gets what another scope's query
returned (a township's payload is not lent to another township, nor the bureau's to a
township). ``summary_max_age_ms = 0`` turns both off: every request queries.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from api.auth import Scope
from api.live_hub import LiveHub, ViewKey
from api.params import TimeParams
from api.queries import channels as q
from livesales.metrics import Metrics
from processors.store import ClickHouse

Summary = dict[str, Any]


@dataclass
class _Flight:
    began: float  # monotonic, before the query was issued: it shows every row stored before then
    task: asyncio.Task[Summary | None]


class SummaryReads:
    """The process's ``/summary`` answers: lent by the live hub, shared, or queried."""

    def __init__(self, store: ClickHouse, hub: LiveHub, metrics: Metrics, max_age_ms: int) -> None:
        self.store = store
        self.hub = hub
        self.metrics = metrics
        self.max_age_s = max_age_ms / 1000
        # per view, its newest query (under way or done), oldest first: swept as they age,
        # so it holds at most the views asked for within the bound, and never more than MAX_KEPT
        self._flights: dict[ViewKey, _Flight] = {}

    async def summary(self, channel_id: str, scope: Scope, tp: TimeParams) -> Summary | None:
        """The channel's summary for this scope, or None when it does not exist for it."""
        arrived = time.monotonic()
        key = ViewKey(channel_id, scope, tp.tz, tp.from_, tp.to)
        if self.max_age_s > 0:
            since = arrived - self.max_age_s
            lent = self.hub.summary(key, since)
            if lent is not None:
                self.metrics.summary_answers.labels("live_hub").inc()
                return lent
            flight = self._flights.get(key)
            if flight is not None and flight.began >= since:
                self.metrics.summary_answers.labels("shared").inc()
                return await asyncio.shield(flight.task)
        self.metrics.summary_answers.labels("query").inc()
        return await asyncio.shield(self._fly(key, tp, arrived))

    def _fly(self, key: ViewKey, tp: TimeParams, now: float) -> asyncio.Task[Summary | None]:
        task = asyncio.create_task(q.summary(self.store, key.channel_id, key.scope, tp))
        if self.max_age_s <= 0:
            task.add_done_callback(_retrieve)
            return task
        self._flights.pop(key, None)  # re-inserted last: the dict stays oldest first
        flight = self._flights[key] = _Flight(time.monotonic(), task)

        def done(t: asyncio.Task[Summary | None]) -> None:
            if (t.cancelled() or _retrieve(t) is not None) and self._flights.get(key) is flight:
                del self._flights[key]  # a failure is not kept: the next request asks again

        task.add_done_callback(done)
        stale = now - self.max_age_s
        while self._flights:
            oldest_key, oldest = next(iter(self._flights.items()))
            if oldest.began >= stale and len(self._flights) <= MAX_KEPT:
                break
            del self._flights[oldest_key]
        return task


MAX_KEPT = 1024  # views whose last query is kept for sharing


def _retrieve(task: asyncio.Task[Summary | None]) -> BaseException | None:
    """A done query's error, retrieved (every caller may have gone meanwhile), or None."""
    return None if task.cancelled() else task.exception()


SUMMARIES: web.AppKey[SummaryReads] = web.AppKey("summaries", SummaryReads)
