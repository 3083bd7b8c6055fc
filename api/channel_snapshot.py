"""``GET /v1/channels`` from an in-process snapshot of the folded per-channel state.

A page from ``channel_state`` (api.queries.channel_list) FINAL-folds the state of every
channel to filter and sort it: at 100,000 channels 76 ms p50 and 334 ms p99 on a loaded
machine, several times more once the state has unmerged parts (docs/BENCHMARKS.md).
Here each API process keeps the folded state in memory, columnar (numpy arrays in page
order for the filters, scope, status and keyset; one tuple per channel for the page's
fields), and answers a page in about a millisecond.

**Fresh within a bound, whoever wrote.** The snapshot only reads ClickHouse, so what any
process stored shows in it. A refresh, in the background while pages are asked for:

1. notes the time, then reads the highest block number of ``channel_state``'s active
   parts (``system.parts``). A MergeTree numbers an insert's block when it commits it,
   under the lock that makes the part visible, so every row visible now is in a block
   ≤ that number, and a part with
   a higher number than the snapshot has seen holds rows it has not (a merge keeps its
   sources' highest number: merged parts of seen blocks are not re-read);
2. if that number is new, FINAL-folds again the channels found in parts above the last
   seen number (all channels on the first load), and replaces their rows.

So a snapshot holds every row stored, by any process, before its refresh began: it is
what the query path would have answered then. A page is answered from it only when
that moment is at most ``LIVESALES_API_MAX_AGE_MS`` before the request arrived (like
/summary's bound, api.live.summaries); else by the query path. With ``from``/``to``, the
channels with events in the range come from one query of ``channel_minutes`` (or of
the rows, within one minute: api.queries.channel_list.active_ids), read after the
request arrived; the schedules and everything else from the snapshot.
``live`` and the status are computed at request time from the stored times, as the
query does. Block numbers are per server: on a cluster (``LIVESALES_CLICKHOUSE_CLUSTER``,
Replicated tables numbered by the keeper) the snapshot is off and every page queries.

The refresh runs while pages are asked for (and a minute after the last one), so an idle
API process costs its store nothing; the first page after a pause takes the query path.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from aiohttp import web

from api.auth import Scope
from api.freshness import REFRESH_AHEAD, Bound
from api.params import TimeParams
from api.queries.channel_list import LIVE_WINDOW, NO_SUBCOLUMNS, ListFilters, encode_cursor, render_row, state_rows
from processors.store import ClickHouse

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]
NULL_MS = -(2**62)  # a NULL time, in ms: never live, never scheduled
IDLE_S = 60.0  # refreshes stop this long after the last page asked for
PLACES = ("platform", "district", "township")
# The fields of a page's channel, per channel (render_row's, less the status).
FIELDS = ("channel_id", "platform", "district", "township", "paid_orders", "gmv_fen", "first_at", "last_at",
          "title", "host", "scheduled_start", "scheduled_end")  # fmt: skip
_TOP_BLOCK = "toUInt64(splitByChar('_', _part)[3])"  # all_<min block>_<max block>_<level>[_<mutation>]
# the parts listed active are those whose rows queries see; no row is read
TOP_BLOCK_SQL = """SELECT max(max_block_number) AS top FROM system.parts
    WHERE database = currentDatabase() AND table = 'channel_state' AND active"""
_MS_OR_NULL = f"coalesce(toUnixTimestamp64Milli({{}}), toInt64({NULL_MS}))"


def _state_sql(where: str) -> str:
    """The fields, sort key and the two times the filters need as ms (NULL_MS for NULL)."""
    return f"""SELECT *, {_MS_OR_NULL.format("last_stored")} AS stored_ms,
           {_MS_OR_NULL.format("scheduled_start")} AS start_ms, {_MS_OR_NULL.format("scheduled_end")} AS end_ms
    FROM ({state_rows(*FIELDS[1:], "k", "last_stored")} {where})
    {NO_SUBCOLUMNS}"""  # noqa: S608 - fixed SQL


ALL_SQL = _state_sql("")
_IN_NEW_PARTS = f"SELECT channel_id FROM channel_state WHERE {_TOP_BLOCK} > {{seen:UInt64}}"  # noqa: S608
CHANGED_SQL = _state_sql(f"WHERE channel_id IN ({_IN_NEW_PARTS})")  # the block number is a bound parameter

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_ms(value: datetime | None) -> int:
    if value is None:
        return NULL_MS
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MS


@dataclass(frozen=True)
class Snapshot:
    """The folded state of every channel, in page order (last event descending, then
    channel_id), as of ``as_of`` (monotonic: before the refresh that made it began)."""

    as_of: float
    rows: list[tuple[Any, ...]]  # FIELDS per channel
    ids: list[str]  # channel_id per channel (bisected for a cursor)
    neg_k: I64  # -k (ascending), k = last event ms or -1
    codes: dict[str, dict[str, int]]  # per place column, its values' codes (only ever grow)
    places: dict[str, npt.NDArray[np.int32]]  # per place column, each channel's code
    last_stored: I64
    scheduled_start: I64
    scheduled_end: I64

    @functools.cached_property
    def pos(self) -> dict[str, int]:
        """channel_id -> its index (page order); built on the first ranged page, not per refresh."""
        return {c: i for i, c in enumerate(self.ids)}

    def in_range(self, active: Collection[str], lo: datetime, hi: datetime) -> npt.NDArray[np.bool_]:
        """Per channel, whether it belongs to [lo, hi) as api.queries.channel_list's
        ``active_in_range`` says: an event in it (``active``), or a schedule overlapping it."""
        hit = np.zeros(len(self.rows), dtype=np.bool_)
        hit[[i for c in active if (i := self.pos.get(c)) is not None]] = True
        start = self.scheduled_start
        end = np.where(self.scheduled_end == NULL_MS, start, self.scheduled_end)  # coalesce(end, start)
        scheduled = (start != NULL_MS) & (start < to_ms(hi)) & (end >= to_ms(lo))
        belongs: npt.NDArray[np.bool_] = hit | scheduled
        return belongs

    def _start(self, cursor: tuple[int, str] | None) -> int:
        """The index of the first channel after the cursor's key."""
        if cursor is None:
            return 0
        lo = int(np.searchsorted(self.neg_k, -cursor[0], "left"))
        hi = int(np.searchsorted(self.neg_k, -cursor[0], "right"))
        return bisect.bisect_right(self.ids, cursor[1], lo, hi)

    def page(
        self, scope: Scope, tp: TimeParams, f: ListFilters, now: datetime, active: Collection[str] | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """What api.queries.channel_list.list_channels answers; with ``from``/``to``,
        ``active`` must be the channels with events in the range (``active_ids``)."""
        start = self._start(f.cursor)
        wanted = {"platform": f.platform, "district": f.district, "township": f.township}
        scoped = {"district": scope.district, "township": scope.township if scope.district else None}
        mask: npt.NDArray[np.bool_] | None = None

        def keep(part: npt.NDArray[np.bool_]) -> None:
            nonlocal mask
            mask = part if mask is None else mask & part

        for values in (wanted, scoped):
            for name, value in values.items():
                if value is not None:
                    code = self.codes[name].get(value, -1)  # a value never seen: no channel
                    keep(self.places[name][start:] == code)
        if tp.from_ is not None or tp.to is not None:
            if active is None:
                raise ValueError("a range needs the channels active in it")
            keep(self.in_range(active, *tp.bounds())[start:])
        now_ms = to_ms(now)
        live = self.last_stored[start:] >= now_ms - LIVE_WINDOW // _MS if f.status is not None else None
        if live is not None:
            scheduled = ~live & (self.scheduled_start[start:] > now_ms)
            keep({"live": live, "scheduled": scheduled, "ended": ~live & ~scheduled}[f.status or ""])
        n = f.limit + 1
        if mask is None:
            picked = range(start, min(start + n, len(self.rows)))
        else:
            picked = (np.flatnonzero(mask)[:n] + start).tolist()
        page = [self._render(i, tp, now_ms) for i in picked]
        more = len(page) > f.limit
        page = page[: f.limit]
        cursor = encode_cursor((-int(self.neg_k[picked[f.limit - 1]]), page[-1]["channel_id"])) if more else None
        return page, cursor

    def _render(self, i: int, tp: TimeParams, now_ms: int) -> dict[str, Any]:
        r = dict(zip(FIELDS, self.rows[i], strict=True))
        if self.last_stored[i] >= now_ms - LIVE_WINDOW // _MS:
            r["status"] = "live"
        else:
            r["status"] = "scheduled" if self.scheduled_start[i] > now_ms else "ended"
        return render_row(r, tp)


class _Folded:
    """The refresher's own copy of the state (by channel, in arrival order): a refresh
    replaces the changed channels' rows here and publishes a new Snapshot in page order."""

    def __init__(self) -> None:
        self.slot: dict[str, int] = {}
        self.rows: list[tuple[Any, ...]] = []
        self.k: I64 = np.zeros(0, dtype=np.int64)
        self.last_stored: I64 = np.zeros(0, dtype=np.int64)
        self.scheduled_start: I64 = np.zeros(0, dtype=np.int64)
        self.scheduled_end: I64 = np.zeros(0, dtype=np.int64)
        self.codes: dict[str, dict[str, int]] = {name: {} for name in PLACES}
        self.places: dict[str, npt.NDArray[np.int32]] = {name: np.zeros(0, dtype=np.int32) for name in PLACES}
        self.rank: I64 | None = None  # each slot's rank by channel_id; None: to be computed

    def apply(self, rows: list[dict[str, Any]]) -> None:
        """Replace (or add) the channels of ``rows``: Python per row only where it must be."""
        slots = np.empty(len(rows), dtype=np.int64)
        for j, r in enumerate(rows):
            cid = r["channel_id"]
            i = self.slot.get(cid)
            if i is None:
                i = self.slot[cid] = len(self.rows)
                self.rows.append(())
            self.rows[i] = tuple(map(r.__getitem__, FIELDS))
            slots[j] = i
        grow = len(self.rows) - len(self.k)
        if grow:
            self.rank = None
            zeros = np.zeros(grow, dtype=np.int64)
            self.k, self.last_stored, self.scheduled_start, self.scheduled_end = (
                np.concatenate((a, zeros))
                for a in (self.k, self.last_stored, self.scheduled_start, self.scheduled_end)
            )
            self.places = {n: np.concatenate((a, np.zeros(grow, dtype=np.int32))) for n, a in self.places.items()}
        n = len(rows)
        self.k[slots] = np.fromiter((r["k"] for r in rows), np.int64, n)
        self.last_stored[slots] = np.fromiter((r["stored_ms"] for r in rows), np.int64, n)
        self.scheduled_start[slots] = np.fromiter((r["start_ms"] for r in rows), np.int64, n)
        self.scheduled_end[slots] = np.fromiter((r["end_ms"] for r in rows), np.int64, n)
        for name in PLACES:
            codes = self.codes[name]
            self.places[name][slots] = np.fromiter((codes.setdefault(r[name], len(codes)) for r in rows), np.int32, n)

    def publish(self, as_of: float) -> Snapshot:
        if self.rank is None:
            by_id = sorted(range(len(self.rows)), key=lambda i: self.rows[i][0])  # by channel_id
            self.rank = np.empty(len(by_id), dtype=np.int64)
            self.rank[by_id] = np.arange(len(by_id), dtype=np.int64)
        neg_k = -self.k
        order = np.lexsort((self.rank, neg_k))
        rows = [self.rows[i] for i in order.tolist()]
        return Snapshot(
            as_of=as_of,
            rows=rows,
            ids=[r[0] for r in rows],
            neg_k=neg_k[order],
            codes={name: dict(codes) for name, codes in self.codes.items()},
            places={name: v[order] for name, v in self.places.items()},
            last_stored=self.last_stored[order],
            scheduled_start=self.scheduled_start[order],
            scheduled_end=self.scheduled_end[order],
        )


class ChannelSnapshots:
    """The process's channel list snapshot and its background refresh."""

    def __init__(self, store: ClickHouse, max_age_ms: int) -> None:
        self.store = store
        self.bound = Bound(max_age_ms / 1000)
        self.enabled = max_age_ms > 0 and not store.cluster
        self.snapshot: Snapshot | None = None
        self._folded = _Folded()
        self._seen = 0  # the highest block number folded in
        self._asked = -float("inf")  # monotonic time of the last page asked for
        self._wake = asyncio.Event()
        self._refreshing = asyncio.Lock()  # one refresh at a time folds into _folded
        self.answered = {"snapshot": 0, "query": 0}  # pages asked for, by where they were answered

    def fresh(self) -> Snapshot | None:
        """The snapshot when young enough to answer a request arriving now, else None
        (the caller queries). Asking keeps (or starts) the background refresh."""
        if not self.enabled:
            return None
        arrived = time.monotonic()
        self._asked = arrived
        self._wake.set()
        snap = self.snapshot
        if snap is None or not self.bound.lends(snap.as_of, arrived):
            self.answered["query"] += 1
            return None
        self.answered["snapshot"] += 1
        return snap

    def declined(self) -> None:
        """The fresh snapshot given out was not used after all (a range too wide for it)."""
        self.answered["snapshot"] -= 1
        self.answered["query"] += 1

    async def refresh(self) -> None:
        """One refresh (see the module's docstring); raises StorageError."""
        async with self._refreshing:
            await self._refresh()

    async def _refresh(self) -> None:
        began = time.monotonic()
        (row,) = await self.store.query(TOP_BLOCK_SQL)
        top = int(row["top"])
        if top < self._seen:  # the table was dropped and made again: start over
            self._folded, self._seen, self.snapshot = _Folded(), 0, None
        if top != self._seen or self.snapshot is None:
            if self._seen == 0:
                rows = await self.store.query(ALL_SQL)
            else:
                rows = await self.store.query(CHANGED_SQL, {"seen": self._seen})
            # folding 100,000 rows takes a while: off the event loop (only this task touches _folded)
            self.snapshot = await asyncio.to_thread(self._fold, rows, began)
            self._seen = top
        else:  # nothing stored since: the same data, younger
            self.snapshot = dataclasses.replace(self.snapshot, as_of=began)

    def _fold(self, rows: list[dict[str, Any]], began: float) -> Snapshot:
        self._folded.apply(rows)
        return self._folded.publish(began)

    async def run(self) -> None:
        """Refresh about four times per bound while pages are asked for."""
        interval = self.bound.max_age_s * REFRESH_AHEAD
        failures = 0
        while True:
            if time.monotonic() - self._asked > IDLE_S:
                self._wake.clear()
                await self._wake.wait()
            started = time.monotonic()
            try:
                await self.refresh()
                failures = 0
            except Exception:  # storage down or not migrated yet: pages query meanwhile
                failures += 1
                log.warning("channel list snapshot refresh failed (%d in a row)", failures, exc_info=failures == 1)
            pause = interval if not failures else min(30.0, interval * 2**failures)
            await asyncio.sleep(max(0.0, pause - (time.monotonic() - started)))


async def channel_snapshots_ctx(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup_ctx: the refresh task lives as long as the app."""
    snapshots = app[CHANNEL_SNAPSHOTS]
    task = asyncio.create_task(snapshots.run()) if snapshots.enabled else None
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


CHANNEL_SNAPSHOTS: web.AppKey[ChannelSnapshots] = web.AppKey("channel_snapshots", ChannelSnapshots)
