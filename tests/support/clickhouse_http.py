"""A ClickHouse HTTP interface answered by chDB, with faults switchable at run time.

No current ClickHouse server installs on the test machines (Debian's is 18.16, which
clickhouse-connect refuses), so the ``http(s)://`` path of livesales is tested against
this: the part of ClickHouse's HTTP interface that clickhouse-connect speaks, in front of
chDB, the same ClickHouse engine. It runs as its own process, so several livesales
processes can share one store through it, as they would share a server::

    python -m tests.support.clickhouse_http --data DIR [--port 0] [--user U --password P]
                                            [--certfile CERT --keyfile KEY]

It prints ``listening on http(s)://HOST:PORT`` once it answers. What it speaks:

* ``GET|POST /`` with the statement in the ``query`` parameter and/or the body (the
  parameter, a newline, then the body, as ClickHouse joins them), or in a form
  (clickhouse-connect sends long bound parameters that way); ``database``,
  ``default_format``, ``param_<name>`` bound parameters, every other parameter a
  setting; a ``Content-Encoding`` (lz4, zstd, gzip, deflate) of the body;
* ``INSERT ... FORMAT <fmt>`` followed by its data (Native, RowBinary, JSONEachRow...),
  also ``INSERT ... SELECT ... FROM input(<structure>) [WHERE ...] FORMAT <fmt>``;
* a process list: every request is in ``system.processes`` (``query_id``, the client's or
  a generated one) from its arrival until its statement ran, as on a server: a query of
  ``system.processes`` reads that list (not chDB's), and
  ``KILL QUERY WHERE query_id = {p:String} | IN {p:Array(String)} [SYNC|ASYNC]`` cancels
  the matching ones still waiting (``delay_s``): they answer code 394 and never run;
* the headers clickhouse-connect reads: ``X-ClickHouse-Summary``, ``-Query-Id``,
  ``-Format``, ``-Timezone``, and on errors ``-Exception-Code`` with ClickHouse's text;
* user and password as Basic auth, ``X-ClickHouse-User``/``-Key`` or parameters;
* ``GET /ping``; ``GET|PUT /_faults`` to read or replace the fault plan (JSON, fields
  of ``Faults``) and read how many faults were injected.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gzip
import hmac
import json
import logging
import random
import re
import signal
import socket
import ssl
import struct
import sys
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from aiohttp import web

from tests.support.chdb_engine import Answer, Engine, EngineError, Statement, split_insert

_TRANSPORT_PARAMS = frozenset({
    "query", "database", "default_format", "user", "password", "query_id", "session_id", "session_timeout",
    "session_check", "compress", "decompress", "buffer_size", "wait_end_of_query", "client_protocol_version",
    "quota_key", "role", "enable_http_compression", "send_progress_in_http_headers",
    "http_headers_progress_interval_ms", "http_wait_end_of_query",
})  # fmt: skip
_CANCELLED = "Code: 394. DB::Exception: Query was cancelled. (QUERY_WAS_CANCELLED)"
_PROCESSES = re.compile(rb"\bsystem\.processes\b")
_KILL_STATEMENT = re.compile(rb"^\s*KILL\b", re.IGNORECASE)
_KILL = re.compile(
    r"^\s*KILL\s+QUERY\s+WHERE\s+query_id\s*"
    r"(?:=\s*\{\s*(\w+)\s*:\s*String\s*\}|IN\s*\{\s*(\w+)\s*:\s*Array\(\s*String\s*\)\s*\})"
    r"\s*(SYNC|ASYNC)?\s*(?:FORMAT\s+(\w+))?\s*;?\s*$",
    re.IGNORECASE,
)


@dataclass
class Faults:
    """What to do to requests whose statement contains ``match`` (all when empty).

    Rates are probabilities per request. ``*_after`` faults hit once the statement ran:
    an insert that landed but whose answer was lost, the case a retry must not double.
    """

    match: str = ""
    error_rate: float = 0.0  # answer 503 without running the statement
    error_after_rate: float = 0.0  # run it, then answer 500
    reset_rate: float = 0.0  # reset the connection without running it
    reset_after_rate: float = 0.0  # run it, then reset the connection
    delay_s: float = 0.0  # run the statement this much later (every matching request); a KILL QUERY ends the wait
    delay_after_s: float = 0.0  # run it at once, answer this much later: an insert landed, its client waits
    seed: int = 1


@dataclass
class FaultCounts:
    errors: int = 0
    errors_after: int = 0
    resets: int = 0
    resets_after: int = 0
    delayed: int = 0
    requests: int = 0
    inserted_rows: int = 0
    killed: int = 0  # requests a KILL QUERY cancelled before their statement ran (answered code 394)


@dataclass(eq=False)
class _Process:
    """A request in the process list: from its arrival until its statement ran (or never will)."""

    query_id: str
    started: float = field(default_factory=time.monotonic)
    query: str = ""
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)  # a KILL QUERY matched it
    left: asyncio.Event = field(default_factory=asyncio.Event)  # it left the list (KILL ... SYNC waits for that)


class _Cancelled(Exception):
    """Internal: a KILL QUERY cancelled the request before its statement ran."""


class _Reset(Exception):
    """Internal: the handler dropped the connection on purpose."""


@dataclass
class ClickHouseHTTP:
    """The server object: ``faults`` may be replaced at any time (or through /_faults)."""

    engine: Engine
    user: str = "default"
    password: str = ""
    faults: Faults = field(default_factory=Faults)
    counts: FaultCounts = field(default_factory=FaultCounts)
    _pool: ThreadPoolExecutor | None = None
    _rnd: random.Random = field(default_factory=random.Random)
    _processes: set[_Process] = field(default_factory=set)

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        self._rnd = random.Random(faults.seed)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_get("/ping", self._ping)
        app.router.add_get("/_faults", self._get_faults)
        app.router.add_put("/_faults", self._put_faults)
        app.router.add_route("GET", "/", self._query)
        app.router.add_route("POST", "/", self._query)
        return app

    # -- control ----------------------------------------------------------------------------
    async def _ping(self, request: web.Request) -> web.Response:
        return web.Response(text="Ok.\n")

    async def _get_faults(self, request: web.Request) -> web.Response:
        return web.json_response({"faults": asdict(self.faults), "counts": asdict(self.counts)})

    async def _put_faults(self, request: web.Request) -> web.Response:
        body = await request.json()
        known = {f.name for f in fields(Faults)}
        self.set_faults(Faults(**{k: v for k, v in body.items() if k in known}))
        return await self._get_faults(request)

    # -- the HTTP interface -------------------------------------------------------------------
    def _authorised(self, request: web.Request) -> bool:
        user, password = request.query.get("user"), request.query.get("password", "")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        elif "X-ClickHouse-User" in request.headers:
            user, password = request.headers["X-ClickHouse-User"], request.headers.get("X-ClickHouse-Key", "")
        user = user or "default"
        return hmac.compare_digest(user.encode(), self.user.encode()) and hmac.compare_digest(
            password.encode(), self.password.encode()
        )

    async def _statement(self, request: web.Request) -> Statement:
        params: dict[str, str] = dict(request.query)
        body = b""
        if request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        else:
            body = _decompress(await request.read(), request.headers.get("Content-Encoding", ""))
        query = params.get("query", "")
        text = (query + "\n").encode() + body if query else body
        return Statement(
            text=text,
            params={k[6:]: v for k, v in params.items() if k.startswith("param_")},
            settings={
                k: v for k, v in params.items() if k not in _TRANSPORT_PARAMS and not k.startswith("param_")
            },
            database=params.get("database") or request.headers.get("X-ClickHouse-Database") or "default",
            default_format=params.get("default_format") or request.headers.get("X-ClickHouse-Format") or "TabSeparated",
        )

    async def _query(self, request: web.Request) -> web.StreamResponse:
        query_id = request.query.get("query_id") or str(uuid.uuid4())
        if not self._authorised(request):
            return _error_response(
                "Code: 516. DB::Exception: Authentication failed: password is incorrect, or there is no user "
                "with such name. (AUTHENTICATION_FAILED)", 516, 401, query_id,
            )  # fmt: skip
        proc = _Process(query_id)  # listed before its data is read and before any delay, as on a server
        self._processes.add(proc)
        try:
            return await self._handle(request, proc)
        finally:
            self._leave(proc)

    def _leave(self, proc: _Process) -> None:
        """Take ``proc`` off the process list (again is harmless); wakes a KILL ... SYNC waiting for it."""
        self._processes.discard(proc)
        proc.left.set()

    async def _handle(self, request: web.Request, proc: _Process) -> web.StreamResponse:
        query_id = proc.query_id
        statement = await self._statement(request)
        insert = split_insert(statement.text)  # its query, not its data, as system.processes shows it
        proc.query = f"{insert[0]} FORMAT {insert[1]}" if insert else statement.text[:4096].decode(errors="replace")
        self.counts.requests += 1
        f = self.faults
        hit = not f.match or f.match.encode() in statement.text[:4096]
        try:
            if hit:
                await self._before(request, f, proc)
            try:
                answer = await self._run(statement, proc)
            except EngineError as exc:
                return _error_response(str(exc), exc.code, 500, query_id)
            finally:
                self._leave(proc)  # ran (or failed): no longer listed, even while its answer is delayed
            self.counts.inserted_rows += answer.rows_written
            if hit:
                if f.delay_after_s > 0:
                    self.counts.delayed += 1
                    await asyncio.sleep(f.delay_after_s)
                self._after(request, f)
        except _Cancelled:
            self.counts.killed += 1
            return _error_response(_CANCELLED, 394, 500, query_id)
        except _Reset:
            raise web.HTTPException() from None  # never sent: the transport is gone
        except _Unavailable as exc:
            return _error_response(str(exc), 1002, exc.status, query_id)
        headers = {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": self.engine.timezone,
            "X-ClickHouse-Server-Display-Name": "chdb-http",
            "X-ClickHouse-Summary": json.dumps(answer.summary),
        }
        content_type = "text/plain; charset=UTF-8"
        if answer.result_format is not None:
            headers["X-ClickHouse-Format"] = answer.result_format
            if answer.result_format not in ("TabSeparated", "TSV", "CSV"):
                content_type = "application/octet-stream"
        headers["Content-Type"] = content_type
        return web.Response(body=answer.body, headers=headers)

    async def _run(self, st: Statement, proc: _Process) -> Answer:
        """Run the statement unless a KILL QUERY came first: once in chDB it cannot be stopped.

        Nothing awaits between the check and the hand-over to chDB, so a query is either
        cancelled and never runs, or runs to its end, whatever a KILL says meanwhile.
        """
        if proc.cancelled.is_set():
            raise _Cancelled
        if _KILL_STATEMENT.match(st.text):
            return await self._kill(st, proc)
        if _PROCESSES.search(st.text) and split_insert(st.text) is None:  # never in an insert's data
            st = self._with_process_list(st, proc)
        return await self._execute(st)

    async def _execute(self, st: Statement) -> Answer:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.engine.execute, st)

    def _with_process_list(self, st: Statement, proc: _Process) -> Statement:
        """``st`` reading the server's process list where it names ``system.processes``.

        chDB knows nothing of this server's requests, so the list travels as bound array
        parameters, read by a subquery in place of the table. The asking request is left
        out (a server lists it, but it is never what its caller looks for).
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

    async def _kill(self, st: Statement, proc: _Process) -> Answer:
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
        parsed = await self._execute(Statement(f"SELECT {ids} AS ids".encode(), st.params, default_format="JSONEachRow"))
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
        return await self._execute(Statement(sql.encode(), params, st.settings, st.database, st.default_format))

    async def _before(self, request: web.Request, f: Faults, proc: _Process) -> None:
        if f.delay_s > 0:
            self.counts.delayed += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.cancelled.wait(), f.delay_s)  # a KILL QUERY ends the wait
            if proc.cancelled.is_set():
                raise _Cancelled
        roll = self._rnd.random()
        if roll < f.reset_rate:
            self.counts.resets += 1
            _reset(request)
        if roll < f.reset_rate + f.error_rate:
            self.counts.errors += 1
            raise _Unavailable(503, "Code: 1002. injected fault: service unavailable (before the statement ran)")

    def _after(self, request: web.Request, f: Faults) -> None:
        roll = self._rnd.random()
        if roll < f.reset_after_rate:
            self.counts.resets_after += 1
            _reset(request)
        if roll < f.reset_after_rate + f.error_after_rate:
            self.counts.errors_after += 1
            raise _Unavailable(500, "Code: 1002. injected fault: internal error (after the statement ran)")


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


