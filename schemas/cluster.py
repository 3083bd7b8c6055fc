"""The single-node migrations of ``schemas.ddl``, rewritten for a ClickHouse cluster.

Why a rewrite and not a second DDL file: the single-node schema stays the one place
where tables, projections and materialized views are designed; this module derives the
cluster form from it statement by statement, so a migration added to ``schemas.ddl`` is
clustered without anyone remembering to, and a statement this module does not
understand raises ``ClusterSchemaError`` (tests/schemas/test_cluster.py runs every
migration through it) instead of creating a table on one node only.

The layout (docs/DESIGN.md, "Exactly once on a ClickHouse cluster", says why it keeps
the counts exact, and why every client in cluster mode sets ``CLUSTER_SETTINGS``):

* every table ``t`` becomes ``t_local`` on every node (``ON CLUSTER``): a MergeTree
  becomes the Replicated engine of its family under
  ``/clickhouse/tables/{shard}/{database}/{table}``, a Null table stays Null;
* ``t`` itself becomes a Distributed table over ``t_local``, so every query and insert
  of the service keeps its table names. Its sharding key keeps one channel (or, for
  onboarding, one firm) on one shard: ``cityHash64(channel_id)``, else
  ``cityHash64(firm_id)``;
* a materialized view (same name) reads the shard's local Null table and writes the
  shard's local table, so a row lands on the shard its event was routed to; the
  source's and the target's sharding keys must agree, or the rewrite refuses;
* ``INSERT INTO t SELECT … FROM s`` (a backfill) runs once, as it is, over the
  Distributed tables: it reads every shard and routes each row by ``t``'s sharding key;
* ``ALTER … COLUMN`` goes to both tables (reads need the column on the Distributed
  one); projections, indexes and mutations to the local table only;
* ``schema_migrations`` is replicated to every node (no ``{shard}`` in its path), so
  any node answers which migrations ran.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from schemas.ddl import MIGRATIONS
from schemas.migration import Migration

LOCAL_SUFFIX = "_local"
REPLICA_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
EVERYWHERE_PATH = "/clickhouse/tables/all/{database}/{table}"

# Sharding keys by the column a table carries, first match wins: orders and stream
# stats of a channel on one shard (its minutes and summary are one shard's work),
# onboarding by firm. A table with neither must be named in SHARDING_OVERRIDES.
SHARDING_COLUMNS: tuple[tuple[str, str], ...] = (
    ("channel_id", "cityHash64(channel_id)"),
    ("firm_id", "cityHash64(firm_id)"),
)
SHARDING_OVERRIDES: dict[str, str] = {}
# Tables replicated to every node and read locally, not sharded: the write fences
# (processors.fence), which an insert's own check must read complete on whichever node
# it reached (docs/DESIGN.md, "The write fence").
# The connectors' watermarks and the robots' notifications: small coordination tables too.
EVERYWHERE_TABLES = frozenset({"write_fences", "connector_watermarks", "notifications"})

# Session settings of every client in cluster mode (docs/DESIGN.md, "Exactly once on a
# ClickHouse cluster", says why each).
CLUSTER_SETTINGS: dict[str, str | int] = {
    # The INSERT returns only once every shard has written its part: an offset is
    # never committed for rows still queued on the initiator's disk.
    "distributed_foreground_insert": 1,
    # Acknowledged only once a majority of the shard's replicas hold the part: with the
    # two replicas per shard this layout assumes, both, so any replica answers the
    # dedupe look-up completely. A replica that is down fails the insert at once (it is
    # retried; Kafka holds the events), one that is slow fails it after a minute.
    "insert_quorum": "auto",
    "insert_quorum_timeout": 60_000,
    # A replica that fell behind (a new one still fetching, say) answers no query:
    # better an error, retried, than "never stored" about a row another replica holds.
    "max_replica_delay_for_distributed_queries": 30,
    "fallback_to_stale_replicas_for_distributed_queries": 0,
    # A query pinned to one channel (minutes, summary, live marker) asks one shard only.
    "optimize_skip_unused_shards": 1,
}

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_LEADING_COMMENTS = re.compile(r"^(\s*--[^\n]*\n)*\s*")
_CREATE_TABLE = re.compile(
    r"^CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+(?P<name>\w+)\s*\((?P<body>.*)\)\s*ENGINE\s*=\s*(?P<engine>\w+)"
    r"(?:\((?P<args>[^)]*)\))?(?P<rest>.*)$",
    re.S,
)
_CREATE_MV = re.compile(
    r"^CREATE\s+MATERIALIZED\s+VIEW\s+IF\s+NOT\s+EXISTS\s+(?P<name>\w+)\s+TO\s+(?P<target>\w+)\s+AS(?P<select>\s.*)$",
    re.S,
)
_CREATE_VIEW = re.compile(
    r"^CREATE\s+(?P<head>(?:OR\s+REPLACE\s+)?VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?)(?P<name>\w+)(?P<rest>\s.*)$", re.S
)
_ALTER = re.compile(r"^ALTER\s+TABLE\s+(?P<name>\w+)(?P<ops>\s.*)$", re.S)
_ALTER_VIEW_QUERY = re.compile(r"^ALTER\s+TABLE\s+(?P<name>\w+)\s+MODIFY\s+QUERY(?P<select>\s.*)$", re.S)
_INSERT_SELECT = re.compile(r"^INSERT\s+INTO\s+(?P<target>\w+)\s*(?:\([\w\s,]*\))?\s*(?P<select>SELECT\s.*)$", re.S)
_FROM = re.compile(r"\bFROM\s+(\w+)\b", re.I)
_JOIN = re.compile(r"\bJOIN\b", re.I)
_ALTER_KIND = re.compile(
    r"\b(ADD|DROP|MODIFY|RENAME|COMMENT|CLEAR|MATERIALIZE)\s+(COLUMN|PROJECTION|INDEX|CONSTRAINT|STATISTICS)\b", re.I
)
_SCHEMA_COLUMN_OPS = {"ADD", "DROP", "MODIFY", "RENAME", "COMMENT"}


class ClusterSchemaError(ValueError):
    """A single-node statement has no cluster form this module knows: extend it, don't guess."""


