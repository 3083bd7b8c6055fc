"""Run DDL in a chDB of its own and print what ClickHouse made of it, as JSON.

A subprocess because chDB keeps one engine (and one config) per process: the cluster
config (a remote_servers entry, so Distributed tables can be created) must not leak into
the other tests' chDB, nor theirs into this one.

stdin: {"mode": "parse" | "apply", "statements": [...]}; "parse" answers each
statement formatted by ClickHouse's own parser (or its error); "apply" runs them in
order in database ``livesales`` and answers the resulting columns, projections and
tables.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import chdb

CLUSTER_CONFIG = """<clickhouse>
  <tcp_port>9000</tcp_port>
  <remote_servers><c><shard><internal_replication>true</internal_replication>
    <replica><host>localhost</host><port>9000</port></replica></shard></c></remote_servers>
  <macros><shard>01</shard><replica>r1</replica></macros>
</clickhouse>
"""


def _rows(cur: Any, sql: str) -> list[list[Any]]:
    cur.execute(sql)
    return [list(r) for r in cur.fetchall()]


def main() -> None:
    job = json.load(sys.stdin)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.xml"
        config.write_text(CLUSTER_CONFIG)
        conn = chdb.connect(f":memory:?config-file={config}")
        cur = conn.cursor()
        out: dict[str, Any] = {}
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