class _Unavailable(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _reset(request: web.Request) -> None:
    """Drop the connection with a TCP RST, as a crashed server or a proxy would."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    raise _Reset


def _error_response(message: str, code: int, status: int, query_id: str) -> web.Response:
    return web.Response(
        status=status,
        text=message + " (version chdb-http)\n",
        headers={"X-ClickHouse-Exception-Code": str(code), "X-ClickHouse-Query-Id": query_id},
    )


def _decompress(data: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if not data or encoding in ("", "identity"):
        return data
    if encoding == "gzip":
        return gzip.decompress(data)
    if encoding == "deflate":
        return zlib.decompress(data)
    if encoding == "lz4":
        import lz4.frame

        return bytes(lz4.frame.decompress(data))
    if encoding == "zstd":
        from backports import zstd

        return bytes(zstd.decompress(data))
    raise web.HTTPBadRequest(text=f"unsupported Content-Encoding {encoding!r}")


async def serve(args: argparse.Namespace) -> None:
    engine = Engine(args.data, handles=args.handles)
    server = ClickHouseHTTP(engine, user=args.user, password=args.password)
    server._pool = ThreadPoolExecutor(args.handles, thread_name_prefix="chdb")
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    await runner.setup()
    tls = None
    if args.certfile:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.certfile, args.keyfile)
    site = web.TCPSite(runner, args.host, args.port, ssl_context=tls)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    port = sockets[0].getsockname()[1] if sockets else args.port
    print(f"listening on {'https' if tls else 'http'}://{args.host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        server._pool.shutdown(wait=True)
        with contextlib.suppress(Exception):
            engine.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.clickhouse_http", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="chDB data path")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--user", default="default")
    parser.add_argument("--password", default="")
    parser.add_argument("--handles", type=int, default=4, help="chDB handles, i.e. statements run at once")
    parser.add_argument("--certfile", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--keyfile", help="and this private key (PEM)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