@dataclass(frozen=True)
class _Table:
    engine: str  # the single-node engine: Null or a MergeTree family member
    shard_key: str


@dataclass
class _Rewriter:
    cluster: str
    database: str
    tables: dict[str, _Table]
    views: set[str] = field(default_factory=set)  # materialized views created so far

    @property
    def on(self) -> str:
        return f"ON CLUSTER `{self.cluster}`"

    def statement(self, stmt: str) -> list[str]:
        sql = _LEADING_COMMENTS.sub("", stmt).strip()
        for pattern, handler in (
            (_CREATE_TABLE, self._create_table),
            (_CREATE_MV, self._create_mv),
            (_CREATE_VIEW, self._create_view),
            (_ALTER_VIEW_QUERY, self._alter_view_query),
            (_ALTER, self._alter),
            (_INSERT_SELECT, self._insert_select),
        ):
            m = pattern.match(sql)
            if m:
                return handler(m)
        raise ClusterSchemaError(f"no cluster form for statement: {sql[:120]!r}")

    def _create_table(self, m: re.Match[str]) -> list[str]:
        name, body, engine, args, rest = m["name"], m["body"], m["engine"], m["args"], m["rest"]
        if name in EVERYWHERE_TABLES:
            if not engine.endswith("MergeTree"):
                raise ClusterSchemaError(f"table {name}: only a MergeTree can be replicated to every node")
            extra = f", {args.strip()}" if args and args.strip() else ""
            self.tables[name] = _Table(engine, "")
            return [
                f"CREATE TABLE IF NOT EXISTS {name} {self.on} ({body}) "
                f"ENGINE = Replicated{engine}('{EVERYWHERE_PATH}', '{{replica}}'{extra}){rest}"
            ]
        key = SHARDING_OVERRIDES.get(name) or _shard_key(name, body)
        local = name + LOCAL_SUFFIX
        if engine == "Null":
            local_engine = "Null"
        elif engine.endswith("MergeTree"):
            extra = f", {args.strip()}" if args and args.strip() else ""
            local_engine = f"Replicated{engine}('{REPLICA_PATH}', '{{replica}}'{extra})"
            rest = rest.replace("non_replicated_deduplication_window", "replicated_deduplication_window")
        else:
            raise ClusterSchemaError(f"table {name}: no cluster form for engine {engine}")
        self.tables[name] = _Table(engine, key)
        return [
            f"CREATE TABLE IF NOT EXISTS {local} {self.on} ({body}) ENGINE = {local_engine}{rest}",
            f"CREATE TABLE IF NOT EXISTS {name} {self.on} AS {local} "
            f"ENGINE = Distributed({_literal(self.cluster)}, {_literal(self.database)}, {local}, {key})",
        ]

    def _create_mv(self, m: re.Match[str]) -> list[str]:
        name, target, select = m["name"], m["target"], m["select"]
        sources = _FROM.findall(select)
        if len(sources) != 1 or _JOIN.search(select):
            raise ClusterSchemaError(f"view {name}: only a view over one table has a cluster form")
        source = sources[0]
        for t in (source, target):
            if t not in self.tables:
                raise ClusterSchemaError(f"view {name}: {t} was not created by an earlier migration")
        if self.tables[source].shard_key != self.tables[target].shard_key:
            raise ClusterSchemaError(
                f"view {name}: {source} is sharded by {self.tables[source].shard_key} but {target} by "
                f"{self.tables[target].shard_key}; rows would land off their shard"
            )
        select = _FROM.sub(lambda f: f"FROM {f[1]}{LOCAL_SUFFIX}", select, count=1)
        self.views.add(name)
        return [
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {name} {self.on} "
            f"TO {target}{LOCAL_SUFFIX} AS{select}"
        ]

    def _create_view(self, m: re.Match[str]) -> list[str]:
        # A plain view over the Distributed names reads the whole cluster from any node.
        return [f"CREATE {m['head']}{m['name']} {self.on}{m['rest']}"]

    def _alter_view_query(self, m: re.Match[str]) -> list[str]:
        # A view's new query, on every node, reading the local table as its creation did.
        name, select = m["name"], m["select"]
        if name not in self.views:
            raise ClusterSchemaError(f"MODIFY QUERY of {name}, which no earlier migration created as a view")
        select = _FROM.sub(lambda f: f"FROM {f[1]}{LOCAL_SUFFIX}", select, count=1)
        return [f"ALTER TABLE {name} {self.on} MODIFY QUERY{select}"]

    def _alter(self, m: re.Match[str]) -> list[str]:
        name, ops = m["name"], m["ops"]
        if name not in self.tables:
            raise ClusterSchemaError(f"ALTER of {name}, which no earlier migration created as a table")
        kinds = {(verb.upper(), what.upper()) for verb, what in _ALTER_KIND.findall(ops)}
        column_ops = {k for k in kinds if k[1] == "COLUMN" and k[0] in _SCHEMA_COLUMN_OPS}
        local = f"ALTER TABLE {name}{LOCAL_SUFFIX} {self.on}{ops}"
        if not column_ops:
            return [local]  # projections, indexes, mutations, settings: the stored parts only
        if column_ops != kinds:
            raise ClusterSchemaError(f"ALTER of {name} mixes column changes with others: split it in schemas/ddl.py")
        return [local, f"ALTER TABLE {name} {self.on}{ops}"]


    def _insert_select(self, m: re.Match[str]) -> list[str]:
        # A backfill: run once, by the node that migrates, over the Distributed tables,
        # so it reads every shard and each row lands on its channel's shard.
        target, select = m["target"], m["select"]
        sources = _FROM.findall(select)
        if len(sources) != 1 or _JOIN.search(select):
            raise ClusterSchemaError(f"INSERT INTO {target}: only a backfill from one table has a cluster form")
        for t in (sources[0], target):
            if t not in self.tables or self.tables[t].engine == "Null":
                raise ClusterSchemaError(f"INSERT INTO {target}: {t} is not a stored table of an earlier migration")
        return [m.string]


