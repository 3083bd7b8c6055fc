"""Live fan-out: one watcher per channel view per process, shared by all its viewers.

Every live stream used to poll a change marker and re-query summary + minutes on its
own: 300 viewers of one channel made 300 times the queries, and updates queued behind
them for 9-14 s (issue 10). Here:

* a *watcher* per view (channel, scope, tz, from, to) holds the view's newest frame,
  computed once per change and handed to every viewer of the view;
* the consumers wake the watchers of the channels they stored (``LiveHub.stored``, called
  after each successful store), so an update leaves one computation after the insert;
* what another process stored is found by one poll of all watched channels' change
  markers every ``live_poll_ms``. A watcher remembers the marker the last poll had read
  before its computation began (no query of its own), so the poll wakes it only for
  rows that may be missing from what it showed; after a woken computation that is one
  redundant computation, whose identical frame is not re-sent;
* one *lane* computes the due watchers in turns, each round one set of queries for all
  the due watchers of one scope, tz and window (api.live.payloads: a chDB query costs
  ~9 ms of CPU however little it reads, so eleven channels cost about what one does).
  API requests share the storage threads and queue behind one round's queries. A
  watcher is computed at most every ``live_min_interval_ms``, so under a stream of
  inserts it shows the newest state at that pace; and the lane uses at most
  ``live_compute_cores`` of CPU (a pause after each round, in proportion to the
  process's CPU time while it ran): many watched views stretch the rounds instead of
  taking the machine, while on a machine busy elsewhere, where a round waits more than
  it works, no pause is added;
* a viewer holds only the newest frame (a screen needs the latest state, not every
  step); one whose socket has not taken a frame within ``live_send_timeout_s`` is
  dropped, so a slow reader costs at most one frame of memory and then nothing;
* streams are capped per token and per process (429 / 503), and a watcher stops when
  its last viewer leaves. Peers that vanish are noticed by the poll's sweep, not only at
  the next keepalive;
* a watched view's newest summary is lent to ``GET /summary`` of the same view
  (``LiveHub.summary``, api.live.summaries) when its computation began recently enough:
  a room full of screens refreshing the summary costs no query.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from api.alerts import Thresholds
from api.auth import Scope
from api.errors import ApiError
from api.live.payloads import Marker, change_markers, live_payloads
from api.live.view import Viewer, ViewKey, Watcher
from api.params import TimeParams
from api.queries.channel_list import LIVE_WINDOW
from ground.metrics import Metrics
from processors.store import ClickHouse, StorageError

if TYPE_CHECKING:
    from processors.rows import RowSet

log = logging.getLogger(__name__)

RETRY_S = 1.0  # after a failed computation, while storage is away
REFRESH_S = 60.0  # a watched view is recomputed at least this often: status and alerts age
MAX_BATCH = 200  # channels computed in one round of queries
STATUS_MARGIN = timedelta(seconds=5)  # a quiet "live" summary is lent only this far from its window's end
# what a live screen shows (the registry: title, host, region, schedule)
_LIVE_TABLES = frozenset({"order_steps", "stream_stats", "channel_registry"})


@dataclass(frozen=True)
class LiveConfig:
    """Caps and paces of the live screens (the defaults are ground.settings.Tuning's)."""

    max_streams: int = 2000  # open SSE streams per process
    max_streams_per_token: int = 50
    poll_ms: int = 1000  # how often what other processes stored is polled
    min_interval_ms: int = 500  # a channel's watcher recomputes at most this often
    # However many views are watched, computing them takes at most this much CPU:
    # more views make rounds longer, not the API slower.
    compute_cores: float = 0.5
    send_timeout_s: float = 10.0  # a viewer this far behind is dropped
    send_buffer_bytes: int = 256 * 1024  # kernel send buffer per stream; 0: the default
    thresholds: Thresholds = field(default_factory=Thresholds)  # the alerts each update carries


class LiveHub:
    """The process's live watchers and streams; built by the runtime, shared with the API."""

    def __init__(self, store: ClickHouse, config: LiveConfig, metrics: Metrics) -> None:
        self.store = store
        self.config = config
        self.metrics = metrics
        self.max_streams = config.max_streams
        self.max_per_token = config.max_streams_per_token
        self.poll_s = config.poll_ms / 1000
        self.min_interval_s = config.min_interval_ms / 1000
        self.send_timeout_s = config.send_timeout_s
        self.send_buffer_bytes = config.send_buffer_bytes
        self.compute_cores = config.compute_cores
        self._watchers: dict[ViewKey, Watcher] = {}
        self._by_channel: dict[str, set[Watcher]] = {}
        self._needles: dict[str, tuple[bytes, ...]] = {}
        self.markers: dict[str, Marker] = {}  # per watched channel, as the last poll read them
        self.polled_from = -math.inf  # when the last successful poll's query began (monotonic)
        self._per_token: dict[str, int] = {}
        self._streams = 0
        self._poller: asyncio.Task[None] | None = None
        self._lane: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._closed = False

    @property
    def streams(self) -> int:
        return self._streams

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    # -- viewers ----------------------------------------------------------------------
    def join(self, channel_id: str, token: str, scope: Scope, tp: TimeParams, alive: Callable[[], bool]) -> Viewer:
        """A new viewer of the view; 503 beyond the process's cap, 429 beyond the token's."""
        if self._closed:
            raise ApiError(503, "the server is shutting down", headers={"Retry-After": "5"})
        if self._streams >= self.max_streams:
            self.metrics.live_refused.labels("process").inc()
            raise ApiError(503, f"this server already holds {self.max_streams} live streams; retry later",
                           code="too_many_streams", headers={"Retry-After": "30"})  # fmt: skip
        if self._per_token.get(token, 0) >= self.max_per_token:
            self.metrics.live_refused.labels("token").inc()
            raise ApiError(429, f"at most {self.max_per_token} open live streams per token; close one first",
                           code="too_many_streams", headers={"Retry-After": "30"})  # fmt: skip
        key = ViewKey(channel_id, scope, tp.tz, tp.from_, tp.to)
        watcher = self._watchers.get(key)
        if watcher is None:
            watcher = self._watchers[key] = Watcher(self, key, tp)
            self._by_channel.setdefault(channel_id, set()).add(watcher)
            self._needles.setdefault(channel_id, _needles(channel_id))
            self.metrics.live_watchers.set(len(self._watchers))
            if self._poller is None or self._poller.done():
                self._poller = asyncio.create_task(self._poll(), name="live-poll")
            if self._lane is None or self._lane.done():
                self._lane = asyncio.create_task(self._compute_lane(), name="live-lane")
            watcher.wake()
        viewer = Viewer(watcher, token, alive)
        watcher.viewers.add(viewer)
        if watcher.frame is not None:
            viewer.offer(watcher.frame)
        self._per_token[token] = self._per_token.get(token, 0) + 1
        self._streams += 1
        self.metrics.live_streams.set(self._streams)
        return viewer

    def leave(self, viewer: Viewer) -> None:
        """The stream ended (any way); the watcher stops with its last viewer."""
        if viewer.left:
            return
        viewer.left = True
        n = self._per_token[viewer.token] - 1
        if n:
            self._per_token[viewer.token] = n
        else:
            del self._per_token[viewer.token]
        self._streams -= 1
        self.metrics.live_streams.set(self._streams)
        watcher = viewer.watcher
        watcher.viewers.discard(viewer)
        if not watcher.viewers:
            watcher.end()

    def drop(self, viewer: Viewer) -> None:
        """A viewer too slow to take its frames: counted here, closed by its handler."""
        self.metrics.live_dropped.inc()
        log.info("live %s: dropped a viewer that read too slowly", viewer.watcher.key.channel_id)

    def forget(self, watcher: Watcher) -> None:
        if self._watchers.get(watcher.key) is not watcher:
            return
        del self._watchers[watcher.key]
        same = self._by_channel[watcher.key.channel_id]
        same.discard(watcher)
        if not same:
            del self._by_channel[watcher.key.channel_id]
            del self._needles[watcher.key.channel_id]
        self.metrics.live_watchers.set(len(self._watchers))
        self.kick()  # the lane ends with the last watcher

    def kick(self) -> None:
        self._kick.set()

    # -- computing ------------------------------------------------------------------------
    async def _compute_lane(self) -> None:
        """Compute the due watchers, one round of queries at a time, oldest due first
        with every due watcher of the same scope, tz and window. One lane: API requests
        share the storage threads and queue behind one round's queries, not eleven."""
        while self._watchers:
            self._kick.clear()  # wakes from here on are seen by the scan below or set it again
            now = time.monotonic()
            due = [w for w in self._watchers.values() if w.due_since is not None]
            ready = [w for w in due if now >= w.last + self.min_interval_s]
            if not ready:
                wait = min((w.last + self.min_interval_s - now for w in due), default=None)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._kick.wait()
                continue
            first = min(ready, key=lambda w: w.due_since or now)
            batch = (first.key.scope, first.key.tz, first.key.lo, first.key.hi)
            group = [w for w in ready if (w.key.scope, w.key.tz, w.key.lo, w.key.hi) == batch][:MAX_BATCH]
            cpu = time.process_time()
            await self._compute(group, now)
            # pause so that live computing's CPU per second stays within its cores (the
            # whole process's CPU meanwhile: an upper bound; none when the time went to waiting)
            spent = time.process_time() - cpu
            await asyncio.sleep(max(0.0, spent / self.compute_cores - (time.monotonic() - now)))

    async def _compute(self, group: list[Watcher], now: float) -> None:
        for w in group:
            w.due_since, w.last = None, now
        # What the last poll read, before this began: a row stored after that read is
        # in the payloads or makes the next poll read a different marker and wake them.
        markers = {w: self.markers.get(w.key.channel_id) for w in group}
        key = group[0].key
        try:
            payloads = await live_payloads(
                self.store, [w.key.channel_id for w in group], key.scope, group[0].tp, self.config.thresholds
            )
        except StorageError as exc:
            log.warning("live: storage failed (%s); retrying in %.0f s", exc, RETRY_S)
            for w in group:
                w.error = exc
                w.started.set()
            loop = asyncio.get_running_loop()
            for w in group:
                loop.call_later(RETRY_S, w.wake)
            return
        except Exception:
            log.exception("live: computing %d views failed; closing their streams", len(group))
            for w in group:
                w.end()
            return
        self.metrics.live_payloads.inc(len(group))
        self.metrics.live_compute_seconds.observe(time.monotonic() - now)
        for w in group:
            if not w.gone:
                w.show(payloads.get(w.key.channel_id), markers[w], now)

    # -- lending to /summary --------------------------------------------------------------
    def summary(self, key: ViewKey, since: float) -> tuple[dict[str, Any], float] | None:
        """The view's newest summary and the moment (monotonic) before which it shows every
        row stored, if that is at or after ``since``; else None. That moment is when its
        computation began; or, while it is *quiet* (not woken since, no computation begun
        since), when the last poll began, if after both: that poll found no change (one
        would have woken it), so nothing was stored between. The key is the whole view,
        scope included, so a caller gets only what a query with its own scope would show."""
        watcher = self._watchers.get(key)
        if watcher is None or watcher.gone or watcher.summary is None:
            return None
        shown = watcher.summary_from
        if shown >= since:
            return watcher.summary, shown
        quiet = watcher.due_since is None and watcher.last == shown
        if quiet and self.polled_from > shown and self.polled_from >= since and self._still(watcher):
            return watcher.summary, self.polled_from
        return None

    def _still(self, watcher: Watcher) -> bool:
        """Whether a quiet summary's status still holds now, with no row stored since: a
        channel stays ended; it stays live while its newest order row is within the live
        window (the order marker); a scheduled one may start at any moment: not lent."""
        status = (watcher.summary or {}).get("status")
        if status == "ended":
            return True
        newest = self.markers.get(watcher.key.channel_id, (None, None, None))[0]
        if status != "live" or newest is None:
            return False
        if newest.tzinfo is None:
            newest = newest.replace(tzinfo=UTC)
        return newest >= datetime.now(UTC) - LIVE_WINDOW + STATUS_MARGIN

    # -- what woke us ---------------------------------------------------------------------
    def stored(self, row_sets: Iterable[RowSet]) -> None:
        """The writer stored these rows: wake the watchers of their channels.

        Matches the channels watched (few) against the rows' JSON (one C substring scan
        each) instead of parsing every row; a false match only costs a recomputation,
        and a miss (a channel id written with escapes) is caught by the poll."""
        if not self._by_channel:
            return
        blocks = [b"\n".join(rs.payloads) for rs in row_sets if rs.table in _LIVE_TABLES and len(rs)]
        if not blocks:
            return
        for channel, watchers in self._by_channel.items():
            if any(needle in block for needle in self._needles[channel] for block in blocks):
                for watcher in watchers:
                    watcher.wake()

    async def _poll(self) -> None:
        """While anything is watched: sweep out vanished peers, and wake the watchers
        whose channel another process (or anything but our consumers) stored rows of."""
        while self._watchers:
            await asyncio.sleep(self.poll_s)
            for watcher in list(self._watchers.values()):
                for viewer in watcher.viewers:
                    if not viewer.alive():
                        viewer.close()  # its handler leaves
            if not self._by_channel:
                continue
            began = time.monotonic()
            try:
                markers = await change_markers(self.store, list(self._by_channel))
            except StorageError as exc:
                log.warning("live poll failed (%s); retrying", exc)
                continue
            self.metrics.live_polls.inc()
            self.markers, self.polled_from = markers, began
            for channel, watchers in list(self._by_channel.items()):
                marker = markers.get(channel)
                for watcher in watchers:
                    # a status or an alert can change with time alone (a channel stops
                    # being live with nothing stored): recompute now and then regardless
                    if watcher.marker != marker or time.monotonic() - watcher.last > REFRESH_S:
                        watcher.wake()

    async def close(self) -> None:
        """End every stream and stop every task (app shutdown)."""
        self._closed = True
        for watcher in list(self._watchers.values()):
            watcher.end()
        tasks = [t for t in (self._poller, self._lane) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _needles(channel_id: str) -> tuple[bytes, ...]:
    """The channel id as a JSON string, as producers write it (UTF-8, or \\u-escaped)."""
    plain = json.dumps(channel_id, ensure_ascii=False).encode()
    escaped = json.dumps(channel_id).encode()
    return (plain,) if plain == escaped else (plain, escaped)
