"""The demo's group robot: a local 企业微信-style webhook that prints what it is sent.

No robot platform is reachable from a demo machine; this one speaks the WeCom group-robot
webhook (``POST /cgi-bin/webhook/send?key=…``, a ``markdown`` message, ``{"errcode": 0}``)
so the demo's 开播, alerts and 下播 show up in the terminal as the township's work group
would see them (notify/, docs/NOTIFY.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aiohttp import web

KEY = "demo"


class PrintingRobot:
    def __init__(self) -> None:
        self.received = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _send(self, request: web.Request) -> web.Response:
        if request.query.get("key") != KEY:
            return web.json_response({"errcode": 93000, "errmsg": "invalid webhook url"})
        body = await request.json()
        text = ((body.get("markdown") or {}).get("content") or "").strip()
        if not text:
            return web.json_response({"errcode": 40058, "errmsg": "markdown.content empty"})
        self.received += 1
        sys.stdout.write("\n── 长街镇工作群 ──────────\n" + text + "\n")
        sys.stdout.flush()
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/cgi-bin/webhook/send", self._send)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}/cgi-bin/webhook/send?key={KEY}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def write_notify_file(path: Path, url: str) -> Path:
    """The demo's robots file: the 长街镇 group, every rule (contract §8)."""
    doc = {"robots": [{"name": "长街镇工作群", "kind": "wecom", "url": url, "scope": "township:宁海县/长街镇",
                       "rules": ["silence", "refund_spike", "pace_drop", "live_started", "live_ended"]}]}
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
    return path
