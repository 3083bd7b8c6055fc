"""The dashboard's static files (api/web), served without a token: the pages sign in
with a token the user types, and every API call they make is authorised as usual.

Each file gets its own route (no catch-all prefix), so an unknown path still answers
the API's JSON 404 and nothing outside api/web can ever be served.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

WEB = Path(__file__).resolve().parents[1] / "web"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".txt": "text/plain"}


def _serve(path: Path) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.FileResponse(path)
        if path.suffix in _TYPES:
            resp.content_type = _TYPES[path.suffix]
        return resp

    return handler


def add_dashboard(app: web.Application) -> None:
    if not WEB.is_dir():
        return
    app.router.add_get("/", _serve(WEB / "index.html"))
    for path in sorted(p for p in WEB.rglob("*") if p.is_file()):
        app.router.add_get("/" + path.relative_to(WEB).as_posix(), _serve(path))