def _shard_key(table: str, body: str) -> str:
    for column, key in SHARDING_COLUMNS:
        if re.search(rf"(?<![\w.`]){column}\s+[A-Za-z]", body):
            return key
    raise ClusterSchemaError(
        f"table {table} has no {' or '.join(c for c, _ in SHARDING_COLUMNS)} column: "
        "give it a sharding key in schemas/cluster.py SHARDING_OVERRIDES"
    )


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _check_name(kind: str, value: str) -> str:
    if not _NAME.match(value):
        raise ClusterSchemaError(f"{kind} name {value!r} is not a plain identifier")
    return value


def cluster_migrations(
    cluster: str, database: str, migrations: tuple[Migration, ...] = MIGRATIONS
) -> tuple[Migration, ...]:
    """The migrations with every statement in its ``ON CLUSTER`` form, same versions."""
    rewriter = _Rewriter(_check_name("cluster", cluster), _check_name("database", database), {})
    return tuple(
        replace(m, statements=tuple(s for stmt in m.statements for s in rewriter.statement(stmt))) for m in migrations
    )


def cluster_migrations_table(cluster: str) -> str:
    """``schema_migrations`` replicated to every node of every shard."""
    return f"""
CREATE TABLE IF NOT EXISTS schema_migrations ON CLUSTER `{_check_name("cluster", cluster)}` (
    version     UInt32,
    description String,
    applied_at  DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplicatedMergeTree('{EVERYWHERE_PATH}', '{{replica}}') ORDER BY version
"""
