"""The demo, driven like a person would: headless Chromium against `livesales demo`.

Debian's chromium and fonts-wqy-microhei are installed by `make test`
(tests/install-system-deps.sh); Playwright drives /usr/bin/chromium, nothing is
downloaded. Screenshots land in docs/ and are linked from the README.
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

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip


class Demo:
    def __init__(self, base: str, tokens: dict[str, str]) -> None:
        self.base = base
        self.tokens = tokens

    async def get(self, path: str, role: str = "bureau") -> Any:
        async with aiohttp.ClientSession() as s, s.get(
            self.base + path, headers={"Authorization": f"Bearer {self.tokens[role]}"}
        ) as r:
            assert r.status == 200, await r.text()
            return await r.json()


@pytest.fixture(scope="module")
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
        roles = {"all": "bureau", "township:宁海县/长街镇": "township"}
        tokens = {}
        for t in json.loads(tokens_file.read_text(encoding="utf-8"))["tokens"]:
            role = "ingest" if t["ingest"] else roles[t["scope"]]
            tokens[role] = t["token"]
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


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        yield b
        await b.close()


async def sign_in(browser: Any, demo: Demo, role: str) -> Any:
    page = await browser.new_page(viewport={"width": 1366, "height": 768})
    await page.goto(demo.base + "/")
    await page.fill("#token", demo.tokens[role])
    await page.click("#sign-in")
    await page.wait_for_selector("#channels a")
    return page


async def test_live_screen_matches_the_api_and_moves_without_reload(browser: Any, demo: Demo) -> None:
    page = await sign_in(browser, demo, "township")
    assert await page.locator("#channels a").count() == 1  # the township sees only its channel
    await page.goto(f"{demo.base}/live.html?channel={festival.CHANNEL_ID}")
    await page.wait_for_function("document.body.dataset.updatedAt")
    api = await demo.get(f"/v1/channels/{festival.CHANNEL_ID}/summary", "township")
    ids = {"gmv": "gmv_fen", "paid-orders": "paid_orders", "weight": "weight_g", "views-total": "views_total",
           "viewers-peak": "viewers_peak", "refunded-orders": "refunded_orders", "refund": "refund_fen",
           "avg-order": "avg_order_fen", "net-gmv": "net_gmv_fen"}  # fmt: skip
    for element, field in ids.items():
        assert await page.get_attribute(f"#{element}", "data-value") == str(api[field]), element
    assert "37,040.40" in await page.inner_text("#gmv")
    assert await page.locator("#top-skus tbody tr").count() == len(api["top_skus"])
    await page.screenshot(path=str(ROOT / "docs" / "screenshot-live.png"))

    # a new paid order arrives through the ingest gateway: the screen follows, no reload
    before = int(api["paid_orders"])
    order = {
        "schema": "order.v1", "event_id": "browser-test-1", "occurred_at": "2020-02-29T14:59:00+08:00",
        "order_id": "browser-test-order", "status": "paid", "channel_id": festival.CHANNEL_ID,
        "platform": "douyin", "merchant_id": "changjie-clam-coop", "region": {"district": "宁海县", "township": "长街镇"},
        "items": [{"sku": "clam-5kg", "name": "长街蛏子 5kg 装", "quantity": 1, "unit_price_fen": 12800, "weight_g": 5000}],
        "amount_fen": 12800,
    }  # fmt: skip
    await page.evaluate("window.__marker = 'same page'")
    async with aiohttp.ClientSession() as s, s.post(
        demo.base + "/v1/events", json=[order], headers={"Authorization": f"Bearer {demo.tokens['ingest']}"}
    ) as r:
        assert (await r.json())["accepted"] == 1
    await page.wait_for_function(
        f"document.querySelector('#paid-orders').dataset.value === '{before + 1}'", timeout=10_000
    )
    assert await page.evaluate("window.__marker") == "same page"
    await page.close()


async def test_bureau_pivots_match_the_api(browser: Any, demo: Demo) -> None:
    page = await sign_in(browser, demo, "bureau")
    await page.goto(demo.base + "/bureau.html")
    await page.wait_for_selector("#onboarding-pivot[data-total]")
    await page.wait_for_selector("#domestic-pivot[data-total]")
    onboarding = await demo.get("/v1/pivot?dataset=onboarding&rows=district&cols=platform&measure=firms_net")
    domestic = await demo.get("/v1/pivot?dataset=domestic_sales&rows=district&cols=platform&measure=gmv_fen")
    assert await page.get_attribute("#onboarding-pivot", "data-total") == str(onboarding["total"])
    assert await page.get_attribute("#domestic-pivot", "data-total") == str(domestic["total"])
    assert "北仑区" in await page.inner_text("#onboarding-pivot")
    await page.screenshot(path=str(ROOT / "docs" / "screenshot-bureau.png"), full_page=True)
    await page.close()
