"""The chDB side of the test ClickHouse HTTP server: a pool of handles on one data path.

chDB serialises the calls on one handle, so the server keeps several handles on the
same engine and gives each request one of them for its duration: queries of different
clients then run side by side as they would on a server. Session state (``USE``,
``SET``) lives on a handle, so each call sets exactly the settings its request asked
for and resets the ones the previous request on that handle left behind.

chDB has no ``input()`` table function, and its streaming insert refuses
``INSERT ... SELECT``, so ``INSERT ... SELECT ... FROM input(structure) ... FORMAT fmt``
followed by data (how a client filters its rows on the server as it inserts them) runs as
the same statement over ``file()`` of the data, written to a temporary file.
"""

from __future__ import annotations

import os
import queue
import re
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import chdb

_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CODE = re.compile(r"Code: (\d+)")
# An INSERT whose data follows its FORMAT clause (clickhouse-connect's inserts, all formats).
# Quoted literals are skipped whole, so a FORMAT word inside one (say in the message of a
# throwIf in the WHERE of an INSERT ... SELECT) does not end the statement early.
_INSERT_WITH_DATA = re.compile(
    rb"^\s*(INSERT\s+INTO\s(?:'(?:\\.|[^'\\])*'|[^'])*?)\bFORMAT\s+(\w+)[ \t]*(?:\r?\n)?", re.IGNORECASE
)
_INPUT_FUNCTION = re.compile(r"\binput\s*\(", re.IGNORECASE)
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_RESULT_STATEMENTS = ("SELECT", "WITH", "SHOW", "DESC", "DESCRIBE", "EXISTS", "EXPLAIN", "CHECK", "(")
_LEADING_COMMENTS = re.compile(r"^(\s+|--[^\n]*\n|/\*.*?\*/)+", re.DOTALL)


class EngineError(RuntimeError):
    """ClickHouse refused the statement; ``code`` is its ClickHouse error code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Statement:
    """One HTTP request's statement, as the HTTP interface defines it."""

    text: bytes  # the query parameter, a newline, and the (decompressed) body
    params: dict[str, str] = field(default_factory=dict)  # bound parameters, without "param_"
    settings: dict[str, str] = field(default_factory=dict)
    database: str = "default"
    default_format: str = "TabSeparated"


@dataclass
class Answer:
    body: bytes
    result_format: str | None  # set for statements that answer a result set
    summary: dict[str, str]
    rows_written: int = 0


def split_insert(text: bytes) -> tuple[str, str, bytes] | None:
    """(``INSERT INTO t (cols)``, format, data) when the statement carries its data."""
    match = _INSERT_WITH_DATA.match(text[: 1 << 16])
    if match is None:
        return None
    return match.group(1).decode().strip(), match.group(2).decode(), text[match.end() :]


def result_format(sql: str, default_format: str) -> str | None:
    head = _LEADING_COMMENTS.sub("", sql, count=1).upper()
    if not head.startswith(_RESULT_STATEMENTS):
        return None
    trailing = _TRAILING_FORMAT.search(sql)
    return trailing.group(1) if trailing else default_format


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _error(exc: Exception) -> EngineError:
    text = str(exc)
    start = text.find("Code: ")
    message = text[start:] if start >= 0 else text
    match = _CODE.search(message)
    return EngineError(message.strip(), int(match.group(1)) if match else 1000)


