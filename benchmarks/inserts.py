"""``livesales bench inserts``: what one insert of order events costs ClickHouse, and why.

Every insert the writer makes (JSONEachRow into ``order_events_in``) fans out through the
views and projections of schemas/: a part of ``order_steps`` with each projection inside
it, and a part of each view table. Its cost hardly depends on its rows up to thousands
(docs/BENCHMARKS.md, "Ingest"), so it bounds how fresh the counts can be and what a slow
trickle of orders costs. This takes it apart: for each variant of the schema, in a fresh
store each, ``--inserts`` inserts of each size in ``--insert-rows``, and per insert:

- wall time (median) and this process's CPU, user and system apart (chDB runs in it: the
  CPU includes the merges the inserts set off, a cost they bring as surely as their own);
- the files and bytes one insert adds to the store (counted with merges stopped).

Variants: the schema as migrated; as before migration 15 (full parts) and 17 (the
bloom_filter skip indexes on the hashes); without each projection of ``order_steps``; without
any; without each view that feeds ``channel_state``/``channel_minutes`` from orders, and
without both; the minutes' view replaced by a projection of the same sums (issue 22, item
3: what folding it would save); projections and views all removed; and the migrated
schema on tmpfs (``/dev/shm``), whose difference is what the disk's file operations cost.
None is a proposal by itself.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from clickhouse_connect.driver.client import Client

from benchmarks.common import order_payload, scratch_dir
from processors.store import ClickHouse
from processors.writer import _INSERT_SETTINGS
from schemas.ddl_v15 import PACKED
from schemas.ddl_v17 import DROPPED_INDEXES
from schemas.migration import STORED_TABLES

ORDER_VIEWS = ("channel_state_orders_mv", "channel_minutes_orders_mv")  # orders' fan-out besides order_steps
TMPFS = Path("/dev/shm")  # noqa: S108 - a benchmark store, created with mkdtemp there


@dataclass(frozen=True)
class Variant:
    name: str
    change: Callable[[Client, list[str]], None]  # (client, order_steps' projections)
    tmpfs: bool = False


@dataclass(frozen=True)
class Cost:
    wall_ms: float
    user_ms: float
    sys_ms: float
    files: int
    kib: float


def _drop_projections(names: Callable[[list[str]], list[str]]) -> Callable[[Client, list[str]], None]:
    def change(client: Client, projections: list[str]) -> None:
        for name in names(projections):
            client.command(f"ALTER TABLE order_steps DROP PROJECTION {name}")

    return change


def _drop_view(view: str) -> Callable[[Client, list[str]], None]:
    def change(client: Client, projections: list[str]) -> None:
        client.command(f"DROP TABLE {view}")

    return change


def _drop_views(client: Client, projections: list[str]) -> None:
    for view in ORDER_VIEWS:
        _drop_view(view)(client, projections)


# channel_minutes' order sums kept in order_steps' own part instead of a view's table
ACTIVE_PROJECTION = """
    ALTER TABLE order_steps ADD PROJECTION p_active (
        SELECT minute, channel_id, min(occurred_at), max(occurred_at), countIf(status = 'paid'),
               sumIf(amount_fen, status = 'paid'), sumIf(weight_g, status = 'paid'),
               sumIf(amount_fen, status = 'refunded')
        GROUP BY minute, channel_id
    )
