"""区域概览 in Chromium: a township cadre sees only their township, with totals that are
the API's and links to each live screen, on a desktop and on a phone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scenarios import festival
from tests.demo.conftest import DESKTOP, PHONE, ROOT, Demo, check_layout, open_page

HAS_REGIONS = any("/v1/regions" in p.read_text(encoding="utf-8") for p in Path(ROOT, "api").rglob("*.py"))
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not HAS_REGIONS, reason="GET /v1/regions (branch registry) has not landed"),
]
DAY = "/regions.html?level=township&from=2020-02-29&to=2020-02-29"
API_DAY = "/v1/regions?level=township&from=2020-02-29T00:00:00%2B08:00&to=2020-03-01T00:00:00%2B08:00&tz=%2B08:00"


async def test_region_overview_shows_the_scope_ranked_at_both_sizes(browser: Any, demo: Demo) -> None:
    api = await demo.get(API_DAY, "township")
    assert [(r["district"], r["township"]) for r in api["regions"]] == [("宁海县", "长街镇")]
    page = await open_page(browser, demo, "township", DAY, DESKTOP)
    rows = page.locator("#regions-table tbody tr")
    assert await rows.count() == 1
    assert "长街镇" in await rows.first.inner_text()
    region = api["regions"][0]
    assert await page.get_attribute("#total-orders", "data-value") == str(region["paid_orders"])
    assert await page.get_attribute("#total-gmv", "data-value") == str(region["gmv_fen"])
    link = page.locator(f"#regions-ranking a[href$='channel={festival.CHANNEL_ID}']")
    assert await link.count() == 1
    await check_layout(page, "screenshot-regions.png")

    await page.click("#regions-level button[data-level='district']")
    await page.wait_for_selector("#regions-table[data-level='district']")
    assert await page.locator("#regions-table tbody tr").count() == 1
    await link.click()  # the ranking leads to the live screen
    await page.wait_for_url(f"**/live.html?channel={festival.CHANNEL_ID}")
    await page.close()

    phone = await open_page(browser, demo, "township", DAY, PHONE)
    await check_layout(phone, "screenshot-regions-phone.png")
    await phone.close()
