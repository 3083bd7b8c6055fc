"""Exactly-once counting: decide which rows of a batch were never stored, by any process.

Three sieves, cheapest first:
1. within the batch (a set of exact keys);
2. Bloom filters of the stored ``event_hash`` / ``step_hash`` *within the horizon*: rows
   whose event time is at most ``horizon`` old, or which were stored that recently. A
   "no" is final only for a row whose own event time lies within the horizon. An older
   row (a replayed sale, a backfill, a very late arrival) is answered by a *window*
   filter of the rows whose event time lies within a horizon of its UTC day, loaded
   when first needed and evicted when the windows hold too many rows. So memory follows
   the horizon and the days being replayed, not all history;
3. an exact look-up in ClickHouse on the full key, for the few "maybe" rows (and for
   old rows whose window did not fit).

Several processes write one store, so a filter is only trusted once it knows what every
one of them stored: ``refresh`` reads the parts that appeared since it last looked
(processors.seen_parts), and the writer calls it right before every decision. ClickHouse
stays the one truth; docs/DESIGN.md ("Exactly-once counting") has the argument and the
race that remains. Hashes are added *before* the insert: if the insert fails after
landing and is retried, the retry goes to the exact look-up and cannot double a row.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from clickhouse_connect.driver.client import Client

from processors.bloom import BloomFilter
from processors.rows import CHANNELS, ONBOARDING, ORDERS, STATS, RowSet, TableSpec
from processors.seen_parts import UNREAD, SeenBlocks, active_parts, part_of

log = logging.getLogger(__name__)

_MIN_CAPACITY = 1 << 20
_WINDOW_MIN_CAPACITY = 1 << 14
_DAY_MS = 86_400_000
DEFAULT_HORIZON_S = 48 * 3600.0
MAX_WINDOW_ROWS = 4_000_000  # rows held by all window filters of a table together
_NEVER = 1 << 62  # a cutoff no event reaches: nothing is answered from memory before load()

# Every deduped table has ``event_hash``, ``occurred_at`` and ``stored_at`` columns (and
# ``step_hash`` when its spec has step fields): a new spec plugs in by being listed here.
SPECS = {spec.table: spec for spec in (ORDERS, ONBOARDING, STATS, CHANNELS)}

U64 = npt.NDArray[np.uint64]


class _Window:
    """Filters of the rows whose event time lies within a horizon of one UTC day."""

    def __init__(self, events: U64, steps: U64, has_steps: bool) -> None:
        capacity = max(_WINDOW_MIN_CAPACITY, 2 * len(events))
        self.events, self.steps = BloomFilter(capacity), BloomFilter(capacity)
        self.events.add(events)
        if has_steps:
            self.steps.add(steps)
        self.rows = len(events)


class TableDeduper:
    def __init__(
        self, spec: TableSpec, horizon_s: float = DEFAULT_HORIZON_S, clock: Callable[[], float] = time.time
    ) -> None:
        self.spec = spec
        self.horizon_s = horizon_s
        self._clock = clock
        self.events = BloomFilter(_MIN_CAPACITY)
        self.steps = BloomFilter(_MIN_CAPACITY)
        self.cutoff_ms = _NEVER  # rows with an earlier event time are never answered from memory
        self.built_at = -math.inf
        self.seen = SeenBlocks()
        self.windows: OrderedDict[int, _Window] = OrderedDict()  # UTC day -> filters, least recent first
        self.max_window_rows = MAX_WINDOW_ROWS
        self.oversized: set[int] = set()  # days whose window alone holds too many rows
        self.lookups = 0  # rows sent to the exact look-up (observability, benchmarks)
        self.refreshed = 0  # rows read back by refresh (observability, benchmarks)

    # -- what is stored -----------------------------------------------------------------
    def load(self, client: Client) -> int:
        """(Re)build the filters from the rows within the horizon, sized for twice as many.

        The parts listed *before* the read are marked read: the read's snapshot holds all
        of their rows (in them, or in what they were merged into meanwhile). A part that
        appears between the two is read again by the next refresh, which is harmless.
        """
        now = self._clock()
        cutoff_ms = int((now - self.horizon_s) * 1000)
        parts = active_parts(client, self.spec.table)
        events, steps = self._read(client, cutoff_ms)
        n = len(events)
        capacity = max(_MIN_CAPACITY, 2 * n)
        self.events, self.steps = BloomFilter(capacity), BloomFilter(capacity)
        self._add(events, steps)
        self.seen = SeenBlocks()
        for part in parts:
            self.seen.add(part)
        self.cutoff_ms, self.built_at = cutoff_ms, now
        # A window holds what was stored before it was loaded; what came later is in the
        # main filters (stored recently), until they are rebuilt: then windows go too.
        self.windows.clear()
        self.oversized.clear()
        log.info("dedupe filter for %s loaded with %d rows within the horizon", self.spec.table, n)
        return n

    def refresh(self, client: Client) -> int:
        """Learn what any process stored since the last look; call before ``select_new``.

        One query: the rows of every part holding a block this process has not read
        (seen_parts.UNREAD prunes the others before reading). The query's own snapshot
        decides which parts those are, so a part merged away meanwhile is read in its
        merge result; merges of parts already read are skipped. The filters are rebuilt
        when full or half a horizon old, so they hold the rows of at most 1.5 horizons
        and memory does not grow with history.
        """
        if self.events.full or self.steps.full or self._clock() - self.built_at > self.horizon_s / 2:
            return self.load(client)
        step = "step_hash" if self.spec.step_fields else "toUInt64(0)"
        partitions, lows, highs = self.seen.arrays()
        # one row per unread part (a column of part names per row cost more than the read)
        parts = client.query(
            "SELECT sh, _part, groupArrayIf(e, k), groupArrayIf(s, k) FROM ("  # noqa: S608
            f"SELECT shardNum() AS sh, _part, event_hash AS e, {step} AS s,"
            " (occurred_at >= fromUnixTimestamp64Milli({c:Int64})"
            " OR stored_at >= now64(3) - toIntervalMillisecond({h:Int64})) AS k"
            f" FROM {self.spec.table} WHERE {UNREAD}) GROUP BY sh, _part",
            parameters={
                "c": self.cutoff_ms, "h": int(self.horizon_s * 1000), "rp": partitions, "rl": lows, "rh": highs,
            },
        ).result_rows  # fmt: skip
        learnt = 0
        for shard, name, events, steps in parts:
            self._add(np.array(events, dtype=np.uint64), np.array(steps, dtype=np.uint64))
            self.seen.add(part_of(str(name), int(shard)))
            learnt += len(events)
        self.refreshed += learnt
        return learnt

    def _read(self, client: Client, cutoff_ms: int) -> tuple[U64, U64]:
        """Key hashes of the rows within the horizon: event time at or after the cutoff, or
        stored (by ClickHouse's own clock) less than a horizon ago. Two legs, so that each
        can use its minmax index (schemas.ddl, migrations 3 and 4)."""
        table = self.spec.table
        step = "step_hash" if self.spec.step_fields else "toUInt64(0)"
        cut = "fromUnixTimestamp64Milli({c:Int64})"
        sql = (
            f"SELECT event_hash AS e, {step} AS s FROM {table} WHERE occurred_at >= {cut}"  # noqa: S608
            f" UNION ALL SELECT event_hash AS e, {step} AS s FROM {table} WHERE occurred_at < {cut}"
            " AND stored_at >= now64(3) - toIntervalMillisecond({h:Int64})"
        )
        return _columns(client.query_np(sql, parameters={"c": cutoff_ms, "h": int(self.horizon_s * 1000)}))

    def _window(self, client: Client, day: int, keep: set[int]) -> _Window | None:
        """The window filters of ``day``, loaded if need be; None if they do not fit."""
        window = self.windows.get(day)
        if window is not None:
            self.windows.move_to_end(day)
            return window
        if day in self.oversized:
            return None
        skew = int(self.horizon_s * 1000)
        step = "step_hash" if self.spec.step_fields else "toUInt64(0)"
        res = client.query_np(
            f"SELECT event_hash AS e, {step} AS s FROM {self.spec.table}"  # noqa: S608
            " WHERE occurred_at >= fromUnixTimestamp64Milli({a:Int64})"
            " AND occurred_at < fromUnixTimestamp64Milli({b:Int64})",
            parameters={"a": day * _DAY_MS - skew, "b": (day + 1) * _DAY_MS + skew},
        )
        events, steps = _columns(res)
        if len(events) > self.max_window_rows:  # never fits: do not read it again per batch
            self.oversized.add(day)
            return None
        held = sum(w.rows for w in self.windows.values())
        for other in list(self.windows):  # least recently used first
            if held + len(events) <= self.max_window_rows:
                break
            if other not in keep:
                held -= self.windows.pop(other).rows
        if held + len(events) > self.max_window_rows:
            return None
        window = self.windows[day] = _Window(events, steps, bool(self.spec.step_fields))
        return window

    def _add(self, events: U64, steps: U64) -> None:
        self.events.add(events)
        if self.spec.step_fields:
            self.steps.add(steps)

    # -- the decision ---------------------------------------------------------------------
    def select_new(self, client: Client, rows: RowSet) -> list[int]:
        """Indices of rows never stored (``rows`` holds no repeats of its own: KeysBuilder).

        Exact only if ``refresh`` ran since anything else was stored (the writer does so)."""
        has_steps = bool(self.spec.step_fields)
        candidates = list(range(len(rows)))
        if not candidates:
            return []
        maybe = self.events.might_contain(rows.event_hashes)
        if has_steps:
            maybe |= self.steps.might_contain(rows.step_hashes)
        old = rows.occurred_ms < self.cutoff_ms  # older than the horizon: the windows answer
        if old.any():
            maybe |= self._old_maybe(client, rows, old)
        doubtful = np.flatnonzero(maybe).tolist()
        if not doubtful:
            return candidates
        stored_events, stored_steps = self._lookup(client, rows, doubtful)
        dup = set()
        for i in doubtful:
            eid, step = rows.keys(i)
            if eid in stored_events or (has_steps and step in stored_steps):
                dup.add(i)
        return [i for i in candidates if i not in dup]

    def _old_maybe(self, client: Client, rows: RowSet, old: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """For the rows older than the horizon: "maybe stored" from their days' windows
        (True where unknown: an unknown event time, or a window that did not fit)."""
        maybe = old.copy()
        days = rows.occurred_ms // _DAY_MS
        wanted = {int(d) for d in np.unique(days[old & (rows.occurred_ms > 0)])}
        for day in sorted(wanted):
            window = self._window(client, day, wanted)
            if window is None:
                continue
            sel = np.flatnonzero(old & (days == day))
            hit = window.events.might_contain(rows.event_hashes[sel])
            if self.spec.step_fields:
                hit |= window.steps.might_contain(rows.step_hashes[sel])
            maybe[sel] = hit
        return maybe

    def remember(self, rows: RowSet) -> None:
        self._add(rows.event_hashes, rows.step_hashes)

    def _lookup(
        self, client: Client, rows: RowSet, indices: list[int]
    ) -> tuple[set[str], set[tuple[str, ...]]]:
        """Exact keys already stored among the doubtful rows (two index-assisted scans)."""
        self.lookups += len(indices)
        table, step_cols = self.spec.table, self.spec.step_fields
        key_sql = ", ".join(f"toString({c})" for c in step_cols) if step_cols else "''"
        params = {"e": rows.event_hashes[indices].tolist()}
        sql = f"SELECT event_id, tuple({key_sql}) FROM {table} WHERE event_hash IN {{e:Array(UInt64)}}"  # noqa: S608
        if step_cols:
            params["s"] = rows.step_hashes[indices].tolist()
            sql += (
                f" UNION ALL SELECT event_id, tuple({key_sql}) FROM {table}"  # noqa: S608
                " WHERE step_hash IN {s:Array(UInt64)}"
            )
        result = client.query(sql, parameters=params).result_rows
        events = {r[0] for r in result}
        steps = {tuple(r[1]) for r in result} if step_cols else set()
        return events, steps


def _columns(res: npt.NDArray[Any]) -> tuple[U64, U64]:
    """The (event hash, step hash) columns of a ``query_np`` answer: a 2-D array when the
    columns share a dtype, else a record array."""
    if not len(res):
        empty = np.zeros(0, dtype=np.uint64)
        return empty, empty
    events, steps = (res["e"], res["s"]) if res.dtype.names else (res[:, 0], res[:, 1])
    return np.ascontiguousarray(events, dtype=np.uint64), np.ascontiguousarray(steps, dtype=np.uint64)
