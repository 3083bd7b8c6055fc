"""``GET /v1/channels/{id}/summary`` under a room full of live screens.

At 100 orders/s with 1,100 live viewers, a ``/summary`` query waited behind the live
hub's rounds and the consumers' inserts in the shared storage threads: p99 ~1 s where
the target is 100 ms (docs/BENCHMARKS.md, "Live screens"). Yet the hub has just computed
that very summary for the screens of the same view. So an answer comes, in this order:

1. from the live hub (api.live_hub): the view's newest summary, or the one being
   computed (awaited), when that computation began at most ``summary_max_age_ms``
   before the request arrived;
2. from a query for the same view already under way (single-flight), on the same
   condition;
3. from a query of its own, which later identical requests may share.

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
        self._flights: dict[ViewKey, _Flight] = {}  # one per view at most, gone when done

    async def summary(self, channel_id: str, scope: Scope, tp: TimeParams) -> Summary | None:
        """The channel's summary for this scope, or None when it does not exist for it."""
        arrived = time.monotonic()
        key = ViewKey(channel_id, scope, tp.tz, tp.from_, tp.to)
        if self.max_age_s > 0:
            since = arrived - self.max_age_s
            lent = await self.hub.summary(key, since)
            if lent is not None:
                self.metrics.summary_answers.labels("live_hub").inc()
                return lent
            flight = self._flights.get(key)
            if flight is not None and flight.began >= since:
                self.metrics.summary_answers.labels("shared").inc()
                return await asyncio.shield(flight.task)
        self.metrics.summary_answers.labels("query").inc()
        return await asyncio.shield(self._fly(key, tp))

    def _fly(self, key: ViewKey, tp: TimeParams) -> asyncio.Task[Summary | None]:
        began = time.monotonic()
        task = asyncio.create_task(q.summary(self.store, key.channel_id, key.scope, tp))
        flight = self._flights[key] = _Flight(began, task)

        def done(t: asyncio.Task[Summary | None]) -> None:
            if self._flights.get(key) is flight:
                del self._flights[key]
            if not t.cancelled():
                t.exception()  # retrieved here too: every caller may have gone meanwhile

        task.add_done_callback(done)
        return task


SUMMARIES: web.AppKey[SummaryReads] = web.AppKey("summaries", SummaryReads)
