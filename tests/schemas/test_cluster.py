"""The cluster schema (schemas/cluster.py) against ClickHouse's own parser and engine.

chDB cannot run Replicated tables (no Keeper) nor ON CLUSTER DDL (no DDL worker), so:
every cluster statement, exactly as `livesales migrate` sends it, goes through
ClickHouse's parser; then the statements as one node of a one-shard cluster executes
them (ON CLUSTER dropped, the Replicated engine swapped for its plain family member;
Distributed tables are real, over a configured cluster) are applied, and the columns and
projections that result are compared with the single-node schema's; and the real Writer
stores the API tests' data set through that layout's Distributed tables and views.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from schemas.cluster import (
    EVERYWHERE_TABLES,
    LOCAL_SUFFIX,
    ClusterSchemaError,
    cluster_migrations,
    cluster_migrations_table,
)
from schemas.ddl import MIGRATIONS, MIGRATIONS_TABLE, Migration
from tests.schemas.cluster_probe import one_node

ROOT = Path(__file__).resolve().parents[2]


def _probe(mode: str, statements: list[str] | None = None, layout: str | None = None) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.schemas.cluster_probe"],
        input=json.dumps({"mode": mode, "statements": statements, "layout": layout}),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _statements(migrations: tuple[Migration, ...]) -> list[str]:
    return [s for m in migrations for s in m.statements]


CLUSTER = cluster_migrations("c", "livesales")


def test_every_cluster_statement_parses_in_clickhouse() -> None:
    statements = [cluster_migrations_table("c"), *_statements(CLUSTER)]
    parsed = _probe("parse", statements)["parsed"]
    errors = [(s[:100], p["error"]) for s, p in zip(statements, parsed, strict=True) if "error" in p]
    assert not errors
    for text in (p["ok"] for p in parsed):
        if text.startswith("INSERT INTO"):  # a backfill: once, over the Distributed tables
            assert "_local" not in text
            continue
        assert "ON CLUSTER c" in text
        assert "non_replicated" not in text
        if "MergeTree" in text:
            assert re.search(r"Replicated\w*MergeTree\('/clickhouse/tables/", text)


def _assert_same_schema(migrations: tuple[Migration, ...]) -> None:
    clustered = cluster_migrations("c", "livesales", migrations)
    single = _probe("apply", [MIGRATIONS_TABLE, *_statements(migrations)])
    as_one_node = [one_node(s) for s in [cluster_migrations_table("c"), *_statements(clustered)]]
    cluster = _probe("apply", as_one_node)

    def columns(result: dict[str, Any]) -> dict[str, list[list[Any]]]:
        out: dict[str, list[list[Any]]] = {}
        for table, *rest in result["columns"]:
            out.setdefault(table, []).append(rest)
        return out

    single_cols, cluster_cols = columns(single), columns(cluster)
    single_engines = {name: engine for name, engine, _ in single["tables"]}
    cluster_engines = {name: (engine, full) for name, engine, full in cluster["tables"]}
    for table, cols in single_cols.items():
        if single_engines[table] == "MaterializedView" or table == "schema_migrations":
            continue
        if table in EVERYWHERE_TABLES:  # replicated to every node, read locally: no Distributed
            assert cluster_cols[table] == cols and table + LOCAL_SUFFIX not in cluster_cols, table
            assert cluster_engines[table][0] == single_engines[table], table
            continue
        if single_engines[table] == "View":  # a plain view reads the Distributed tables
            assert cluster_cols[table] == cols and cluster_engines[table][0] == "View", table
            continue
        assert cluster_cols[table + LOCAL_SUFFIX] == cols, table  # what shards store
        assert cluster_cols[table] == cols, table  # what queries and inserts see
        assert cluster_engines[table][0] == "Distributed"
        assert cluster_engines[table + LOCAL_SUFFIX][0] == single_engines[table]
    assert cluster_cols["schema_migrations"] == single_cols["schema_migrations"]

    single_proj = {(t + LOCAL_SUFFIX, n, q) for t, n, q in single["projections"]}
    assert single_proj  # the schema has projections; the comparison is not vacuous
    assert {tuple(p) for p in cluster["projections"]} == single_proj

    # materialized views: same names, fed by the shard's local tables
    views = {n for n, e in single_engines.items() if e == "MaterializedView"}
    assert views and views <= set(cluster_engines)
    for name in views:
        create = next(s for s in _statements(clustered) if f"VIEW IF NOT EXISTS {name} " in s)
        assert re.search(r"\bTO \w+_local\b", create) and re.search(r"\bFROM \w+_local\b", create)


def test_same_columns_and_projections_as_single_node() -> None:
    _assert_same_schema(MIGRATIONS)


def test_the_per_firm_projections_go_to_every_shards_local_table() -> None:
    """The domestic-sales pivots' projections (api.queries.domestic) are built where the
    parts are: on order_steps_local, never on the Distributed table, which has no parts."""
    firm = [s for s in _statements(CLUSTER) if "p_firm_" in s]
    assert len(firm) == 4
    for stmt in firm:
        assert stmt.startswith("ALTER TABLE order_steps_local ON CLUSTER `c`"), stmt[:80]
    assert sum("ADD PROJECTION IF NOT EXISTS p_firm_month" in s for s in firm) == 1
    assert sum("MATERIALIZE PROJECTION p_firm_hour" in s for s in firm) == 1
    projections = {(t, n) for t, n, _ in _probe("apply", [one_node(s) for s in _statements(CLUSTER)])["projections"]}
    assert {("order_steps_local", "p_firm_month"), ("order_steps_local", "p_firm_hour")} <= projections
    assert not {n for t, n in projections if t == "order_steps"}


def test_the_writer_counts_the_same_through_distributed_tables() -> None:
    """The real Writer, twice over the API tests' data set, on both layouts: same rows."""
    single = _probe("store", layout="single")
    cluster = _probe("store", layout="cluster")
    assert cluster["settings"]["distributed_foreground_insert"] == "1"
    for table in ("order_steps", "onboarding_steps", "stream_stats"):
        assert cluster[table] == single[table], table
        event_ids = [row[single_event_id(table)] for row in single[table]]
        assert len(event_ids) == len(set(event_ids)) > 0  # stored once each, replay and blind retry included
    assert sum(1 for r in cluster["order_steps"] if "blind-1" in r) == 1
    # the per-channel state (migration 5) is kept the same through the shards' local views,
    # and a block the dedup token drops feeds none of them
    for table in ("channel_state", "channel_minutes"):
        assert cluster[table] == single[table] and single[table], table
    blind = [r for r in cluster["channel_state"] if r[0] == "nh-blind"]
    assert len(blind) == 1 and blind[0][3] == "1"  # one order row, counted once


