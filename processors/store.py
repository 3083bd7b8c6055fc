"""The one ClickHouse handle of the process, embedded (chDB) or a server over HTTP.

clickhouse-connect is synchronous and chDB has no async client, so every call runs in
a small thread pool: the event loop never blocks on storage, and chDB's C++ engine
works on the second core while Python validates the next batch.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from schemas.cluster import CLUSTER_SETTINGS, cluster_migrations, cluster_migrations_table
from schemas.ddl import MIGRATIONS, MIGRATIONS_TABLE

log = logging.getLogger(__name__)


class StorageError(RuntimeError):
    """ClickHouse refused or failed a call; the caller decides whether to retry."""


@dataclass(frozen=True)
class ServerOptions:
    """Parts of an ``http(s)://`` DSN given apart from it (LIVESALES_CLICKHOUSE_*): each
    one set wins over the DSN's, so a password need not sit in a URL."""

    user: str | None = None
    password: str | None = None
    database: str | None = None
    secure: bool | None = None  # None: TLS when the DSN's scheme is https
    ca_file: str | None = None


# How Tuning.chdb_cache_mb is shared among chDB's caches. Left to ClickHouse's
# defaults the mark and primary-index caches may each reach 5 GiB (and hold every mark
# of every part ingest writes: docs/BENCHMARKS.md "Memory soak"). The uncompressed cache
# is off by default and stays off; no system log tables exist in chDB.
CHDB_CACHE_SHARES: dict[str, float] = {
    "mark_cache_size": 0.5,
    "primary_index_cache_size": 0.25,
    "query_condition_cache_size": 0.125,
    "index_mark_cache_size": 0.0625,
    "compiled_expression_cache_size": 0.0625,
}
# chDB's system.metrics figures published as livesales_clickhouse_memory_bytes{kind}.
CHDB_MEMORY_METRICS = (
    "MemoryTracking", "MergesMutationsMemoryTracking", "MarkCacheBytes", "PrimaryIndexCacheBytes",
    "UncompressedCacheBytes", "QueryConditionCacheBytes", "QueryCacheBytes", "IndexMarkCacheBytes",
    "CompiledExpressionCacheBytes",
)  # fmt: skip


# chDB allocates with a jemalloc of its own, not glibc's malloc (ground.heap): its
# summary line splits chDB's share of the RSS into memory in use (allocated), pages
# holding it (active), bookkeeping (metadata) and what is resident, dirty pages included.
JEMALLOC_FIGURES = {"allocated": "JemallocAllocated", "active": "JemallocActive",
                    "metadata": "JemallocMetadata", "resident": "JemallocResident"}  # fmt: skip
_JEMALLOC_LINE = re.compile(r"(allocated|active|metadata|resident): (\d+)")


def jemalloc_figures(stats: str) -> dict[str, int]:
    """JEMALLOC_FIGURES from jemalloc's stats text (its "Allocated: …, resident: …" line)."""
    for line in stats.splitlines():
        if line.startswith("Allocated:"):
            found = dict(_JEMALLOC_LINE.findall(line.lower()))
            return {name: int(found[key]) for key, name in JEMALLOC_FIGURES.items() if key in found}
    return {}


def chdb_cache_options(cache_mb: float) -> dict[str, int]:
    """Server settings for chDB's caches from one budget in MiB; 0: ClickHouse's defaults."""
    if cache_mb <= 0:
        return {}
    total = cache_mb * 1024 * 1024
    return {name: max(1 << 20, int(total * share)) for name, share in CHDB_CACHE_SHARES.items()}


@dataclass(frozen=True)
class EmbeddedOptions:
    """Server settings of an embedded chDB (Tuning's ``chdb_*``); a server over HTTP has its own."""

    cache_mb: float = 0  # chDB's caches, shared by CHDB_CACHE_SHARES; 0: ClickHouse's defaults
    # the Linux nice value of merge threads while they merge: on a machine the service
    # shares with its broker, merges then take the CPU inserts and Python leave
    # (ClickHouse applies it only with CAP_SYS_NICE)
    merge_nice: int = 0

    def server_settings(self) -> dict[str, int]:
        found = chdb_cache_options(self.cache_mb)
        if self.merge_nice:
            found["os_threads_nice_value_merge_mutate"] = self.merge_nice
        return found


