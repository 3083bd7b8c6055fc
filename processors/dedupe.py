"""Exactly-once counting: decide which rows of a batch were never stored, by any process.

Three sieves, cheapest first:
1. within the batch (a set of exact keys);
2. Bloom filters of the stored ``event_hash`` / ``step_hash``, a ring of fixed-size
   slices within a memory budget and a horizon (processors.filter_ring). A "no" is final
   only for a row whose own event time is at or after the ring's cutoff: the slices hold
   every stored row from that event time on. An older row (a replayed sale, a backfill,
   a very late arrival) is answered by a *window* filter of the rows whose event time
   lies within a horizon of its UTC day, loaded when first needed and evicted when the
   windows hold more than their share of the budget;
3. an exact look-up in ClickHouse on the full key, for the few "maybe" rows (and for
   old rows whose window did not fit).

Several processes may write one store, so a filter is only trusted once it knows what
every one of them stored: ``refresh`` reads the parts that appeared since it last looked
(processors.seen_parts), and the writer calls it right before every decision. A *sole
writer* skips that: on an embedded chDB store (``chdb://``) only one process can ever
open the data path, so everything stored after the load went through this process's own
``remember``. ClickHouse stays the one truth; docs/DESIGN.md ("Exactly-once counting")
has the argument and the race that remains. Hashes are added *before* the insert: if
the insert fails after landing and is retried, the retry goes to the exact look-up and
cannot double a row.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from clickhouse_connect.driver.client import Client

from processors.bloom import BloomFilter
from processors.filter_ring import DEFAULT_MEMORY_MB, NEVER, ROW_BYTES, FilterRing, MemoryBudget
from processors.rows import CHANNELS, ONBOARDING, ORDERS, STATS, RowSet, TableSpec
from processors.seen_parts import UNREAD, SeenBlocks, active_parts, part_of
from schemas.ddl_v16 import INDEXED_TABLES, LOOKUP_SETTINGS

log = logging.getLogger(__name__)

_WINDOW_MIN_CAPACITY = 1 << 14
_DAY_MS = 86_400_000
_MINUTE_MS = 60_000
DEFAULT_HORIZON_S = 48 * 3600.0

# Every deduped table has ``event_hash``, ``occurred_at`` and ``stored_at`` columns (and
# ``step_hash`` when its spec has step fields): a new spec plugs in by being listed here.
SPECS = {spec.table: spec for spec in (ORDERS, ONBOARDING, STATS, CHANNELS)}

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]


class _Window:
    """Filters of the rows whose event time lies within a horizon of one UTC day. It holds
    what was stored before it was loaded; what came later is in the ring's slices from
    ``after`` on, so it goes when one of those is dropped."""

    def __init__(self, events: U64, steps: U64, has_steps: bool, after: int) -> None:
        capacity = max(_WINDOW_MIN_CAPACITY, 2 * len(events))
        self.events, self.steps = BloomFilter(capacity), BloomFilter(capacity)
        self.events.add(events)
        if has_steps:
            self.steps.add(steps)
        self.rows = len(events)
        self.after = after


class TableDeduper:
    def __init__(
        self,
        spec: TableSpec,
        horizon_s: float = DEFAULT_HORIZON_S,
        clock: Callable[[], float] = time.time,
        budget: MemoryBudget | None = None,
        sole_writer: bool = False,
    ) -> None:
        self.spec = spec
        self.horizon_s = horizon_s
        self._clock = clock
        self.budget = budget or MemoryBudget.of_mb(DEFAULT_MEMORY_MB)
        self.ring = FilterRing(bool(spec.step_fields), self.budget, horizon_s, clock)
        self.sole_writer = sole_writer  # nobody else writes the store: no refresh needed
        self.seen = SeenBlocks()
        self.windows: OrderedDict[int, _Window] = OrderedDict()  # UTC day -> filters, least recent first
        self.max_window_rows = self.budget.window_rows
        self.oversized: set[int] = set()  # days whose window alone holds too many rows
        self.lookups = 0  # rows sent to the exact look-up (observability, benchmarks)
        self.refreshed = 0  # rows read back by refresh (observability, benchmarks)

    @property
    def cutoff_ms(self) -> int:
        return self.ring.cutoff_ms

    # -- what is stored -----------------------------------------------------------------
    def load(self, client: Client) -> int:
        """(Re)build the ring from the newest stored rows: every row whose event time is
        at or after the start of the horizon, or of as many minutes as the budget holds,
        read oldest first in slice-sized ranges of event time (minmax-indexed reads, no
        sort); then, as far as room is left, rows stored within the horizon with an
        earlier event time (late arrivals: the residual below is narrower with them).

        The parts listed *before* the reads are marked read: each read's snapshot holds
        all of their rows (in them, or in what they were merged into meanwhile). A part
        that appears after the listing is read again by the next refresh, which is harmless.
        """
        now = self._clock()
        horizon_ms = int(self.horizon_s * 1000)
        start_ms = int(now * 1000) - horizon_ms
        parts = active_parts(client, self.spec.table)
        self.ring.reset()
        self.windows.clear()
        self.oversized.clear()
        table, step = self.spec.table, self._step_sql()
        minutes = client.query(
            f"SELECT intDiv(toUnixTimestamp64Milli(occurred_at), {_MINUTE_MS}) AS m, count() FROM {table}"  # noqa: S608
            " WHERE occurred_at >= fromUnixTimestamp64Milli({c:Int64}) GROUP BY m ORDER BY m DESC",
            parameters={"c": start_ms},
        ).result_rows
        room = self._room_rows()
        cutoff_ms, take = start_ms, 0
        for minute, n in minutes:  # newest first: as many whole minutes as fit
            if take + int(n) > room:
                cutoff_ms = (int(minute) + 1) * _MINUTE_MS
                break
            take += int(n)
        loaded = 0
        if take < room:  # late arrivals first: their event times are the oldest
            loaded += self._load_range(
                client,
                f"SELECT event_hash AS e, {step} AS s, toUnixTimestamp64Milli(occurred_at) AS o FROM {table}"  # noqa: S608
                " WHERE occurred_at < fromUnixTimestamp64Milli({c:Int64})"
                " AND stored_at >= now64(3) - toIntervalMillisecond({h:Int64}) LIMIT {n:UInt64}",
                {"c": cutoff_ms, "h": horizon_ms, "n": room - take},
            )
        bounds = self._ranges(sorted((int(m), int(n)) for m, n in minutes if int(m) * _MINUTE_MS >= cutoff_ms))
        lows = [cutoff_ms, *bounds]
        for i, low in enumerate(lows):
            sql = (
                f"SELECT event_hash AS e, {step} AS s, toUnixTimestamp64Milli(occurred_at) AS o FROM {table}"  # noqa: S608
                " WHERE occurred_at >= fromUnixTimestamp64Milli({a:Int64})"
            )
            params = {"a": low}
            if i + 1 < len(lows):
                sql += " AND occurred_at < fromUnixTimestamp64Milli({b:Int64})"
                params["b"] = lows[i + 1]
            loaded += self._load_range(client, sql, params)
        self.ring.start(cutoff_ms)
        self.seen = SeenBlocks()
        for part in parts:
            self.seen.add(part)
        log.info(
            "dedupe filter for %s loaded with %d rows (event times from %d ms; %d MiB of slices)",
            table, loaded, self.ring.cutoff_ms, self.ring.nbytes >> 20,
        )  # fmt: skip
        return loaded

    def _room_rows(self) -> int:
        """Rows one table's load may take: what the slices' budget holds, less a slice
        of headroom so that the first batches do not drop what was just loaded."""
        per_row = ROW_BYTES if self.spec.step_fields else ROW_BYTES // 2
        return max(0, self.budget.slice_bytes // per_row - self.budget.max_slice_rows)

    def _ranges(self, minutes: list[tuple[int, int]]) -> list[int]:
        """Event-time bounds (ms) that cut the load into reads of about a slice each."""
        bounds, acc = [], 0
        for minute, n in minutes:
            if acc and acc + n > self.budget.max_slice_rows:
                bounds.append(minute * _MINUTE_MS)
                acc = 0
            acc += n
        return bounds

    def _load_range(self, client: Client, sql: str, params: dict[str, Any]) -> int:
        events, steps, occurred = _columns(client.query_np(sql, parameters=params))
        self.ring.add(events, steps, occurred)
        return len(events)

    def _step_sql(self) -> str:
        return "step_hash" if self.spec.step_fields else "toUInt64(0)"

    def refresh(self, client: Client) -> int:
        """Learn what any process stored since the last look; call before ``select_new``.

        One query: the rows of every part holding a block this process has not read
        (seen_parts.UNREAD prunes the others before reading). The query's own snapshot
        decides which parts those are, so a part merged away meanwhile is read in its
        merge result; merges of parts already read are skipped. A sole writer reads
        nothing: everything stored since its load went through ``remember``.
        """
        self.ring.expire()
        if self.sole_writer:
            return 0
        partitions, lows, highs = self.seen.arrays()
        # one row per unread part (a column of part names per row cost more than the read)
        parts = client.query(
            "SELECT sh, _part, groupArrayIf(e, k), groupArrayIf(s, k), groupArrayIf(o, k) FROM ("  # noqa: S608
            f"SELECT shardNum() AS sh, _part, event_hash AS e, {self._step_sql()} AS s,"
            " toUnixTimestamp64Milli(occurred_at) AS o,"
            " (occurred_at >= fromUnixTimestamp64Milli({c:Int64})"
            " OR stored_at >= now64(3) - toIntervalMillisecond({h:Int64})) AS k"
            f" FROM {self.spec.table} WHERE {UNREAD}) GROUP BY sh, _part",
            parameters={
                "c": min(self.cutoff_ms, NEVER - 1), "h": int(self.horizon_s * 1000),
                "rp": partitions, "rl": lows, "rh": highs,
            },
        ).result_rows  # fmt: skip
        learnt = 0
        for shard, name, events, steps, occurred in parts:
            self.ring.add(
                np.array(events, dtype=np.uint64), np.array(steps, dtype=np.uint64), np.array(occurred, dtype=np.int64)
            )
            self.seen.add(part_of(str(name), int(shard)))
            learnt += len(events)
        self.refreshed += learnt
        return learnt

    def _window(self, client: Client, day: int, keep: set[int]) -> _Window | None:
        """The window filters of ``day``, loaded if need be; None if they do not fit."""
        window = self.windows.get(day)
        if window is not None and window.after <= self.ring.dropped_seq:
            del self.windows[day]  # rows stored after it was loaded were in a slice now gone
            window = None
        if window is not None:
            self.windows.move_to_end(day)
            return window
        if day in self.oversized:
            return None
        skew = int(self.horizon_s * 1000)
        after = self.ring.receiving_seq  # rows stored from now on: in this slice or later ones
        res = client.query_np(
            f"SELECT event_hash AS e, {self._step_sql()} AS s, toInt64(0) AS o FROM {self.spec.table}"  # noqa: S608
            " WHERE occurred_at >= fromUnixTimestamp64Milli({a:Int64})"
            " AND occurred_at < fromUnixTimestamp64Milli({b:Int64})",
            parameters={"a": day * _DAY_MS - skew, "b": (day + 1) * _DAY_MS + skew},
        )
        events, steps, _ = _columns(res)
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
        window = self.windows[day] = _Window(events, steps, bool(self.spec.step_fields), after)
        return window

    # -- the decision ---------------------------------------------------------------------
    def select_new(self, client: Client, rows: RowSet) -> list[int]:
        """Indices of rows never stored (``rows`` holds no repeats of its own: KeysBuilder).

        Exact only if ``refresh`` ran since anything else was stored (the writer does so),
        or nothing else can store (a sole writer)."""
        has_steps = bool(self.spec.step_fields)
        candidates = list(range(len(rows)))
        if not candidates:
            return []
        self.ring.expire()
        maybe = self.ring.might_contain(rows.event_hashes, rows.step_hashes)
        old = rows.occurred_ms < self.cutoff_ms  # before what the slices cover: the windows answer
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
        """For the rows before the cutoff: "maybe stored" from their days' windows
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
        self.ring.add(rows.event_hashes, rows.step_hashes, rows.occurred_ms)

    def _lookup(
        self, client: Client, rows: RowSet, indices: list[int]
    ) -> tuple[set[str], set[tuple[str, ...]]]:
        """Exact keys already stored among the doubtful rows (two index-assisted scans:
        on order_steps the projection indexes of schemas.ddl_v16, whose cost does not grow
        with the store; elsewhere the bloom_filter skip indexes)."""
        self.lookups += len(indices)
        table, step_cols = self.spec.table, self.spec.step_fields
        key_sql = self.spec.step_sql if step_cols else "['']"
        params = {"e": rows.event_hashes[indices].tolist()}
        sql = f"SELECT event_id, {key_sql} FROM {table} WHERE event_hash IN {{e:Array(UInt64)}}"  # noqa: S608
        if step_cols:
            params["s"] = rows.step_hashes[indices].tolist()
            sql += (
                f" UNION ALL SELECT event_id, {key_sql} FROM {table}"  # noqa: S608
                " WHERE step_hash IN {s:Array(UInt64)}"
            )
        settings = LOOKUP_SETTINGS if table in INDEXED_TABLES else None
        result = client.query(sql, parameters=params, settings=settings).result_rows
        events = {r[0] for r in result}
        steps = {tuple(r[1]) for r in result} if step_cols else set()
        return events, steps


def _columns(res: npt.NDArray[Any]) -> tuple[U64, U64, I64]:
    """The (event hash, step hash, event time) columns of a ``query_np`` answer: a record
    array (the columns' dtypes differ)."""
    if not len(res):
        empty = np.zeros(0, dtype=np.uint64)
        return empty, empty, np.zeros(0, dtype=np.int64)
    return (
        np.ascontiguousarray(res["e"], dtype=np.uint64),
        np.ascontiguousarray(res["s"], dtype=np.uint64),
        np.ascontiguousarray(res["o"], dtype=np.int64),
    )
