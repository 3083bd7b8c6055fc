"""Exactly-once counting: decide which rows of a batch were never stored, by any process.

Three sieves, cheapest first:
1. within the batch (a set of exact keys);
2. Bloom filters of the stored ``event_hash`` / ``step_hash`` *within the horizon*: rows
   whose event time is at most ``horizon`` old, or which were stored that recently. A
   "no" is final only for a row whose own event time lies within the horizon; older rows
   always take sieve 3. So memory follows the horizon, not all history;
3. an exact look-up in ClickHouse on the full key, for the few "maybe" rows.

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
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from clickhouse_connect.driver.client import Client

from processors.bloom import BloomFilter
from processors.rows import ONBOARDING, ORDERS, STATS, RowSet, TableSpec
from processors.seen_parts import SeenBlocks, active_parts

log = logging.getLogger(__name__)

_MIN_CAPACITY = 1 << 20
DEFAULT_HORIZON_S = 48 * 3600.0
_NEVER = 1 << 62  # a cutoff no event reaches: nothing is answered from memory before load()

# Every deduped table has ``event_hash``, ``occurred_at`` and ``stored_at`` columns (and
# ``step_hash`` when its spec has step fields): a new spec plugs in by being listed here.
SPECS = {spec.table: spec for spec in (ORDERS, ONBOARDING, STATS)}

U64 = npt.NDArray[np.uint64]


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
        events, steps = self._read(client, cutoff_ms, None)
        n = len(events)
        capacity = max(_MIN_CAPACITY, 2 * n)
        self.events, self.steps = BloomFilter(capacity), BloomFilter(capacity)
        self._add(events, steps)
        self.seen = SeenBlocks()
        for part in parts:
            self.seen.add(part)
        self.cutoff_ms, self.built_at = cutoff_ms, now
        log.info("dedupe filter for %s loaded with %d rows within the horizon", self.spec.table, n)
        return n

    def refresh(self, client: Client) -> int:
        """Learn what any process stored since the last look; call before ``select_new``.

        One ``system.parts`` query when nothing is new. New parts are read (their rows
        within the horizon) and marked read only if they are still active afterwards: a
        part merged away before the read was not read, and its merge result will be.
        The filters are rebuilt when full or when half a horizon old, so they hold the
        rows of at most 1.5 horizons and memory does not grow with history.
        """
        if self.events.full or self.steps.full or self._clock() - self.built_at > self.horizon_s / 2:
            return self.load(client)
        table = self.spec.table
        new = self.seen.unseen(active_parts(client, table))
        if not new:
            return 0
        events, steps = self._read(client, self.cutoff_ms, [p.name for p in new])
        self._add(events, steps)
        still = {p.name for p in active_parts(client, table)}
        for part in new:
            if part.name in still:
                self.seen.add(part)
        self.refreshed += len(events)
        return len(events)

    def _read(self, client: Client, cutoff_ms: int, parts: list[str] | None) -> tuple[U64, U64]:
        """Key hashes of the rows within the horizon: event time at or after the cutoff, or
        stored (by ClickHouse's own clock) less than a horizon ago. Two legs, so that each
        can use its minmax index (schemas.ddl, migration 3)."""
        table = self.spec.table
        step = "step_hash" if self.spec.step_fields else "toUInt64(0)"
        where = "_part IN {p:Array(String)} AND " if parts is not None else ""
        cut = "fromUnixTimestamp64Milli({c:Int64})"
        sql = (
            f"SELECT event_hash AS e, {step} AS s FROM {table} WHERE {where}occurred_at >= {cut}"  # noqa: S608
            f" UNION ALL SELECT event_hash AS e, {step} AS s FROM {table} WHERE {where}occurred_at < {cut}"
            " AND stored_at >= now64(3) - toIntervalMillisecond({h:Int64})"
        )
        params: dict[str, object] = {"c": cutoff_ms, "h": int(self.horizon_s * 1000)}
        if parts is not None:
            params["p"] = parts
        res = client.query_np(sql, parameters=params)
        if not len(res):
            empty = np.zeros(0, dtype=np.uint64)
            return empty, empty
        # query_np answers a 2-D array when the columns share a dtype, else a record array
        events, steps = (res["e"], res["s"]) if res.dtype.names else (res[:, 0], res[:, 1])
        return np.ascontiguousarray(events, dtype=np.uint64), np.ascontiguousarray(steps, dtype=np.uint64)

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
        maybe |= rows.occurred_ms < self.cutoff_ms  # older than the horizon: not answered here
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
