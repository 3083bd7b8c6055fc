"""The writer of counted facts: refresh, dedupe, check the lease, insert, one batch at a time.

Batches are serialised by a lock, so the dedupe decision for batch N+1 always sees
batch N stored. Other processes' inserts are learnt by ``TableDeduper.refresh`` right
before each decision; a member that may have lost its partitions (a *zombie*: see
docs/DESIGN.md) is stopped by the ``fence`` the consumer passes, checked right before
each insert. Failures raise ``StorageError``; the caller retries the same batch, which
is safe (see processors.dedupe). ``Fenced`` means "do not write this batch at all".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from hashlib import blake2b

import msgspec
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from processors.dedupe import DEFAULT_HORIZON_S, SPECS, TableDeduper
from processors.fence import Claim, FenceConfig, Superseded, WriteFence
from processors.filter_ring import DEFAULT_MEMORY_MB, MemoryBudget
from processors.rows import RowSet
from processors.store import ClickHouse, StorageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteResult:
    stored: dict[str, int]  # table -> rows inserted
    duplicates: dict[str, int]  # table -> rows dropped as already counted
    seconds: float


# JSON in, as the producers wrote it (extra fields ignored, RFC 3339 with offsets).
_INSERT_SETTINGS = {
    "input_format_skip_unknown_fields": 1,
    "date_time_input_format": "best_effort",
    "input_format_json_read_numbers_as_strings": 0,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
    # One parsing thread: a batch is a few MB, and splitting it across threads only added
    # hand-over work on two busy cores (service CPU lower in 6 of 6 paired benchmark
    # runs, ingest faster in 5: docs/BENCHMARKS.md).
    "input_format_parallel_parsing": 0,
}


def _token(table: str, rows: RowSet) -> str:
    """Same rows -> same token, so a blind retry of a landed insert is dropped by ClickHouse."""
    h = blake2b(table.encode(), digest_size=16)
    h.update(rows.event_hashes.tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Fencing:
    """How one batch's insert is fenced (processors.fence): by whose claim, for which partitions."""

    fence: WriteFence
    claim: Claim
    partitions: tuple[tuple[str, int], ...]


def _insert(client: Client, rows: RowSet, fencing: Fencing | None = None) -> None:
    settings = {**_INSERT_SETTINGS, "insert_deduplication_token": _token(rows.table, rows)}

    def send(block: bytes) -> None:
        if fencing is None:
            client.raw_insert(rows.spec.ingest, None, block, settings=settings, fmt="JSONEachRow")
        else:
            fencing.fence.insert(client, rows.spec.ingest, block, settings, fencing.claim, fencing.partitions)

    try:
        send(b"\n".join(rows.payloads))
        return
    except DatabaseError as exc:
        if not _is_data_error(exc):
            raise
        # ClickHouse's JSON reader refused what pydantic accepted (e.g. a repeated key):
        # re-encode the validated events canonically and insert those instead.
        log.warning("re-encoding a batch for %s: %s", rows.table, str(exc)[:200])
    encode = msgspec.json.encode  # dicts (pydantic path) and structs (fast path) alike
    send(b"\n".join(encode(e) for e in rows.events()))


def _is_data_error(exc: Exception) -> bool:
    text = str(exc)
    return any(code in text for code in ("INCORRECT_DATA", "CANNOT_PARSE", "Code: 117", "Code: 27"))


class Fenced(Exception):
    """The writer may no longer own what it was about to write; nothing more was inserted."""


@dataclass(frozen=True)
class Ownership:
    """What a consumer hands the writer with a batch: the lease check (asked right before
    each insert) and, where other processes write too, its claim on the server."""

    holds: Callable[[], bool]
    claim: Claim | None = None
    partitions: tuple[tuple[str, int], ...] = ()


