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
  the matching ones still waiting (``delay_s``): they answer code 394 and never run (tests.support.process_list);
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
import signal
import socket
import ssl
import struct
import sys
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields

from aiohttp import web

from tests.support.chdb_engine import Answer, Engine, EngineError, Statement, split_insert
from tests.support.process_list import CANCELLED, Cancelled, Process, ProcessList

_TRANSPORT_PARAMS = frozenset({
    "query", "database", "default_format", "user", "password", "query_id", "session_id", "session_timeout",
    "session_check", "compress", "decompress", "buffer_size", "wait_end_of_query", "client_protocol_version",
    "quota_key", "role", "enable_http_compression", "send_progress_in_http_headers",
    "http_headers_progress_interval_ms", "http_wait_end_of_query",
})  # fmt: skip


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
    processes: ProcessList = field(init=False)

    def __post_init__(self) -> None:
        self.processes = ProcessList(self.user)

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
        proc = self.processes.enter(query_id)  # listed before its data is read and before any delay, as on a server
        try:
            return await self._handle(request, proc)
        finally:
            self.processes.leave(proc)

    async def _handle(self, request: web.Request, proc: Process) -> web.StreamResponse:
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
                answer = await self.processes.run(statement, proc, self._execute)
            except EngineError as exc:
                return _error_response(str(exc), exc.code, 500, query_id)
            finally:
                self.processes.leave(proc)  # ran (or failed): no longer listed, even while its answer is delayed
            self.counts.inserted_rows += answer.rows_written
            if hit:
                if f.delay_after_s > 0:
                    self.counts.delayed += 1
                    await asyncio.sleep(f.delay_after_s)
                self._after(request, f)
        except Cancelled:
            self.counts.killed += 1
            return _error_response(CANCELLED, 394, 500, query_id)
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

    async def _execute(self, st: Statement) -> Answer:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.engine.execute, st)

    async def _before(self, request: web.Request, f: Faults, proc: Process) -> None:
        if f.delay_s > 0:
            self.counts.delayed += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.cancelled.wait(), f.delay_s)  # a KILL QUERY ends the wait
            if proc.cancelled.is_set():
                raise Cancelled
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