def open_client(dsn: str, options: ServerOptions | None = None, embedded: EmbeddedOptions | None = None) -> Client:
    """Open a client for ``chdb:///path`` or ``http(s)://user:pass@host:port/db``.

    ``embedded``: chDB's server settings (chdb:// only). chDB runs one engine per
    process and takes its server settings from the first handle opened on a path; the
    store opens all of its handles with the same ones."""
    url = urlparse(dsn)
    if url.scheme == "chdb":
        Path(url.path).mkdir(parents=True, exist_ok=True)
        chdb_options = (embedded or EmbeddedOptions()).server_settings()
        if chdb_options:
            return clickhouse_connect.get_client(dsn=dsn, chdb_options=chdb_options)
        return clickhouse_connect.get_client(dsn=dsn)
    if url.scheme in ("http", "https"):
        o = options or ServerOptions()
        extra: dict[str, Any] = {k: v for k, v in (("username", o.user), ("password", o.password),
                                                    ("database", o.database), ("ca_cert", o.ca_file)) if v}
        # clickhouse-connect reads no TLS from a DSN's scheme (only from port 443/8443),
        # so https:// is said explicitly.
        secure = o.secure if o.secure is not None else url.scheme == "https"
        # One client is shared by many threads: a fixed session id would make the
        # server reject concurrent queries, so none is sent.
        return clickhouse_connect.get_client(
            dsn=dsn, secure=secure, autogenerate_session_id=False, connect_timeout=5, send_receive_timeout=30,
            **extra,
        )  # fmt: skip
    raise ValueError(f"unsupported ClickHouse DSN scheme {url.scheme!r}: use chdb:// or http(s)://")


