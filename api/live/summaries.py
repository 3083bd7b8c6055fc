"""``GET /v1/channels/{id}/summary`` under a room full of live screens.

At 100 orders/s with 1,100 live viewers, a ``/summary`` query waited behind the live
hub's rounds and the consumers' inserts in the shared storage threads: p99 ~1 s where
the target is 100 ms (docs/BENCHMARKS.md, "Live screens"). Yet the hub has just computed
that very summary for the screens of the same view. So an answer comes, in this order:

1. from the live hub (api.live.hub): the view's newest summary, when it shows every row
   stored up to at most ``LIVESALES_API_MAX_AGE_MS`` before the request arrived;
2. from the same view's last query, done or (else) under way, on the same condition
   (single-flight: concurrent and close requests share one query);
3. from a query of its own, on the API's own storage threads (``ClickHouse.lane``): it
   waits neither behind a round of the hub's queries nor behind an insert.

An answer from 1 or 2 older than a quarter of the bound starts one query in the
background (refresh-ahead; one at a time per view), so a view asked again and again
finds a young enough answer ready (api.freshness) instead of waiting for one every ``LIVESALES_API_MAX_AGE_MS``.

So an answer is exactly what a fresh query would have returned at some moment no more
than ``LIVESALES_API_MAX_AGE_MS`` before the request arrived (docs/DESIGN.md, "Queries"):
every row stored, by any process, before that moment is in it. A view is the channel,
the caller's scope, tz, from and to: a token never gets what another scope's query
returned (a township's payload is not lent to another township, nor the bureau's to a
township). ``LIVESALES_API_MAX_AGE_MS=0`` turns both off: every request queries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from api.auth import Scope
from api.freshness import AsOf, Bound
from api.live.hub import LiveHub
from api.live.view import ViewKey
from api.params import TimeParams
from api.queries import channels as q
from ground.metrics import Metrics
from processors.store import ClickHouse

Summary = dict[str, Any]


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
        self.bound = Bound(max_age_ms / 1000)
        # per view asked lately, its last queries, least recently asked first: swept as
        # they age, so it holds the views asked within the bound, never more than MAX_KEPT
        self._views: dict[ViewKey, AsOf[Summary | None]] = {}

    async def summary(self, channel_id: str, scope: Scope, tp: TimeParams) -> Summary | None:
        """The channel's summary for this scope, or None when it does not exist for it."""
        arrived = self.clock()
        key = ViewKey(channel_id, scope, tp.tz, tp.from_, tp.to)
        if self.bound.off:
            self.metrics.summary_answers.labels("query").inc()
            return await asyncio.shield(AsOf[Summary | None]().fly(arrived, lambda: self._query(key, tp)))
        since = self.bound.oldest(arrived)
        view = self._views.pop(key, None) or AsOf()
        self._sweep(arrived)
        self._views[key] = view  # last: the dict stays least recently asked first
        lent = self.hub.summary(key, since)
        answer: tuple[float, Summary | None, str] | None = (lent[1], lent[0], "live_hub") if lent else None
        if view.done is not None and view.done[0] >= since and (answer is None or view.done[0] > answer[0]):
            answer = (view.done[0], view.done[1], "shared")
        if answer is not None:
            if self.bound.refresh_due(answer[0], arrived) and view.pending is None:
                # refresh ahead: the next request finds a younger one
                view.fly(self.clock(), lambda: self._query(key, tp))
            self.metrics.summary_answers.labels(answer[2]).inc()
            return answer[1]
        if view.pending is not None and view.pending.began >= since:
            self.metrics.summary_answers.labels("shared").inc()
            return await asyncio.shield(view.pending.task)
        self.metrics.summary_answers.labels("query").inc()
        return await asyncio.shield(view.fly(self.clock(), lambda: self._query(key, tp)))

    def _query(self, key: ViewKey, tp: TimeParams) -> Coroutine[Any, Any, Summary | None]:
        return q.summary(self.store, key.channel_id, key.scope, tp)

    def _sweep(self, now: float) -> None:
        stale = self.bound.oldest(now)
        while self._views:
            key, view = next(iter(self._views.items()))
            if len(self._views) <= MAX_KEPT and (view.pending is not None or view.newest() >= stale):
                break
            del self._views[key]


MAX_KEPT = 1024  # views whose last query is kept for sharing


SUMMARIES: web.AppKey[SummaryReads] = web.AppKey("summaries", SummaryReads)