def single_event_id(table: str) -> int:
    """Position of event_id among the dumped columns (stored_at left out)."""
    return {"order_steps": 2, "onboarding_steps": 2, "stream_stats": 1}[table]


def test_sharding_keeps_a_channel_or_a_firm_on_one_shard() -> None:
    keys = {}
    for stmt in _statements(CLUSTER):
        m = re.search(r"CREATE TABLE IF NOT EXISTS (\w+) .*Distributed\('c', 'livesales', \w+, (.+)\)$", stmt, re.S)
        if m:
            keys[m[1]] = m[2]
    assert keys == {
        "order_steps": "cityHash64(channel_id)",
        "order_events_in": "cityHash64(channel_id)",
        "stream_stats": "cityHash64(channel_id)",
        "stream_stats_in": "cityHash64(channel_id)",
        "onboarding_steps": "cityHash64(firm_id)",
        "onboarding_events_in": "cityHash64(firm_id)",
        "channel_registry": "cityHash64(channel_id)",
        "channel_events_in": "cityHash64(channel_id)",
        "channel_state": "cityHash64(channel_id)",  # a channel's state on the shard of its rows
        "channel_minutes": "cityHash64(channel_id)",
    }


# A migration of the shape the channel registry (contract v1.1) is expected to take:
# it must be clustered without anyone editing schemas/cluster.py.
REGISTRY_LIKE = Migration(
    99,
    "registry-like",
    (
        """
        CREATE TABLE IF NOT EXISTS channel_registry_like (
            channel_id String, title String, version UInt64
        ) ENGINE = ReplacingMergeTree(version) ORDER BY channel_id
        """,
        """
        CREATE VIEW IF NOT EXISTS channels_current_like AS
        SELECT channel_id, argMax(title, version) AS title FROM channel_registry_like GROUP BY channel_id
        """,
    ),
)


def test_a_later_migration_is_clustered_generically() -> None:
    migrations = cluster_migrations("c", "livesales", (*MIGRATIONS, REGISTRY_LIKE))
    added = list(migrations[-1].statements)
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)" in added[0]
    assert "cityHash64(channel_id)" in added[1]
    assert "channels_current_like ON CLUSTER `c` AS" in added[2]
    assert not [p for p in _probe("parse", added)["parsed"] if "error" in p]
    _assert_same_schema((*MIGRATIONS, REGISTRY_LIKE))