class ClickHouse:
    """Async facade over clickhouse-connect clients; owns its thread pool.

    ``client`` is the one handle for DDL, inserts and dedupe look-ups. ``query`` uses a
    handle of its own per pool thread: chDB serialises every call on a handle, so with
    one shared handle the queries of a request that ``asyncio.gather`` issues side by
    side would still run one after another, on one core.
    """

    def __init__(
        self, dsn: str, threads: int = 4, cluster: str | None = None, options: ServerOptions | None = None,
        chdb_cache_mb: float = 0, chdb_merge_nice: int = 0,
    ) -> None:
        self.dsn = dsn
        # Tuning.chdb_cache_mb (0: ClickHouse's defaults) and Tuning.chdb_merge_nice
        self.embedded = EmbeddedOptions(chdb_cache_mb, chdb_merge_nice)
        self.cluster = cluster  # LIVESALES_CLICKHOUSE_CLUSTER: schemas.cluster's layout and settings
        self.options = options
        self._threads = threads
        self._client: Client | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[Client] = []
        self._lanes: list[ClickHouse] = []  # lane(): closed with this store
        self._closing = threading.Event()  # close() began: migrations stop between migrations

    @property
    def is_open(self) -> bool:
        return self._client is not None

    @property
    def client(self) -> Client:
        if self._client is None:
            raise StorageError("ClickHouse is not open")
        return self._client

    async def open(self) -> None:
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="clickhouse")
        self._client = await self.run_in_thread(open_client, self.dsn, self.options, self.embedded)
        self._cluster_settings(self._client)
        await self.run_in_thread(self.migrate_sync)

    async def close(self) -> None:
        self._closing.set()
        client, self._client = self._client, None
        pool, self._pool = self._pool, None
        loop = asyncio.get_running_loop()
        lanes, self._lanes = self._lanes, []
        for lane in lanes:  # their handles are on this store's data path: closed first
            await lane.close()
        if pool is not None:  # let the calls in flight finish first
            await loop.run_in_executor(None, functools.partial(pool.shutdown, wait=True))
        with self._lock:
            handles, self._readers = self._readers, []
        if client is not None:
            handles.append(client)
        for handle in handles:  # all of them: chDB refuses another data path while one is open
            await loop.run_in_executor(None, handle.close)

    def _reader(self) -> Client:
        """This pool thread's query handle, opened on first use (threads end with the pool)."""
        self.client  # noqa: B018 - raises StorageError once closed, before a handle is opened
        reader: Client | None = getattr(self._local, "client", None)
        if reader is None:
            reader = open_client(self.dsn, self.options, self.embedded)
            self._cluster_settings(reader)
            with self._lock:
                self._readers.append(reader)
            self._local.client = reader
        return reader

    async def run_in_thread(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    def _cluster_settings(self, client: Client) -> None:
        if self.cluster:
            for name, value in CLUSTER_SETTINGS.items():
                client.set_client_setting(name, value)

    def migrate_sync(self) -> list[int]:
        """Apply the migrations not yet recorded; safe to run at every start."""
        client = self.client
        migrations, migrations_table = MIGRATIONS, MIGRATIONS_TABLE
        if self.cluster:
            database = str(client.command("SELECT currentDatabase()"))
            migrations = cluster_migrations(self.cluster, database)
            migrations_table = cluster_migrations_table(self.cluster)
        with self._lock:
            # On a cluster a CREATE is a distributed DDL task that waits for every node: a
            # process starting on an up-to-date schema must not need all of them up.
            if not self.cluster or str(client.command("EXISTS TABLE schema_migrations")) != "1":
                client.command(migrations_table)
            done = {int(r[0]) for r in client.query("SELECT version FROM schema_migrations").result_rows}
            applied = []
            for m in migrations:
                if m.version in done:
                    continue
                if self._closing.is_set():  # a stop during start-up: the rest run at the next start
                    raise StorageError("closed while migrating")
                for stmt in m.statements:  # a migration whole, so it is recorded only once all ran
                    client.command(stmt)
                client.insert(
                    "schema_migrations", [[m.version, m.description]], column_names=["version", "description"]
                )
                applied.append(m.version)
                log.info("applied migration %d: %s", m.version, m.description)
            return applied

    async def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows as dicts; ``parameters`` are bound by ClickHouse, never pasted into SQL."""

        def run() -> list[dict[str, Any]]:
            try:
                res = self._reader().query(sql, parameters=dict(parameters or {}))
            except Exception as exc:
                raise StorageError(str(exc)) from exc
            names = res.column_names
            return [dict(zip(names, row, strict=True)) for row in res.result_rows]

        result: list[dict[str, Any]] = await self.run_in_thread(run)
        return result

    def lane(self, threads: int, name: str) -> ClickHouse:
        """This store, with ``threads`` threads (and query handles) of its own for the
        queries made through it: they wait in no queue behind this store's other calls
        (a round of live queries, an insert). Open and closed with this store."""
        lane = _Lane(self, threads, name)
        self._lanes.append(lane)
        return lane

    async def memory_bytes(self) -> dict[str, int]:
        """chDB's memory figures (CHDB_MEMORY_METRICS) from system.metrics, and its
        allocator's (JEMALLOC_FIGURES); empty for a server over HTTP, whose memory is not
        this process's."""
        if not self.dsn.startswith("chdb:"):
            return {}
        rows = await self.query(
            "SELECT metric, value FROM system.metrics WHERE metric IN {names:Array(String)}",
            {"names": list(CHDB_MEMORY_METRICS)},
        )
        figures = {str(r["metric"]): int(r["value"]) for r in rows}
        try:
            stats = await self.query("SELECT * FROM system.jemalloc_stats")
        except StorageError:  # a chDB built without jemalloc: the figures above still count
            return figures
        if stats:
            figures.update(jemalloc_figures(str(next(iter(stats[0].values())))))
        return figures

    async def ping(self) -> bool:
        try:
            await self.query("SELECT 1")
        except StorageError:
            return False
        return True


class _Lane(ClickHouse):
    """ClickHouse.lane: the main store's client and lifetime, a pool and readers of its own."""

    def __init__(self, main: ClickHouse, threads: int, name: str) -> None:
        embedded = main.embedded
        super().__init__(main.dsn, threads, main.cluster, main.options, embedded.cache_mb, embedded.merge_nice)
        self._main = main
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=f"clickhouse-{name}")

    @property
    def is_open(self) -> bool:
        return self._main.is_open

    @property
    def client(self) -> Client:
        return self._main.client

    async def open(self) -> None:
        """Opened with its main store."""
