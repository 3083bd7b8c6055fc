"""One aiohttp server answering as DingTalk, WeCom and Feishu group robots, strictly.

What it checks, per kind, as the real services document it:

* DingTalk custom robot — ``POST /robot/send?access_token=T`` (unknown token: errcode
  300001). With a secret: ``timestamp`` (ms, within an hour of the server's clock) and
  ``sign`` = base64(HMAC-SHA256(key=secret, msg=timestamp + "\\n" + secret)), sent
  URL-encoded (errcode 310000 otherwise). Body: ``msgtype: markdown`` with non-empty
  ``markdown.title`` and ``markdown.text`` (errcode 40035 otherwise). 20 messages a
  minute per robot (errcode 130101 past it). Success: ``{"errcode": 0, "errmsg": "ok"}``.
* WeCom group robot — ``POST /cgi-bin/webhook/send?key=K`` (unknown key: errcode 93000).
  Body: ``msgtype: markdown`` with ``markdown.content`` of 1..4096 bytes (errcode 40058).
  20 a minute (errcode 45009). Success: errcode 0.
* Feishu custom bot — ``POST /open-apis/bot/v2/hook/T`` (unknown: code 19001). With a
  secret: body ``timestamp`` (s, as a string, within an hour) and ``sign`` =
  base64(HMAC-SHA256(key=timestamp + "\\n" + secret, msg="")) (code 19021). Body:
  ``msg_type: post`` with ``content.post.<lang>.{title, content: [[{tag: text|a}]]}``
  (code 9499). 5 a second and 100 a minute (code 11232). Success: ``{"code": 0, ...}``.

Faults on demand, per robot: ``fail(name, mode, times)`` for the next requests, or
``down_for(name, seconds, mode)``; modes ``5xx`` (HTTP 503), ``errcode`` (HTTP 200 with the
kind's "system busy" code), ``ratelimit`` (the kind's rate-limit answer), ``timeout`` (no
answer for ``hang_s``), ``reset`` (the connection closed unanswered). Every accepted
message is kept in ``accepted`` (and ``of(name)``), every refusal in ``refused``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

FRESH_S = 3600.0
LIMITS: dict[str, tuple[tuple[int, float], ...]] = {
    "dingtalk": ((20, 60.0),),
    "wecom": ((20, 60.0),),
    "feishu": ((5, 1.0), (100, 60.0)),
}
BUSY = {"dingtalk": -1, "wecom": -1, "feishu": 2200}
TOO_FAST = {"dingtalk": 130101, "wecom": 45009, "feishu": 11232}


@dataclass
class Robot:
    name: str
    kind: str
    token: str
    secret: str | None
    windows: tuple[tuple[int, float], ...]
    seen: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    fail_modes: deque[str] = field(default_factory=deque)
    down_until: float = 0.0
    down_mode: str = "5xx"


@dataclass(frozen=True)
class Accepted:
    robot: str
    kind: str
    title: str
    text: str  # every visible text of the message, joined by newlines
    links: tuple[str, ...]
    at: float


class FakeRobots:
    def __init__(
        self, clock: Callable[[], float] = time.time, limits: dict[str, tuple[tuple[int, float], ...]] | None = None,
        hang_s: float = 30.0,
    ) -> None:  # fmt: skip
        self.clock = clock
        self.limits = {**LIMITS, **(limits or {})}
        self.hang_s = hang_s
        self.robots: dict[str, Robot] = {}
        self.accepted: list[Accepted] = []
        self.refused: list[tuple[str, str]] = []  # (robot or '?', why)
        self.requests = 0
        self._runner: web.AppRunner | None = None
        self.base = ""

    # -- set-up -------------------------------------------------------------------
    def add(self, name: str, kind: str, secret: str | None = None) -> str:
        """Register a robot; returns its webhook URL (after start())."""
        robot = Robot(name, kind, uuid.uuid4().hex, secret, self.limits[kind])
        self.robots[name] = robot
        return self.url(name)

    def url(self, name: str) -> str:
        r = self.robots[name]
        if r.kind == "dingtalk":
            return f"{self.base}/robot/send?access_token={r.token}"
        if r.kind == "wecom":
            return f"{self.base}/cgi-bin/webhook/send?key={r.token}"
        return f"{self.base}/open-apis/bot/v2/hook/{r.token}"

    async def start(self) -> FakeRobots:
        app = web.Application()
        app.router.add_post("/robot/send", self._dingtalk)
        app.router.add_post("/cgi-bin/webhook/send", self._wecom)
        app.router.add_post("/open-apis/bot/v2/hook/{token}", self._feishu)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeRobots:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- faults -------------------------------------------------------------------
    def fail(self, name: str, mode: str = "5xx", times: int = 1) -> None:
        self.robots[name].fail_modes.extend([mode] * times)

    def down_for(self, name: str, seconds: float, mode: str = "5xx") -> None:
        r = self.robots[name]
        r.down_until, r.down_mode = self.clock() + seconds, mode

    def of(self, name: str) -> list[Accepted]:
        return [a for a in self.accepted if a.robot == name]

    # -- answering ----------------------------------------------------------------
    def _answer(self, kind: str, code: int, text: str, status: int = 200) -> web.Response:
        body = {"code": code, "msg": text, "data": {}} if kind == "feishu" else {"errcode": code, "errmsg": text}
        return web.json_response(body, status=status)

    async def _fault(self, r: Robot, request: web.Request) -> web.StreamResponse | None:
        """The fault this request meets, if any: answered (or not answered) here."""
        mode = r.fail_modes.popleft() if r.fail_modes else (r.down_mode if self.clock() < r.down_until else None)
        if mode is None:
            return None
        self.refused.append((r.name, f"fault {mode}"))
        if mode == "5xx":
            return web.Response(status=503, text="Service Unavailable")
        if mode == "errcode":
            return self._answer(r.kind, BUSY[r.kind], "system busy")
        if mode == "ratelimit":
            return self._answer(r.kind, TOO_FAST[r.kind], "send too fast")
        if mode == "timeout":
            await asyncio.sleep(self.hang_s)
            return web.Response(status=504)
        if mode == "reset":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        raise ValueError(f"unknown fault mode {mode!r}")

    def _limited(self, r: Robot) -> bool:
        """Counts this request against the robot's windows; True when one is exceeded."""
        now = self.clock()
        r.seen.append(now)
        return any(sum(1 for t in r.seen if t > now - seconds) > n for n, seconds in r.windows)

    def _fresh(self, ts_s: float) -> bool:
        return abs(self.clock() - ts_s) <= FRESH_S

    def _refuse(self, r: Robot | None, kind: str, code: int, why: str) -> web.Response:
        self.refused.append((r.name if r else "?", why))
        return self._answer(kind, code, why)

    async def _json(self, request: web.Request) -> dict[str, Any] | None:
        if not request.content_type.startswith("application/json"):
            return None
        try:
            doc = json.loads(await request.read())
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    def _robot(self, kind: str, token: str) -> Robot | None:
        return next((r for r in self.robots.values() if r.kind == kind and r.token == token), None)

    async def _dingtalk(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        r = self._robot("dingtalk", request.query.get("access_token", ""))
        if r is None:
            return self._refuse(None, "dingtalk", 300001, "token is not exist")
        fault = await self._fault(r, request)
        if fault is not None:
            return fault
        if r.secret is not None:
            ts, sign = request.query.get("timestamp", ""), request.query.get("sign", "")
            if not ts.isdigit() or not self._fresh(int(ts) / 1000):
                return self._refuse(r, "dingtalk", 310000, "invalid timestamp")
            digest = hmac.new(r.secret.encode(), f"{ts}\n{r.secret}".encode(), hashlib.sha256).digest()
            expected = base64.b64encode(digest).decode()
            # the query is decoded as a form: a "+" not URL-encoded by the sender arrives as a space
            if not hmac.compare_digest(sign, expected):
                return self._refuse(r, "dingtalk", 310000, "sign not match")
        doc = await self._json(request)
        md = doc.get("markdown") if doc else None
        if (
            doc is None or doc.get("msgtype") != "markdown" or not isinstance(md, dict)
            or not isinstance(md.get("title"), str) or not md["title"]
            or not isinstance(md.get("text"), str) or not md["text"]
        ):  # fmt: skip
            return self._refuse(r, "dingtalk", 40035, "缺少参数 json")
        if self._limited(r):
            return self._refuse(r, "dingtalk", 130101, "send too fast, exceed 20 times per minute")
        self._keep(r, md["title"], md["text"], _md_links(md["text"]))
        return self._answer("dingtalk", 0, "ok")

    async def _wecom(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        r = self._robot("wecom", request.query.get("key", ""))
        if r is None:
            return self._refuse(None, "wecom", 93000, "invalid webhook url")
        fault = await self._fault(r, request)
        if fault is not None:
            return fault
        doc = await self._json(request)
        md = doc.get("markdown") if doc else None
        content = md.get("content") if isinstance(md, dict) else None
        if (
            doc is None or doc.get("msgtype") != "markdown" or not isinstance(content, str)
            or not 0 < len(content.encode()) <= 4096
        ):  # fmt: skip
            return self._refuse(r, "wecom", 40058, "invalid markdown content")
        if self._limited(r):
            return self._refuse(r, "wecom", 45009, "api freq out of limit")
        self._keep(r, content.split("\n", 1)[0], content, _md_links(content))
        return self._answer("wecom", 0, "ok")

    async def _feishu(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        r = self._robot("feishu", request.match_info["token"])
        if r is None:
            return self._refuse(None, "feishu", 19001, "param invalid: incoming webhook access token invalid")
        fault = await self._fault(r, request)
        if fault is not None:
            return fault
        doc = await self._json(request)
        if doc is None:
            return self._refuse(r, "feishu", 9499, "Bad Request")
        if r.secret is not None:
            ts, sign = doc.get("timestamp"), doc.get("sign")
            if not isinstance(ts, str) or not ts.isdigit() or not isinstance(sign, str) or not self._fresh(int(ts)):
                return self._refuse(r, "feishu", 19021, "sign match fail or timestamp is not within one hour")
            digest = hmac.new(f"{ts}\n{r.secret}".encode(), b"", hashlib.sha256).digest()
            if not hmac.compare_digest(sign, base64.b64encode(digest).decode()):
                return self._refuse(r, "feishu", 19021, "sign match fail or timestamp is not within one hour")
        post = _feishu_post(doc)
        if post is None:
            return self._refuse(r, "feishu", 9499, "Bad Request")
        if self._limited(r):
            return self._refuse(r, "feishu", 11232, "frequency limited")
        title, text, links = post
        self._keep(r, title, text, links)
        return self._answer("feishu", 0, "success")

    def _keep(self, r: Robot, title: str, text: str, links: tuple[str, ...]) -> None:
        self.accepted.append(Accepted(r.name, r.kind, title, text, links, self.clock()))


def _md_links(text: str) -> tuple[str, ...]:
    out = []
    rest = text
    while "](" in rest:
        _, _, rest = rest.partition("](")
        link, _, rest = rest.partition(")")
        out.append(link)
    return tuple(out)


def _feishu_post(doc: dict[str, Any]) -> tuple[str, str, tuple[str, ...]] | None:
    """(title, text, links) of a well-formed ``post`` message, else None."""
    if doc.get("msg_type") != "post":
        return None
    post = (doc.get("content") or {}).get("post") if isinstance(doc.get("content"), dict) else None
    if not isinstance(post, dict) or not post:
        return None
    body = next(iter(post.values()))
    if not isinstance(body, dict) or not isinstance(body.get("content"), list):
        return None
    texts, links = [], []
    for para in body["content"]:
        if not isinstance(para, list):
            return None
        line = []
        for el in para:
            if not isinstance(el, dict) or el.get("tag") not in ("text", "a") or not isinstance(el.get("text"), str):
                return None
            if el["tag"] == "a":
                if not isinstance(el.get("href"), str):
                    return None
                links.append(el["href"])
            line.append(el["text"])
        texts.append("".join(line))
    title = body.get("title", "")
    return (title if isinstance(title, str) else ""), "\n".join(texts), tuple(links)