@pytest.mark.parametrize(
    ("statement", "why"),
    [
        ("CREATE TABLE IF NOT EXISTS t (a UInt64) ENGINE = MergeTree ORDER BY a", "no channel_id or firm_id"),
        ("CREATE TABLE IF NOT EXISTS t (channel_id String) ENGINE = Log", "no cluster form for engine"),
        ("CREATE TABLE t (channel_id String) ENGINE = MergeTree ORDER BY channel_id", "no cluster form"),
        ("CREATE MATERIALIZED VIEW IF NOT EXISTS v TO order_steps AS SELECT * FROM order_events_in "
         "JOIN stream_stats USING channel_id", "one table"),
        ("CREATE MATERIALIZED VIEW IF NOT EXISTS v TO onboarding_steps AS SELECT * FROM order_events_in",
         "rows would land off their shard"),
        ("ALTER TABLE order_steps ADD COLUMN x UInt8, ADD INDEX ix x TYPE minmax", "mixes column changes"),
        ("ALTER TABLE nowhere ADD COLUMN x UInt8", "no earlier migration"),
        ("INSERT INTO channel_state (channel_id) SELECT channel_id FROM order_events_in", "not a stored table"),
        ("INSERT INTO nowhere SELECT channel_id FROM order_steps", "not a stored table"),
        ("INSERT INTO channel_state (channel_id) SELECT channel_id FROM order_steps JOIN stream_stats USING channel_id",
         "from one table"),
        ("DROP TABLE order_steps", "no cluster form"),
    ],
)
def test_what_it_cannot_cluster_fails_loudly(statement: str, why: str) -> None:
    with pytest.raises(ClusterSchemaError, match=why):
        cluster_migrations("c", "livesales", (*MIGRATIONS, Migration(99, "x", (statement,))))


def test_cluster_and_database_names_are_checked() -> None:
    with pytest.raises(ClusterSchemaError):
        cluster_migrations("c` ; DROP", "livesales")
    with pytest.raises(ClusterSchemaError):
        cluster_migrations("c", "db'")


class _RecordingClient:
    """Stands in for clickhouse-connect's client: records what the store sends."""

    def __init__(self, exists: bool = False, done: tuple[int, ...] = (1,)) -> None:
        self.commands: list[str] = []
        self.settings: dict[str, Any] = {}
        self.exists, self.done = exists, done

    def set_client_setting(self, name: str, value: Any) -> None:
        self.settings[name] = value

    def command(self, sql: str) -> str:
        self.commands.append(sql)
        if sql == "EXISTS TABLE schema_migrations":
            return str(int(self.exists))
        return "livesales" if sql == "SELECT currentDatabase()" else ""

    def query(self, sql: str) -> Any:
        return SimpleNamespace(result_rows=[[v] for v in self.done])

    def insert(self, *args: Any, **kwargs: Any) -> None:
        pass


def test_the_store_migrates_on_cluster_when_a_cluster_is_set() -> None:
    from processors.store import ClickHouse
    from schemas.cluster import CLUSTER_SETTINGS

    store = ClickHouse("http://localhost:8123", cluster="c")
    fake = _RecordingClient()
    store._client = fake  # type: ignore[assignment]
    store._cluster_settings(fake)  # type: ignore[arg-type]
    assert store.migrate_sync() == [m.version for m in MIGRATIONS[1:]]  # 1 is done
    assert fake.settings == CLUSTER_SETTINGS
    sent = [c for c in fake.commands if c not in ("SELECT currentDatabase()", "EXISTS TABLE schema_migrations")]
    later = [stmt for m in cluster_migrations("c", "livesales")[1:] for stmt in m.statements]
    assert sent == [cluster_migrations_table("c"), *later]


def test_a_process_on_an_up_to_date_cluster_sends_no_ddl() -> None:
    from processors.store import ClickHouse

    store = ClickHouse("http://localhost:8123", cluster="c")
    fake = _RecordingClient(exists=True, done=tuple(m.version for m in MIGRATIONS))
    store._client = fake  # type: ignore[assignment]
    assert store.migrate_sync() == []
    assert not [c for c in fake.commands if c.lstrip().startswith(("CREATE", "ALTER"))]


def test_the_channel_state_views_are_local_and_the_backfills_global() -> None:
    """Migration 5 on a cluster: each shard's views fold the rows stored on that shard
    into its local state; the backfill runs once, over the Distributed tables."""
    (single,) = [m for m in MIGRATIONS if m.version == 5]
    (clustered,) = [m for m in CLUSTER if m.version == 5]
    inserts = [s for s in clustered.statements if s.startswith("INSERT")]
    assert inserts == [s.strip() for s in single.statements if s.lstrip().startswith("INSERT")] and len(inserts) == 5
    views = [s for s in clustered.statements if "MATERIALIZED VIEW" in s]
    assert len(views) == 5
    for view in views:
        assert re.search(r"TO channel_(state|minutes)_local AS", view)
        assert re.search(r"FROM (order_steps|stream_stats|channel_registry)_local GROUP BY", view)
