"""The three kinds of group robot: their payloads, their signatures, their answers, their limits.

* DingTalk custom robot: ``msgtype: markdown`` ({title, text}); with a secret, the URL
  gets ``timestamp`` (ms) and ``sign`` = urlencode(base64(HMAC-SHA256(key=secret,
  msg=timestamp + "\\n" + secret))). Success is ``errcode`` 0. At most 20 messages a
  minute per robot (more, and DingTalk refuses the robot for ten minutes).
* WeCom (企业微信) group robot: the ``key`` is in the URL, nothing is signed;
  ``msgtype: markdown`` ({content}, at most 4096 bytes). Success is ``errcode`` 0; 45009
  is its rate limit (20 messages a minute per robot).
* Feishu (飞书) custom bot: ``msg_type: post`` rich text; with a secret, the body gets
  ``timestamp`` (s) and ``sign`` = base64(HMAC-SHA256(key=timestamp + "\\n" + secret,
  msg=b"")). Success is ``code`` 0 (older answers: ``StatusCode`` 0); 11232 (and HTTP
  429) is its rate limit (100 a minute, 5 a second).

A signature is made at post time from the process's clock, so a retry an hour later is
signed afresh (both kinds refuse a timestamp more than an hour off). Every failure is
retryable (notify.outbox gives up after an hour): a robot refusing a signature or a key
is a setting its group's owner can fix while we wait; a rate-limit answer additionally
waits out the kind's window before the next attempt.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import aiohttp
import orjson

from notify.config import RobotConfig
from notify.messages import Message

WECOM_MAX_BYTES = 4096
# (messages, seconds) windows per kind: every one must hold (notify.ratelimit)
RATE_LIMITS: dict[str, tuple[tuple[int, float], ...]] = {
    "dingtalk": ((20, 60.0),),
    "wecom": ((20, 60.0),),
    "feishu": ((5, 1.0), (100, 60.0)),
}
# The answers that mean "too fast": the next attempt waits out a whole window.
RATE_LIMIT_CODES: dict[str, frozenset[int]] = {
    "dingtalk": frozenset({130101, 410100}),
    "wecom": frozenset({45009}),
    "feishu": frozenset({11232}),
}


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes


@dataclass(frozen=True)
class Outcome:
    ok: bool
    error: str | None = None  # why not, for the notifications table (never the URL: it holds the key)
    rate_limited: bool = False


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's ``sign`` query value (already URL-encoded)."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu's ``sign`` body field: the HMAC's key is the string to sign, its message empty."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _flat(text: str) -> str:
    """A value on one line: a channel title with a newline must not break the layout."""
    return " ".join(text.split())


def markdown(msg: Message, heading: str = "####") -> str:
    """DingTalk and WeCom Markdown: a heading, one quoted line per figure, the link.
    DingTalk needs a blank line between lines; WeCom renders it as is."""
    parts = [f"{heading} {_flat(msg.title)}"]
    parts += [f"> **{_flat(label)}**：{_flat(value)}" for label, value in msg.lines]
    parts.append(f"[{msg.link_text}]({msg.link})")
    return "\n\n".join(parts)


def _wecom_text(msg: Message) -> str:
    """WeCom caps the content at 4096 bytes: figures are dropped from the end until it fits
    (the headline and the link stay)."""
    lines = list(msg.lines)
    while True:
        text = markdown(Message(msg.title, tuple(lines), msg.link_text, msg.link), heading="###")
        if len(text.encode()) <= WECOM_MAX_BYTES or not lines:
            return text
        lines.pop()


def feishu_post(msg: Message) -> dict[str, Any]:
    """Feishu's ``post`` rich text: a title, a paragraph per figure, then the link."""
    rows: list[list[dict[str, str]]] = [
        [{"tag": "text", "text": f"{_flat(label)}：{_flat(value)}"}] for label, value in msg.lines
    ]
    rows.append([{"tag": "a", "text": msg.link_text, "href": msg.link}])
    return {"msg_type": "post", "content": {"post": {"zh_cn": {"title": _flat(msg.title), "content": rows}}}}


def build(robot: RobotConfig, msg: Message, now: float) -> Request:
    """The HTTP request posting ``msg`` to ``robot``, signed at ``now`` (epoch seconds)."""
    if robot.kind == "dingtalk":
        url = robot.url
        if robot.secret:
            ts = int(now * 1000)
            url += ("&" if "?" in url else "?") + f"timestamp={ts}&sign={dingtalk_sign(robot.secret, ts)}"
        body: dict[str, Any] = {"msgtype": "markdown", "markdown": {"title": _flat(msg.title), "text": markdown(msg)}}
        return Request(url, orjson.dumps(body))
    if robot.kind == "wecom":
        return Request(robot.url, orjson.dumps({"msgtype": "markdown", "markdown": {"content": _wecom_text(msg)}}))
    body = feishu_post(msg)
    if robot.secret:
        ts = int(now)
        body = {"timestamp": str(ts), "sign": feishu_sign(robot.secret, ts), **body}
    return Request(robot.url, orjson.dumps(body))


def outcome(kind: str, status: int, doc: Mapping[str, Any] | None) -> Outcome:
    """Whether the robot took the message, from its HTTP status and JSON answer."""
    if doc is None:
        return Outcome(False, f"HTTP {status}, no JSON answer", rate_limited=status == 429)
    if kind == "feishu":
        code = doc.get("code", doc.get("StatusCode"))
        text = doc.get("msg", doc.get("StatusMessage"))
    else:
        code, text = doc.get("errcode"), doc.get("errmsg")
    if status == 200 and code == 0:
        return Outcome(True)
    limited = status == 429 or (isinstance(code, int) and code in RATE_LIMIT_CODES[kind])
    return Outcome(False, f"HTTP {status}, code {code}: {str(text)[:200]}", rate_limited=limited)


async def post(session: aiohttp.ClientSession, robot: RobotConfig, msg: Message, now: float) -> Outcome:
    """Post once; any failure (refused, unreachable, timed out, garbled) is an Outcome, never raised."""
    req = build(robot, msg, now)
    try:
        async with session.post(req.url, data=req.body, headers={"Content-Type": "application/json"}) as resp:
            raw = await resp.read()
            try:
                doc = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                doc = None
            return outcome(robot.kind, resp.status, doc if isinstance(doc, dict) else None)
    except TimeoutError:
        return Outcome(False, "timed out")
    except aiohttp.ClientConnectorError as exc:  # names host and port only, never the query
        return Outcome(False, f"cannot connect: {exc.os_error.strerror or type(exc.os_error).__name__}")
    except (aiohttp.ClientError, asyncio.IncompleteReadError, OSError) as exc:
        return Outcome(False, type(exc).__name__)
