"""战报 (issue 21 item 5): one tap on the live screen makes a poster the size WeChat shows
sharply, whose figures are /summary's, at 390×844 (a phone of devicePixelRatio 3) and 1366×768.

The poster is drawn client-side on a canvas (api/web/poster-draw.js); the overlay's
``data-figures`` carries the summary figures it was drawn from and the texts drawn, and the
downloaded file is decoded here (its PNG header) for its size. The poster itself and the
overlay are saved beside the other screenshots (tests/demo/conftest.py, SHOTS).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from scenarios import festival
from tests.demo.conftest import DESKTOP, PHONE, SHOTS, Demo, check_layout

pytestmark = [pytest.mark.browser, pytest.mark.slow]
LIVE = f"/live.html?channel={festival.CHANNEL_ID}"
SUMMARY = f"/v1/channels/{festival.CHANNEL_ID}/summary?tz=%2B08:00"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (the first one, by the format's rule)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def yuan(fen: int) -> str:
    return f"¥{fen / 100:,.2f}"


async def open_live(browser: Any, demo: Demo, size: dict[str, int], scale: int) -> Any:
    page = await browser.new_page(viewport=size, device_scale_factor=scale, accept_downloads=True)
    await page.add_init_script(f"sessionStorage.setItem('livesales.token', {json.dumps(demo.tokens['township'])})")
    await page.goto(demo.base + LIVE)
    await page.wait_for_function("document.body.dataset.updatedAt")
    return page


async def make_poster(page: Any, demo: Demo, shot: str) -> tuple[dict[str, Any], bytes]:
    """Tap 生成战报, download the PNG, save the overlay's screenshot; the figures and the file."""
    await page.click("#poster-make")
    await page.wait_for_selector("#poster:not([hidden])")
    await page.wait_for_function("document.querySelector('#poster-image').naturalWidth > 0")
    figures = json.loads(await page.get_attribute("#poster", "data-figures"))
    async with page.expect_download() as info:
        await page.click("#poster-download")
    download = await info.value
    assert download.suggested_filename.startswith("战报_") and download.suggested_filename.endswith(".png")
    data = Path(await download.path()).read_bytes()
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / shot))
    return figures, data


async def test_poster_at_phone_size_is_1080_wide_and_shows_the_summary(browser: Any, demo: Demo) -> None:
    page = await open_live(browser, demo, PHONE, scale=3)
    assert "客单价" not in await page.content() and "笔单价" in await page.inner_text(".kpis")
    figures, data = await make_poster(page, demo, "screenshot-poster-phone.png")
    api = await demo.get(SUMMARY, "township")
    width, height = png_size(data)
    # the canvas is 1080 px whatever the device pixel ratio (3 here: a CSS-sized canvas would be 1170)
    assert width == 1080 and height > width, (width, height)
    assert (figures["width"], figures["height"]) == (width, height)
    (SHOTS / "poster.png").write_bytes(data)

    values = figures["values"]
    for field in ("gmv_fen", "paid_orders", "units", "weight_g", "viewers_peak", "viewers_avg", "gpm_fen"):
        assert values[field] == api[field], field
    top = [{"sku": s["sku"], "units": s["units"], "gmv_fen": s["gmv_fen"]} for s in api["top_skus"][:5]]
    assert figures["top_skus"] == top and top  # the festival sold several SKUs
    drawn = figures["drawn"]
    assert drawn["gmv_fen"] == yuan(api["gmv_fen"])  # yuan with thousands separators
    assert "," in drawn["gmv_fen"]
    assert drawn["paid_orders"] == f"{api['paid_orders']:,}"
    assert drawn["weight_g"] == f"{api['weight_g'] / 1000:,.1f}"
    assert drawn["viewers_peak"] == f"{api['viewers_peak']:,}"
    assert drawn["gpm_fen"] == yuan(api["gpm_fen"])
    assert [s["gmv"] for s in drawn["skus"]] == [yuan(s["gmv_fen"]) for s in top]
    assert drawn["title"] == (api["title"] or festival.CHANNEL_ID)
    assert drawn["date"].endswith("日") and "年" in drawn["date"]
    if api.get("host"):
        assert api["host"] in drawn["subtitle"]

    # the overlay closes; the live screen still fits the phone with its new tiles
    await page.click("#poster-close")
    await page.wait_for_selector("#poster", state="hidden")
    await page.click("#chart-line button[data-line='viewers']")
    await page.wait_for_selector("#chart[data-line='viewers']")
    await page.locator("#chart").scroll_into_view_if_needed()
    await page.wait_for_timeout(1500)  # the chart's animation, for the screenshot
    await check_layout(page, "screenshot-live-viewers-phone.png", full_page=False)
    await page.close()


async def test_poster_on_a_desktop_and_the_viewers_line(browser: Any, demo: Demo) -> None:
    page = await open_live(browser, demo, DESKTOP, scale=1)
    api = await demo.get(SUMMARY, "township")
    for element, field in {"gpm": "gpm_fen", "viewers-avg": "viewers_avg", "refund-rate": "refund_rate",
                           "units": "units", "avg-order": "avg_order_fen"}.items():  # fmt: skip
        assert await page.get_attribute(f"#{element}", "data-value") == str(api[field]), element
    rate = await page.inner_text("#refund-rate")
    assert rate == f"{api['refund_rate'] * 100:.2f}%"
    # online viewers beside the per-minute sales, one tap away
    await page.click("#chart-line button[data-line='viewers']")
    await page.wait_for_selector("#chart[data-line='viewers']")
    legend = await page.evaluate("echarts.getInstanceByDom(document.querySelector('#chart')).getOption().legend[0].data")
    assert legend == ["成交额（元）", "在线人数"]
    viewers = await page.evaluate(
        "echarts.getInstanceByDom(document.querySelector('#chart')).getOption().series[1].data"
    )
    minutes = (await demo.get(f"/v1/channels/{festival.CHANNEL_ID}/minutes?tz=%2B08:00", "township"))["minutes"]
    assert viewers == [m["viewers_peak"] for m in minutes]  # the line is each minute's online peak
    await page.wait_for_timeout(1500)  # the chart's animation, for the screenshot
    await check_layout(page, "screenshot-live-viewers.png", full_page=False)
    figures, data = await make_poster(page, demo, "screenshot-poster.png")
    assert png_size(data)[0] == 1080
    assert figures["values"]["gmv_fen"] == api["gmv_fen"]
    await page.close()
