"""One `livesales demo` and one headless Chromium shared by the browser tests of this package.

Debian's chromium and fonts-wqy-microhei are installed by `make test`
(tests/install-system-deps.sh); Playwright drives /usr/bin/chromium, nothing is
downloaded. Starting the demo (broker, chDB, replay) is the slow part, so it happens
once for all pages.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from localbroker import free_port
from scenarios import festival
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
# Screenshots land under data/ (ignored by git) unless LIVESALES_SCREENSHOT_DIR says
# otherwise: `LIVESALES_SCREENSHOT_DIR=docs .venv/bin/python -m pytest tests/demo` refreshes
# the README's pictures, and an ordinary test run leaves the work tree clean.
SHOTS = Path(os.environ.get("LIVESALES_SCREENSHOT_DIR") or ROOT / "data" / "screenshots")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}

# What a person would call broken on a small screen, measured in the page itself:
# the page scrolls sideways; a figure is cut (its content wider than its box, or an
# ellipsis); the title squeezed into a sliver; a chart drawn over a table.
LAYOUT_PROBLEMS = """() => {
  const out = [];
  const de = document.documentElement;
  if (de.scrollWidth > window.innerWidth) out.push(`page scrolls sideways: ${de.scrollWidth} > ${window.innerWidth}`);
  const name = (e) => e.id ? `#${e.id}` : `${e.tagName.toLowerCase()}.${e.className} "${e.textContent.trim().slice(0, 20)}"`;
  const figures = document.querySelectorAll("[data-value], .num, .value, .figure, .badge, .topbar h1");
  for (const e of figures) {
    if (!e.getClientRects().length) continue;  // hidden
    const cs = getComputedStyle(e);
    if (cs.textOverflow === "ellipsis" && e.textContent.trim()) out.push(`${name(e)} may show an ellipsis`);
    if (cs.display !== "inline" && e.scrollWidth > e.clientWidth + 1) {
      out.push(`${name(e)} clipped: ${e.scrollWidth} > ${e.clientWidth}`);
    }
    const r = e.getBoundingClientRect();  // inside a table that scrolls in its card, off-screen is fine
    if (!e.closest(".table-wrap, .pivot-wrap") && r.right > window.innerWidth + 1) out.push(`${name(e)} ends off-screen at ${Math.round(r.right)}`);
  }
  const h1 = document.querySelector(".topbar h1");
  const em = h1 ? parseFloat(getComputedStyle(h1).fontSize) : 0;
  if (h1 && h1.getBoundingClientRect().width < 8 * em) out.push("the title is squeezed under 8 characters a line");
  const charts = [...document.querySelectorAll(".chart")].map((c) => [c, c.getBoundingClientRect()]);
  for (const t of document.querySelectorAll(".table-wrap, .pivot-wrap")) {
    const a = t.getBoundingClientRect();
    for (const [c, b] of charts) {
      const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (w > 1 && h > 1) out.push(`${name(c)} overlaps a table`);
    }
  }
  // a chart's own text (axis labels, names, legends) cut at its canvas' edge; what is
  // hidden (overlapping labels) or clipped on purpose (a scrolling legend) is left out
  const shown = (el) => {
    for (let e = el; e; e = e.parent) if (e.ignore || e.invisible || (e.getClipPath && e.getClipPath())) return false;
    return true;
  };
  for (const [c] of charts) {
    const chart = window.echarts && window.echarts.getInstanceByDom(c);
    if (!chart) continue;
    const zr = chart.getZr();
    zr.storage.traverse((el) => {
      if (el.type !== "text" || !el.style.text || !shown(el)) return;
      const r = el.getBoundingRect().clone();
      const m = el.getComputedTransform();
      if (m) r.applyTransform(m);
      if (r.x < -1 || r.y < -1 || r.x + r.width > zr.getWidth() + 1 || r.y + r.height > zr.getHeight() + 1) {
        out.push(`${name(c)}: "${el.style.text}" cut at the chart's edge`);
      }
    });
  }
  return out;
}"""


class Demo:
    def __init__(self, base: str, tokens: dict[str, str]) -> None:
        self.base = base
        self.tokens = tokens

    async def status(self, path: str, role: str = "bureau") -> int:
        async with aiohttp.ClientSession() as s, s.get(
            self.base + path, headers={"Authorization": f"Bearer {self.tokens[role]}"}
        ) as r:
            return r.status

    async def get(self, path: str, role: str = "bureau") -> Any:
        async with aiohttp.ClientSession() as s, s.get(
            self.base + path, headers={"Authorization": f"Bearer {self.tokens[role]}"}
        ) as r:
            assert r.status == 200, await r.text()
            return await r.json()


@pytest.fixture(scope="package")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed: run `make test`, which installs it")
    data = tmp_path_factory.mktemp("demo")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "livesales.cli", "--log-level", "WARNING", "demo", "--speed", "3000",
         "--data-dir", str(data), "--port", str(port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        tokens_file = data / "tokens.json"
        await wait_for(lambda: asyncio.sleep(0, tokens_file.exists()), timeout=60, what="the demo's tokens file")
        from demo.run import ROLES

        names = {spec["name"]: role for role, spec in ROLES.items()}
        tokens = {names[t["name"]]: t["token"] for t in json.loads(tokens_file.read_text(encoding="utf-8"))["tokens"]}
        d = Demo(f"http://127.0.0.1:{port}", tokens)

        async def replayed() -> bool:
            try:
                s = await d.get(f"/v1/channels/{festival.CHANNEL_ID}/summary", "township")
            except (aiohttp.ClientError, AssertionError):
                return False
            return bool(s["paid_orders"] >= 430 and s["views_total"] == 335_000)

        await wait_for(replayed, timeout=120, interval=0.5, what="the festival replayed")
        yield d
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 60)


@pytest.fixture(scope="package")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        yield b
        await b.close()


async def sign_in(browser: Any, demo: Demo, role: str) -> Any:
    page = await browser.new_page(viewport=DESKTOP)
    await page.goto(demo.base + "/")
    await page.fill("#token", demo.tokens[role])
    await page.click("#sign-in")
    await page.wait_for_selector("#channels a")
    return page


async def open_page(browser: Any, demo: Demo, role: str, path: str, size: dict[str, int]) -> Any:
    """A fresh tab at the given size (a phone user loads the page on the phone), signed in
    with the role's token the way index.html stores it, once the page has drawn its data."""
    page = await browser.new_page(viewport=size)
    await page.add_init_script(f"sessionStorage.setItem('livesales.token', {json.dumps(demo.tokens[role])})")
    await page.goto(demo.base + path)
    await page.wait_for_function("document.body.dataset.updatedAt")
    return page


