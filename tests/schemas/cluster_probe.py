"""Run DDL in a chDB of its own and print what ClickHouse made of it, as JSON.

A subprocess because chDB keeps one engine (and one config) per process: the cluster
config (a remote_servers entry, so Distributed tables can be created) must not leak into
the other tests' chDB, nor theirs into this one.

stdin: {"mode": "parse" | "apply" | "store", ...}; "parse" answers each of
"statements" formatted by ClickHouse's own parser (or its error); "apply" runs them in
order in database ``livesales`` and answers the resulting columns, projections and
tables; "store" opens the service's ClickHouse handle on the "single" or "cluster"
layout, stores the API tests' data set through the real Writer twice, inserts one batch
blindly twice (the insert dedup token's case), and answers every stored row.

chDB runs no Replicated table (no Keeper) and no ON CLUSTER DDL (no DDL worker), so the
cluster layout here is what one node of a one-shard cluster runs: ``one_node`` drops ON
CLUSTER and swaps each Replicated engine for its plain family member. The Distributed
tables, the local Null tables and their views are real.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import chdb

from schemas import cluster as cluster_schema

CLUSTER_CONFIG = """<clickhouse>
  <tcp_port>9000</tcp_port>
  <remote_servers><c><shard><internal_replication>true</internal_replication>
    <replica><host>localhost</host><port>9000</port></replica></shard></c></remote_servers>
  <macros><shard>01</shard><replica>r1</replica></macros>
</clickhouse>
"""


_ON_CLUSTER = re.compile(r" ON CLUSTER `[^`]+`")
_REPLICATED = re.compile(r"Replicated(\w*MergeTree)\('[^']*', '\{replica\}'(?:, )?([^)]*)\)")


def one_node(stmt: str) -> str:
    """What one node of a one-shard cluster runs, minus the replication chDB cannot do."""
    stmt = _REPLICATED.sub(lambda m: f"{m[1]}({m[2]})", _ON_CLUSTER.sub("", stmt))
    return stmt.replace("replicated_deduplication_window", "non_replicated_deduplication_window")


async def _store(path: Path, layout: str) -> dict[str, Any]:
    from processors import store as store_module
    from processors.batch import prepare
    from processors.writer import _insert
    from tests.api.conftest import Rec, dataset, order, store_events

    if layout == "cluster":
        store_module.cluster_migrations = lambda c, db: tuple(  # type: ignore[assignment]
            replace(m, statements=tuple(one_node(s) for s in m.statements))
            for m in cluster_schema.cluster_migrations(c, db)
        )
        store_module.cluster_migrations_table = lambda c: one_node(  # type: ignore[assignment]
            cluster_schema.cluster_migrations_table(c)
        )
    ch = store_module.ClickHouse(f"chdb://{path}", cluster="c" if layout == "cluster" else None)
    await ch.open()
    try:
        await store_events(ch, dataset())
        await store_events(ch, dataset())  # a replay through a fresh writer: all of it counted already
        # a blind retry of an insert that landed: only the dedup token can drop it
        batch = prepare([Rec("t", 0, 0, json.dumps(order("blind-1", "ob1", "paid", "2020-02-29T10:09:00+08:00",
                                                             "nh-blind", [("x", "x", 1, 100, 10)])).encode())])
        assert not batch.dead_letters, batch.dead_letters
        (rows,) = batch.rows.values()
        for _ in range(2):
            await ch.run_in_thread(_insert, ch.client, rows)
        out: dict[str, Any] = {"settings": {}}
        for name in cluster_schema.CLUSTER_SETTINGS:
            rows = await ch.query("SELECT value FROM system.settings WHERE name = {n:String}", {"n": name})
            out["settings"][name] = rows[0]["value"]
        for table in ("order_steps", "onboarding_steps", "stream_stats"):
            cols = await ch.query(
                "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String} "
                "AND name != 'stored_at' ORDER BY position",
                {"t": table},
            )
            names = ", ".join(f"`{c['name']}`" for c in cols)
            out[table] = [
                [str(v) for v in r.values()]
                for r in await ch.query(f"SELECT {names} FROM {table} ORDER BY event_id")  # noqa: S608
            ]
        # migration 5's state, folded (its storage times differ from run to run)
        for table, key in (("channel_state", "channel_id"), ("channel_minutes", "minute, channel_id")):
            out[table] = [
                [str(v) for v in r.values()]
                for r in await ch.query(
                    f"SELECT * EXCEPT (last_stored) FROM {table} FINAL ORDER BY {key}"  # noqa: S608
                    if table == "channel_state"
                    else f"SELECT * FROM {table} FINAL ORDER BY {key}"  # noqa: S608
                )
            ]
        return out
    finally:
        await ch.close()


def _rows(cur: Any, sql: str) -> list[list[Any]]:
    cur.execute(sql)
    return [list(r) for r in cur.fetchall()]


def main() -> None:
    job = json.load(sys.stdin)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.xml"
        config.write_text(CLUSTER_CONFIG)
        # The first connection starts the process's one engine, with the cluster config.
        where = str(Path(tmp) / "ch") if job["mode"] == "store" else ":memory:"
        conn = chdb.connect(f"{where}?config-file={config}")
        cur = conn.cursor()
        out: dict[str, Any] = {}
        if job["mode"] == "store":
            path = Path(tmp) / "ch"
            path.mkdir(exist_ok=True)
            json.dump(asyncio.run(_store(path, job["layout"])), sys.stdout)
            conn.close()
            return
        if job["mode"] == "parse":
            parsed = []
            for stmt in job["statements"]:
                try:
                    literal = "'" + stmt.replace("\\", "\\\\").replace("'", "\\'") + "'"
                    cur.execute(f"SELECT formatQuery({literal})")
                    parsed.append({"ok": cur.fetchone()[0]})
                except Exception as exc:
                    parsed.append({"error": str(exc)[:500]})
            out["parsed"] = parsed
        else:
            cur.execute("CREATE DATABASE livesales ENGINE = Atomic")
            cur.execute("USE livesales")
            for stmt in job["statements"]:
                cur.execute(stmt)
            out["columns"] = _rows(
                cur,
                "SELECT table, name, type, default_kind, default_expression FROM system.columns "
                "WHERE database = 'livesales' ORDER BY table, position",
            )
            out["projections"] = _rows(
                cur, "SELECT table, name, query FROM system.projections WHERE database = 'livesales' ORDER BY table, name"
            )
            out["tables"] = _rows(
                cur, "SELECT name, engine, engine_full FROM system.tables WHERE database = 'livesales' ORDER BY name"
            )
        conn.close()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
