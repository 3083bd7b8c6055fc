"""The ClickHouse HTTP test server's process list: ``system.processes`` and ``KILL QUERY``.

A server lists every request from its arrival until its statement ran, and a ``KILL
QUERY`` cancels the listed ones that have not started yet. chDB knows nothing of the
test server's requests (tests.support.clickhouse_http), so the list is kept here and a
query of ``system.processes`` reads it, bound as array parameters, instead of chDB's.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.chdb_engine import Answer, EngineError, Statement, split_insert

CANCELLED = "Code: 394. DB::Exception: Query was cancelled. (QUERY_WAS_CANCELLED)"
_PROCESSES = re.compile(rb"\bsystem\.processes\b")
_KILL_STATEMENT = re.compile(rb"^\s*KILL\b", re.IGNORECASE)
_KILL = re.compile(
    r"^\s*KILL\s+QUERY\s+WHERE\s+query_id\s*"
    r"(?:=\s*\{\s*(\w+)\s*:\s*String\s*\}|IN\s*\{\s*(\w+)\s*:\s*Array\(\s*String\s*\)\s*\})"
    r"\s*(SYNC|ASYNC)?\s*(?:FORMAT\s+(\w+))?\s*;?\s*$",
    re.IGNORECASE,
)

Execute = Callable[[Statement], Awaitable[Answer]]


@dataclass(eq=False)
class Process:
    """A request in the process list: from its arrival until its statement ran (or never will)."""

    query_id: str
    started: float = field(default_factory=time.monotonic)
    query: str = ""
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)  # a KILL QUERY matched it
    left: asyncio.Event = field(default_factory=asyncio.Event)  # it left the list (KILL ... SYNC waits for that)


class Cancelled(Exception):
    """A KILL QUERY cancelled the request before its statement ran."""


@dataclass
class ProcessList:
    user: str
    _processes: set[Process] = field(default_factory=set)

    def enter(self, query_id: str) -> Process:
        proc = Process(query_id)
        self._processes.add(proc)
        return proc

    def leave(self, proc: Process) -> None:
        """Take ``proc`` off the list (again is harmless); wakes a KILL ... SYNC waiting for it."""
        self._processes.discard(proc)
        proc.left.set()

    async def run(self, st: Statement, proc: Process, execute: Execute) -> Answer:
        """Run the statement unless a KILL QUERY came first: once in chDB it cannot be stopped.

        Nothing awaits between the check and the hand-over to chDB, so a query is either
        cancelled and never runs, or runs to its end, whatever a KILL says meanwhile.
        """
        if proc.cancelled.is_set():
            raise Cancelled
        if _KILL_STATEMENT.match(st.text):
            return await self._kill(st, proc, execute)
        if _PROCESSES.search(st.text) and split_insert(st.text) is None:  # never in an insert's data
            st = self._with_process_list(st, proc)
        return await execute(st)

    def _with_process_list(self, st: Statement, proc: Process) -> Statement:
        """``st`` reading this list where it names ``system.processes``.

        The list travels as bound array parameters, read by a subquery in place of the
        table. The asking request is left out (a server lists it, but it is never what
        its caller looks for).
        """
        others = sorted((p for p in self._processes if p is not proc), key=lambda p: p.started)
        now = time.monotonic()
        table, params = _rows_subquery("__fake_processes_", {
            "query_id": ("String", [p.query_id for p in others]),
            "initial_query_id": ("String", [p.query_id for p in others]),
            "user": ("String", [self.user] * len(others)),
            "query": ("String", [p.query for p in others]),
            "elapsed": ("Float64", [now - p.started for p in others]),
            "is_cancelled": ("UInt8", [int(p.cancelled.is_set()) for p in others]),
        })  # fmt: skip
        text = _PROCESSES.sub(lambda _: table.encode(), st.text)
        return Statement(text, {**st.params, **params}, st.settings, st.database, st.default_format)

    async def _kill(self, st: Statement, proc: Process, execute: Execute) -> Answer:
        """``KILL QUERY WHERE query_id = {p:String} | IN {p:Array(String)} [SYNC|ASYNC]``, as a server does it.

        Each matching listed request is marked cancelled: one still waiting wakes and
        answers code 394, one already running finishes. SYNC answers once all of them left
        the list, ASYNC (the default) at once; the answer is ClickHouse's result set.
        """
        kill = _KILL.match(st.text.decode(errors="replace"))
        if kill is None:
            raise EngineError(
                "Code: 48. DB::Exception: This test server supports only KILL QUERY WHERE query_id = {p:String} "
                "or query_id IN {p:Array(String)}, then SYNC or ASYNC. (NOT_IMPLEMENTED)", 48,
            )  # fmt: skip
        one, many, mode, fmt = kill.groups()
        ids = f"[{{{one}:String}}]" if one else f"{{{many}:Array(String)}}"  # ClickHouse itself parses the values
        parsed = await execute(Statement(f"SELECT {ids} AS ids".encode(), st.params, default_format="JSONEachRow"))
        wanted = set(json.loads(parsed.body)["ids"])
        matched = [p for p in self._processes if p is not proc and p.query_id in wanted]
        for p in matched:
            p.cancelled.set()
        sync = (mode or "ASYNC").upper() == "SYNC"
        if sync:
            await asyncio.gather(*(p.left.wait() for p in matched))
        table, params = _rows_subquery("__fake_kill_", {
            "kill_status": ("String", ["finished" if sync else "waiting"] * len(matched)),
            "query_id": ("String", [p.query_id for p in matched]),
            "user": ("String", [self.user] * len(matched)),
            "query": ("String", [p.query for p in matched]),
        })  # fmt: skip
        sql = f"SELECT * FROM {table}" + (f" FORMAT {fmt}" if fmt else "")  # noqa: S608 - values are bound
        return await execute(Statement(sql.encode(), params, st.settings, st.database, st.default_format))


def _rows_subquery(prefix: str, columns: dict[str, tuple[str, list[Any]]]) -> tuple[str, dict[str, str]]:
    """A subquery of the given rows (``name: (type, values)``) and the parameters it reads them from.

    Rows the server holds (its process list) are no chDB table; bound as one array
    parameter a column, they reach chDB intact and every result format works.
    """
    refs = [f"{{{prefix}{name}:Array({kind})}}" for name, (kind, _) in columns.items()]
    select = ", ".join(f"{ref}[i] AS {name}" for ref, name in zip(refs, columns, strict=True))
    sql = f"(SELECT {select} FROM (SELECT arrayJoin(range(1, length({refs[0]}) + 1)) AS i))"  # noqa: S608 - bound
    params = {
        f"{prefix}{name}": "[" + ",".join(_literal(v) if kind == "String" else repr(v) for v in values) + "]"
        for name, (kind, values) in columns.items()
    }
    return sql, params


def _literal(value: str) -> str:
    """``value`` as a quoted ClickHouse string literal."""
    return "'" + "".join(_ESCAPES.get(c, c) for c in value) + "'"


_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}
