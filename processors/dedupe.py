"""Exactly-once counting: decide which rows of a batch were never stored before.

Three sieves, cheapest first:
1. within the batch (a set of exact keys);
2. Bloom filters of every stored ``event_hash`` / ``step_hash`` (no false negatives,
   so a "no" is final and costs no I/O — the common case);
3. for the few "maybe" rows, an exact look-up in ClickHouse on the full key.

ClickHouse is the durable truth, so the rules hold across restarts, crashes between a
write and its offset commit, rebalances and late arrivals. The filters are rebuilt from
ClickHouse at start-up and whenever they fill up. Hashes are added *before* the insert:
if the insert fails after all and is retried, the retry goes to the exact look-up and
cannot double a row that did land.
"""

from __future__ import annotations

import logging

import numpy as np
from clickhouse_connect.driver.client import Client

from processors.bloom import BloomFilter
from processors.rows import CHANNELS, ONBOARDING, ORDERS, STATS, RowSet, TableSpec

log = logging.getLogger(__name__)

_MIN_CAPACITY = 1 << 20


SPECS = {spec.table: spec for spec in (ORDERS, ONBOARDING, STATS, CHANNELS)}


class TableDeduper:
    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        self.events = BloomFilter(_MIN_CAPACITY)
        self.steps = BloomFilter(_MIN_CAPACITY)
        self.lookups = 0  # rows sent to the exact look-up (observability, benchmarks)

    def load(self, client: Client) -> None:
        """(Re)build the filters from every stored hash, sized for twice as many."""
        step = "step_hash" if self.spec.step_fields else "toUInt64(0)"
        res = client.query_np(f"SELECT event_hash AS e, {step} AS s FROM {self.spec.table}")  # noqa: S608
        n = len(res)
        capacity = max(_MIN_CAPACITY, 2 * n)
        self.events = BloomFilter(capacity)
        self.steps = BloomFilter(capacity)
        if n:
            # query_np answers a 2-D array when the columns share a dtype, else a record array
            events, steps = (res["e"], res["s"]) if res.dtype.names else (res[:, 0], res[:, 1])
            self.events.add(np.ascontiguousarray(events, dtype=np.uint64))
            if self.spec.step_fields:
                self.steps.add(np.ascontiguousarray(steps, dtype=np.uint64))
        log.info("dedupe filter for %s loaded with %d stored rows", self.spec.table, n)

    def select_new(self, client: Client, rows: RowSet) -> list[int]:
        """Indices of rows never stored (``rows`` holds no repeats of its own: KeysBuilder)."""
        if self.events.full or self.steps.full:
            self.load(client)
        has_steps = bool(self.spec.step_fields)
        candidates = list(range(len(rows)))
        if not candidates:
            return []
        maybe = self.events.might_contain(rows.event_hashes)
        if has_steps:
            maybe |= self.steps.might_contain(rows.step_hashes)
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
        self.events.add(rows.event_hashes)
        if self.spec.step_fields:
            self.steps.add(rows.step_hashes)

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