"""


def _minutes_projection(client: Client, projections: list[str]) -> None:
    _drop_view("channel_minutes_orders_mv")(client, projections)
    client.command(ACTIVE_PROJECTION)


def _nothing(client: Client, projections: list[str]) -> None:
    return None


def _full_parts(client: Client, projections: list[str]) -> None:
    unpacked = PACKED.split("=")[0] + "= 0"
    for table in STORED_TABLES:  # as before migration 15: every part in the full layout
        client.command(f"ALTER TABLE {table} MODIFY SETTING {unpacked}")


def _skip_indexes(client: Client, projections: list[str]) -> None:
    for name, column in zip(DROPPED_INDEXES, ("event_hash", "step_hash"), strict=True):  # as before migration 17
        client.command(f"ALTER TABLE order_steps ADD INDEX {name} {column} TYPE bloom_filter(0.001) GRANULARITY 1")


def variants(projections: list[str]) -> list[Variant]:
    def bare(client: Client, found: list[str]) -> None:
        _drop_projections(lambda p: p)(client, found)
        _drop_views(client, found)

    out = [
        Variant("as migrated", _nothing),
        Variant("full parts (unpacked)", _full_parts),
        Variant("with the skip indexes", _skip_indexes),
    ]
    out += [Variant(f"without {p}", _drop_projections(lambda _, p=p: [p])) for p in projections]  # type: ignore[misc]
    out += [
        Variant("without any projection", _drop_projections(lambda p: p)),
        *(Variant(f"without {v}", _drop_view(v)) for v in ORDER_VIEWS),
        Variant("channel minutes as a projection", _minutes_projection),
        Variant("without the channel views", _drop_views),
        Variant("without both", bare),
    ]
    if TMPFS.is_dir():
        out.append(Variant("as migrated, on tmpfs", _nothing, tmpfs=True))
    return out


@contextmanager
def _store_dir(tmpfs: bool) -> Iterator[str]:
    if not tmpfs:
        with scratch_dir() as path:
            yield path
        return
    path = tempfile.mkdtemp(prefix="livesales-bench-", dir=TMPFS)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


_MERGED = re.compile(r"/all_(\d+)_(?!\1_)\d+_\d+/")  # a part of more than one block: a merge's result


def _tree(root: str) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            try:
                sizes[path] = os.stat(path).st_size
            except FileNotFoundError:  # removed meanwhile (an outdated part)
                continue
    return sizes


def _block(rows: int, first: int, rnd: random.Random) -> bytes:
    now = datetime.now(UTC)
    return b"\n".join(order_payload(first + i, "ins", rnd, now) for i in range(rows))


def _insert(client: Client, block: bytes) -> None:
    settings = {**_INSERT_SETTINGS, "insert_deduplication_token": uuid.uuid4().hex}
    client.raw_insert("order_events_in", None, block, settings=settings, fmt="JSONEachRow")


def measure(client: Client, root: str, rows: int, inserts: int, first: int) -> Cost:
    """One insert's files (merges stopped), then ``inserts`` timed ones (merges running)."""
    rnd = random.Random(rows)
    client.command("SYSTEM STOP MERGES")
    before = _tree(root)
    _insert(client, _block(rows, first, rnd))
    # the insert's own parts (``all_N_N_0``), not a merge that began before the stop
    # (schema_migrations' parts, merged as a store opens, landed in this window at times)
    added = {p: s for p, s in _tree(root).items() if p not in before and not _MERGED.search(p)}
    client.command("SYSTEM START MERGES")
    walls, users, systems = [], [], []
    for k in range(inserts):
        block = _block(rows, first + (k + 1) * rows, rnd)
        r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        _insert(client, block)
        walls.append(time.perf_counter() - w0)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        users.append(r1.ru_utime - r0.ru_utime)
        systems.append(r1.ru_stime - r0.ru_stime)
    return Cost(statistics.median(walls) * 1000, statistics.mean(users) * 1000, statistics.mean(systems) * 1000,
                len(added), sum(added.values()) / 1024)  # fmt: skip


async def run_variant(variant: Variant, sizes: list[int], inserts: int) -> list[Cost]:
    with _store_dir(variant.tmpfs) as root:
        store = ClickHouse(f"chdb://{root}/ch", threads=1)
        await store.open()
        try:
            client = store.client
            projections = [str(r[0]) for r in client.query(
                "SELECT name FROM system.projections WHERE database = currentDatabase() AND table = 'order_steps'"
            ).result_rows]  # fmt: skip
            variant.change(client, projections)
            return [measure(client, root, n, inserts, i * 10_000_000) for i, n in enumerate(sizes)]
        finally:
            await store.close()


async def projections_of_a_fresh_store() -> list[str]:
    with scratch_dir() as root:
        store = ClickHouse(f"chdb://{root}/ch", threads=1)
        await store.open()
        try:
            rows = store.client.query(
                "SELECT name FROM system.projections WHERE database = currentDatabase() AND table = 'order_steps'"
                " ORDER BY name"
            ).result_rows
        finally:
            await store.close()
    return [str(r[0]) for r in rows]


async def bench_inserts(args: argparse.Namespace) -> None:
    sizes = [int(n) for n in str(args.insert_rows).split(",")]
    inserts = int(args.inserts)
    chosen = [v for v in variants(await projections_of_a_fresh_store())
              if not args.variants or any(w in v.name for w in str(args.variants).split(","))]  # fmt: skip
    print(f"one insert of order events into order_events_in: {inserts} inserts of each size per variant, "
          "a fresh store each; CPU is this process's (chDB's, merges included) per insert", flush=True)  # fmt: skip
    # chDB's allocator reads it once per process: compare settings by running this again
    print(f"chDB's allocator: JE_MALLOC_CONF={os.environ.get('JE_MALLOC_CONF', '(unset: chDB defaults)')}")
    print(f"{'variant':<34}{'rows':>7}{'wall ms':>9}{'user ms':>9}{'sys ms':>8}{'files':>7}{'KiB':>8}")
    for variant in chosen:
        for n, cost in zip(sizes, await run_variant(variant, sizes, inserts), strict=True):
            print(f"{variant.name:<34}{n:>7,}{cost.wall_ms:>9.1f}{cost.user_ms:>9.1f}{cost.sys_ms:>8.1f}"
                  f"{cost.files:>7}{cost.kib:>8.1f}", flush=True)  # fmt: skip

