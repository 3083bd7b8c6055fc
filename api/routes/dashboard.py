"""The dashboard's static files (api/web), served without a token: the pages sign in
with a token the user types, and every API call they make is authorised as usual."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

WEB = Path(__file__).resolve().parents[1] / "web"


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB / "index.html")


def add_dashboard(app: web.Application) -> None:
    if not WEB.is_dir():
        return
    app.router.add_get("/", index)
    app.router.add_static("/", WEB, name="dashboard", show_index=False, follow_symlinks=False)