class _Handle:
    def __init__(self, path: str) -> None:
        self.conn: Any = chdb.connect(path)
        self.database = "default"
        self.settings: dict[str, str] = {}

    def run(self, sql: str, fmt: str = "TabSeparated", params: dict[str, str] | None = None) -> Any:
        try:
            return self.conn.query(sql, fmt, params=params or {})
        except Exception as exc:
            raise _error(exc) from exc

    def prepare(self, database: str, settings: dict[str, str]) -> None:
        if database != self.database:
            if not _SETTING_NAME.match(database):
                raise EngineError(f"Code: 81. DB::Exception: Database {database} does not exist. (UNKNOWN_DATABASE)", 81)
            self.run(f"USE {database}")
            self.database = database
        for name in [n for n in self.settings if n not in settings]:
            self.run(f"SET {name} = DEFAULT")
            del self.settings[name]
        for name, value in settings.items():
            if self.settings.get(name) == value:
                continue
            if not _SETTING_NAME.match(name):
                raise EngineError(f"Code: 115. DB::Exception: Unknown setting '{name}'. (UNKNOWN_SETTING)", 115)
            self.settings.pop(name, None)  # a failed SET leaves it unknown
            self.run(f"SET {name} = {_quote(value)}")
            self.settings[name] = value


class Engine:
    """chDB on ``path`` behind ``handles`` handles; ``execute`` blocks (call it in a thread)."""

    def __init__(self, path: str, handles: int = 4) -> None:
        self._free: queue.Queue[_Handle] = queue.Queue()
        self._all = [_Handle(path) for _ in range(handles)]
        for h in self._all:
            self._free.put(h)
        self.version, self.timezone = self._all[0].run("SELECT version(), timezone()").bytes().decode().split()

    def close(self) -> None:
        for h in self._all:
            h.conn.close()

    def execute(self, st: Statement) -> Answer:
        handle = self._free.get()
        try:
            handle.prepare(st.database, st.settings)
            insert = split_insert(st.text)
            if insert is not None:
                return self._insert(handle, *insert, st.params)
            sql = st.text.decode()
            started = time.perf_counter()
            result = handle.run(sql, st.default_format, st.params)
            body: bytes = result.bytes() or b""
            summary = {
                "read_rows": str(result.rows_read()),
                "read_bytes": str(result.bytes_read()),
                "written_rows": "0",
                "written_bytes": "0",
                "total_rows_to_read": "0",
                "result_rows": "0",
                "result_bytes": str(len(body)),
                "elapsed_ns": str(int((time.perf_counter() - started) * 1e9)),
            }
            return Answer(body, result_format(sql, st.default_format), summary)
        finally:
            self._free.put(handle)

    @staticmethod
    def _insert(handle: _Handle, statement: str, fmt: str, data: bytes, params: dict[str, str]) -> Answer:
        started = time.perf_counter()
        if _INPUT_FUNCTION.search(statement):
            rows, size = _insert_select_input(handle, statement, fmt, data, params)
        else:
            try:
                with handle.conn.send_insert(statement, fmt) as inserter:
                    if data and not data.isspace():
                        inserter.append(data)
                    result = inserter.finish()
            except Exception as exc:
                raise _error(exc) from exc
            rows, size = int(result.rows_written), int(result.bytes_written)
        summary = {
            "read_rows": "0",
            "read_bytes": "0",
            "written_rows": str(rows),
            "written_bytes": str(size),
            "total_rows_to_read": "0",
            "result_rows": "0",
            "result_bytes": "0",
            "elapsed_ns": str(int((time.perf_counter() - started) * 1e9)),
        }
        return Answer(b"", None, summary, rows_written=rows)


def _insert_select_input(
    handle: _Handle, statement: str, fmt: str, data: bytes, params: dict[str, str]
) -> tuple[int, int]:
    """Run ``INSERT ... SELECT ... FROM input(structure) ...`` over ``data``: (rows, bytes) written.

    ``input(`` becomes ``file({__input_path:String}, 'fmt', `` on a temporary file holding
    the data, its structure argument (a literal or a bound parameter) kept; the statement
    runs as one, so an error in its WHERE (a throwIf) stores none of the rows, as on a server.
    """
    sql = _INPUT_FUNCTION.sub(lambda _: f"file({{__input_path:String}}, {_quote(fmt)}, ", statement)
    fd, path = tempfile.mkstemp(prefix="chdb-http-input-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        result = handle.run(sql, params={**params, "__input_path": path})
        return int(result.rows_written()), int(result.bytes_written())
    finally:
        os.unlink(path)