# A table a phone shows as cards: each figure (td[data-value]) on the screen, nothing to
# scroll sideways; the figures cut, or the scrolling, are returned.
OFF_SCREEN_FIGURES = """(selector) => {
  const table = document.querySelector(selector);
  const cut = [...table.querySelectorAll("td[data-value]")]
    .filter((td) => td.getBoundingClientRect().right > window.innerWidth + 1).map((td) => td.textContent);
  const wrap = table.parentElement;
  return wrap.scrollWidth > wrap.clientWidth + 1 ? [...cut, `${selector} scrolls sideways`] : cut;
}"""

# Each chart drawn to its box's width and still (no animation running: a label on its way
# to its place may pass the edge for a moment).
CHARTS_FIT = """() => [...document.querySelectorAll(".chart")].every((c) => {
  const chart = window.echarts && window.echarts.getInstanceByDom(c);
  return (!c.firstElementChild || c.firstElementChild.getBoundingClientRect().width <= c.clientWidth + 1)
    && (!chart || chart.getZr().animation.isFinished());
})"""


async def check_layout(page: Any, shot: str | None, full_page: bool = True) -> None:
    """Assert no layout problem at the page's current size; save the screenshot (SHOTS) if named."""
    await page.wait_for_function(CHARTS_FIT, timeout=5_000)
    problems = await page.evaluate(LAYOUT_PROBLEMS)
    if shot:
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / shot), full_page=full_page)
    size = page.viewport_size
    assert not problems, f"{shot or page.url} at {size['width']}×{size['height']}: {problems}"
