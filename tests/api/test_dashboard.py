"""The dashboard's files are served without a token, with the types a browser needs
(a module script served as text/plain does not run), and nothing else is."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

TYPES = {
    "/": "text/html",
    "/index.html": "text/html",
    "/live.html": "text/html",
    "/regions.html": "text/html",
    "/bureau.html": "text/html",
    "/labels.js": "text/javascript",
    "/regions.js": "text/javascript",
    "/style.css": "text/css",
}


async def test_pages_and_modules_are_served_with_their_type_and_nothing_else(client: TestClient[Any, Any]) -> None:
    for path, ctype in TYPES.items():
        r = await client.get(path)
        assert r.status == 200, path
        assert r.content_type == ctype, path
    for path in ("/../pyproject.toml", "/api/app.py", "/web/index.html", "/regions"):
        r = await client.get(path)
        assert r.status == 404, path
        assert (await r.json())["error"]["code"]