class Writer:
    def __init__(
        self,
        ch: ClickHouse,
        horizon_s: float = DEFAULT_HORIZON_S,
        memory_mb: float = DEFAULT_MEMORY_MB,
        sole_writer: bool = False,
        fence: FenceConfig | None = None,
    ) -> None:
        """``memory_mb``: the dedupe filters of all tables together (processors.filter_ring).
        ``sole_writer``: no other process can write this store (embedded chDB: one process
        per data path), so nothing is read back before a decision (processors.dedupe), and
        no write fence is needed: this process's one writer lock orders every insert.
        Otherwise every batch that comes with a claim is fenced (processors.fence)."""
        self.ch = ch
        embedded = ch.dsn.startswith("chdb:")
        self.sole_writer = sole_writer
        self.fence = None if sole_writer else WriteFence(fence or FenceConfig(cluster=ch.cluster), embedded=embedded)
        self._claimed: set[str] = set()  # claim tokens made on the server by this writer
        self.budget = MemoryBudget.of_mb(memory_mb)
        self.dedupers = {
            name: TableDeduper(spec, horizon_s, budget=self.budget, sole_writer=sole_writer)
            for name, spec in SPECS.items()
        }
        self._lock = threading.Lock()

    async def open(self) -> None:
        """Load the filters from the rows within the horizon (start-up)."""

        def load() -> None:
            with self._lock:
                for d in self.dedupers.values():
                    d.load(self.ch.client)

        await self.ch.run_in_thread(load)

    async def refresh(self) -> None:
        """Learn what other processes stored (partitions assigned: before their first record)."""

        def refresh() -> None:
            with self._lock:
                for d in self.dedupers.values():
                    d.refresh(self.ch.client)

        try:
            await self.ch.run_in_thread(refresh)
        except Exception as exc:
            raise StorageError(f"dedupe refresh failed: {exc}") from exc

    async def store(self, row_sets: Iterable[RowSet], owner: Ownership | None = None) -> WriteResult:
        """``owner.holds``: asked right before each insert; False raises ``Fenced``. With
        ``owner.claim`` (and a fence), the claim is made on the server before the first
        decision under it, and each insert is fenced by it: ``Superseded`` when a later
        claim took one of ``owner.partitions``."""
        sets = [rs for rs in row_sets if len(rs) or rs.repeated]
        result: WriteResult = await self.ch.run_in_thread(self._store_sync, sets, owner)
        return result

    def _store_sync(self, row_sets: list[RowSet], owner: Ownership | None = None) -> WriteResult:
        started = time.perf_counter()
        stored: dict[str, int] = {}
        dups: dict[str, int] = {}
        fencing = None
        with self._lock:
            client = self.ch.client
            if self.fence is not None and owner is not None and owner.claim is not None:
                fencing = Fencing(self.fence, owner.claim, owner.partitions)
                if owner.claim.token not in self._claimed:
                    if not owner.holds():
                        raise Fenced("lease lost before claiming the partitions")
                    try:  # before any decision under this claim: see processors.fence
                        self.fence.claim(client, owner.claim)
                    except Exception as exc:
                        raise StorageError(f"claiming the partitions failed: {exc}") from exc
                    if len(self._claimed) >= 256:  # old epochs' tokens: bounded (a re-claim is harmless)
                        self._claimed.clear()
                    self._claimed.add(owner.claim.token)
            for rows in row_sets:
                dedupe = self.dedupers[rows.table]
                try:
                    if len(rows):
                        dedupe.refresh(client)
                    keep = dedupe.select_new(client, rows)
                except Exception as exc:
                    raise StorageError(f"dedupe look-up on {rows.table} failed: {exc}") from exc
                dups[rows.table] = len(rows) - len(keep) + rows.repeated
                if not keep:
                    continue
                if owner is not None and not owner.holds():
                    raise Fenced(f"lease lost before inserting into {rows.table}")
                fresh = rows if len(keep) == len(rows) else rows.subset(keep)
                dedupe.remember(fresh)
                try:
                    _insert(client, fresh, fencing)
                except Superseded:
                    raise
                except Exception as exc:
                    raise StorageError(f"insert into {rows.table} failed: {exc}") from exc
                stored[rows.table] = len(fresh)
        return WriteResult(stored, dups, time.perf_counter() - started)
