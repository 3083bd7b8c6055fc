"""The demo, driven like a person would: headless Chromium against `livesales demo`.

Each page is checked on a desktop (1366×768) and a phone (390×844): it must show what
the API answers, in Chinese, and fit (see tests/demo/conftest.py: no sideways page
scroll, no clipped figure, no chart over a table). Screenshots land in docs/ and are
linked from the README.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from scenarios import festival
from tests.demo.conftest import DESKTOP, OFF_SCREEN_FIGURES, PHONE, ROOT, Demo, check_layout, open_page, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]
LIVE = f"/live.html?channel={festival.CHANNEL_ID}"


def backend_mentions(text: str, *globs: str) -> bool:
    """Whether the API's source already carries a feature another branch adds."""
    return any(text in p.read_text(encoding="utf-8") for g in globs for p in Path(ROOT).glob(g))


HAS_XLSX = backend_mentions("xlsx", "api/routes/*.py", "api/*.py", "api/**/*.py")


async def test_live_screen_matches_the_api_and_moves_without_reload(browser: Any, demo: Demo) -> None:
    page = await sign_in(browser, demo, "township")
    assert await page.locator("#channels a").count() == 1  # the township sees only its channel
    assert "抖音" in await page.inner_text("#channels")
    await page.goto(demo.base + LIVE)
    await page.wait_for_function("document.body.dataset.updatedAt")
    api = await demo.get(f"/v1/channels/{festival.CHANNEL_ID}/summary", "township")
    ids = {"gmv": "gmv_fen", "paid-orders": "paid_orders", "weight": "weight_g", "views-total": "views_total",
           "viewers-peak": "viewers_peak", "refunded-orders": "refunded_orders", "refund": "refund_fen",
           "avg-order": "avg_order_fen", "net-gmv": "net_gmv_fen", "units": "units", "gpm": "gpm_fen",
           "viewers-avg": "viewers_avg", "refund-rate": "refund_rate"}  # fmt: skip
    for element, field in ids.items():
        assert await page.get_attribute(f"#{element}", "data-value") == str(api[field]), element
    assert "37,040.40" in await page.inner_text("#gmv")
    assert await page.inner_text("#channel-title") == (api.get("title") or festival.CHANNEL_ID)
    assert await page.inner_text("#channel-platform") == "抖音"
    if api.get("host"):
        assert await page.inner_text("#channel-host") == api["host"]
    assert await page.locator("#top-skus tbody tr").count() == len(api["top_skus"])
    await check_layout(page, "screenshot-live.png", full_page=False)

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

    phone = await open_page(browser, demo, "township", LIVE, PHONE)
    assert await phone.get_attribute("#paid-orders", "data-value") == str(before + 1)
    await phone.wait_for_selector("#live-status[data-state='live']")
    alerts_path = f"/v1/channels/{festival.CHANNEL_ID}/alerts?tz=%2B08:00"
    if await demo.status(alerts_path, "township") == 200:  # v1.1 alerts: the banner shows the firing ones
        firing = [a["rule"] for a in (await demo.get(alerts_path, "township"))["alerts"] if a["state"] == "firing"]
        await phone.wait_for_function(f"document.querySelector('#alerts').dataset.rules === {','.join(firing)!r}")
        await phone.wait_for_selector("#alerts[data-source='stream']", state="attached")  # pushed, not polled
        assert await phone.locator("#alerts").is_visible() == bool(firing)
    assert "秒一单" in await phone.inner_text("#pace")  # 成交节奏 shown whole (the layout check measures it)
    await check_layout(phone, "screenshot-live-phone.png")
    await phone.close()


async def test_bureau_pivots_match_the_api_at_both_sizes(browser: Any, demo: Demo) -> None:
    page = await open_page(browser, demo, "bureau", "/bureau.html", DESKTOP)
    for table in ("#onboarding-pivot", "#domestic-pivot", "#trend-pivot"):
        await page.wait_for_selector(f"{table}:not([data-total=''])")
    onboarding = await demo.get("/v1/pivot?dataset=onboarding&rows=district&cols=platform&measure=firms_net")
    domestic = await demo.get("/v1/pivot?dataset=domestic_sales&rows=district&cols=platform&measure=gmv_fen")
    assert await page.get_attribute("#onboarding-pivot", "data-total") == str(onboarding["total"])
    assert await page.get_attribute("#domestic-pivot", "data-total") == str(domestic["total"])
    text = await page.inner_text("#onboarding-pivot")
    assert "北仑区" in text and "拼多多" in text and "pinduoduo" not in text  # platform names, not slugs
    trend = await demo.get("/v1/pivot?dataset=onboarding&rows=month&cols=platform&measure=firms_onboarded")
    assert await page.get_attribute("#trend-pivot", "data-total") == str(trend["total"])
    firms = await demo.status("/v1/pivot?dataset=domestic_sales&rows=firm_id&measure=gmv_fen")
    if firms == 200:  # the firm dimension (v1.1) is served: the top 20 are ranked by GMV, named
        await page.wait_for_selector("#firms-table tbody tr")
        values = [int(v) for v in await page.locator("#firms-table tbody td[data-value]").evaluate_all(
            "(tds) => tds.map((td) => td.dataset.value)")]  # fmt: skip
        assert 0 < len(values) <= 20 and values == sorted(values, reverse=True)
    if HAS_XLSX:
        async with page.expect_download() as info:
            await page.click("#domestic-xlsx")
        saved = await (await info.value).path()
        assert Path(saved).read_bytes()[:2] == b"PK"  # a zip: an Excel workbook
    await check_layout(page, "screenshot-bureau.png")
    await page.set_viewport_size({"width": 1024, "height": 768})  # a window made narrower: charts fit again
    await check_layout(page, None)
    await page.close()

    phone = await open_page(browser, demo, "bureau", "/bureau.html", PHONE)
    await phone.wait_for_selector("#domestic-pivot:not([data-total=''])")
    await check_layout(phone, "screenshot-bureau-phone.png")
    await phone.close()


async def test_channel_list_filters_and_pages(browser: Any, demo: Demo) -> None:
    page = await open_page(browser, demo, "bureau", "/index.html", PHONE)
    first = await demo.get("/v1/channels?limit=50")
    rows = page.locator("#channels tbody tr")
    assert await rows.count() == len(first["channels"])
    # a named channel's id sits on its own line under the name, not run into it
    glued = await page.locator("#channels td > .slug").evaluate_all(
        "(ids) => ids.filter((s) => s.getBoundingClientRect().top < s.previousElementSibling.getBoundingClientRect().bottom - 1)"
        ".map((s) => s.textContent)")  # fmt: skip
    assert await page.locator("#channels td > .slug").count() and not glued, glued
    # on a phone each channel is a card: its paid orders and GMV in view, nothing to scroll sideways
    assert not (cut := await page.evaluate(OFF_SCREEN_FIGURES, "#channels")), cut[:3]
    if first["next_cursor"]:  # more than a page: 更多 appends the next one
        second = await demo.get(f"/v1/channels?limit=50&cursor={first['next_cursor']}")
        await page.click("#channels-more")
        await page.wait_for_function(
            f"document.querySelectorAll('#channels tbody tr').length === {len(first['channels']) + len(second['channels'])}"
        )
    async with page.expect_response(lambda r: "/v1/channels?" in r.url and "platform=douyin" in r.url) as info:
        await page.select_option("#filter-platform", "douyin")  # offered by its name, 抖音
    body = await (await info.value).json()
    douyin = [c["channel_id"] for c in body["channels"]]
    assert douyin and all(c["platform"] == "douyin" for c in body["channels"])
    await page.wait_for_function(
        f"JSON.stringify([...document.querySelectorAll('#channels tbody tr')].map((tr) => tr.dataset.channel))"
        f" === {json.dumps(json.dumps(douyin, separators=(',', ':')))}"
    )
    assert "抖音" in await page.inner_text("#channels tbody")
    await check_layout(page, None)
    await page.close()


async def test_channel_cards_fit_a_phone_with_long_names_and_none(browser: Any, demo: Demo) -> None:
    """A phone's channel card with a long title, host and township (they wrap), and one with no
    title, host or place: every figure stays on the screen, nothing is clipped."""
    body = {"channels": [
        {"channel_id": "nh-long", "title": "宁海县桃源街道海鲜一条街超长名字直播间特别专场", "platform": "douyin",
         "host": "直播宁海官方账号特别长的主播名字", "status": "scheduled", "district": "宁海县",
         "township": "某某某某某街道办事处很长的名字", "paid_orders": 123456, "gmv_fen": 12345678901},
        {"channel_id": "nh-bare", "title": None, "host": None, "platform": "kuaishou", "status": "ended",
         "district": None, "township": None, "paid_orders": 0, "gmv_fen": 0},
    ], "next_cursor": None}  # fmt: skip

    async def answer(route: Any) -> None:
        await route.fulfill(status=200, content_type="application/json", body=json.dumps(body, ensure_ascii=False))

    page = await browser.new_page(viewport=PHONE)
    await page.add_init_script(f"sessionStorage.setItem('livesales.token', {json.dumps(demo.tokens['bureau'])})")
    await page.route("**/v1/channels?*", answer)
    await page.goto(demo.base + "/index.html")
    await page.wait_for_selector("#channels tr[data-channel='nh-bare']")
    assert "123,456,789.01" in await page.inner_text("#channels tr[data-channel='nh-long']")
    assert not (cut := await page.evaluate(OFF_SCREEN_FIGURES, "#channels")), cut
    await check_layout(page, None)
    await page.close()


async def test_bureau_page_says_when_a_pivot_is_too_large(browser: Any, demo: Demo) -> None:
    """Issue 23: a pivot over its cost cap is refused with a 400 naming the limit and how to
    narrow it; the bureau page must show that, in Chinese, and not keep the old table. The
    demo's store is far below the caps, so the answer is the API's own refusal, built by
    api.queries.pivot_limits for this very request, handed to the page for that one call."""
    from api.queries.pivot_limits import LIMITS, Shape, too_many_cells

    refused = too_many_cells(Shape(["district"], ["platform"], ["district", "platform"], "json"), LIMITS, 400, 200)
    body = {"error": {"code": refused.code, "message": refused.message,
                      "message_zh": refused.message_zh, "limit": refused.limit}}  # fmt: skip

    async def too_large(route: Any) -> None:
        await route.fulfill(status=400, content_type="application/json", body=json.dumps(body, ensure_ascii=False))

    for size, shot in ((DESKTOP, "screenshot-bureau-too-large.png"), (PHONE, "screenshot-bureau-too-large-phone.png")):
        page = await open_page(browser, demo, "bureau", "/bureau.html", size)
        await page.wait_for_selector("#domestic-pivot:not([data-total=''])")
        await page.route("**/v1/pivot?dataset=domestic_sales*", too_large)
        await page.click("#domestic-apply")
        note = page.locator("#domestic-note")
        await note.wait_for(state="visible")
        text = await note.inner_text()
        assert "结果过大" in text and "80,000" in text and "缩短时间范围" in text, text
        assert await page.locator("#domestic-pivot tr").count() == 0  # the old answer is not left beside it
        await check_layout(page, shot)
        await page.close()


async def test_bureau_imports_a_firm_list_and_reads_live_commerce(browser: Any, demo: Demo) -> None:
    """Issue 21 §3–4: 导入入驻企业 shows accepted, duplicate and rejected rows (row, column,
    why); a second upload of the file adds nothing; 直播电商监测 draws its pivot."""
    csv = "\ufeff" + "\n".join([
        "企业编号,企业名称,平台,区县,外贸企业,状态,日期",
        "IMP-001,北仑外贸一厂,拼多多,北仑区,是,入驻,2020-02-28",
        "IMP-002,北仑外贸二厂,淘宝,北仑区,否,入驻,2020-02-28",
        "IMP-003,不知道的平台,某宝,北仑区,是,入驻,2020-02-28",
    ])  # fmt: skip
    for size, shot in ((DESKTOP, "screenshot-bureau-import.png"), (PHONE, "screenshot-bureau-import-phone.png")):
        page = await open_page(browser, demo, "bureau", "/bureau.html", size)
        await page.wait_for_selector("#live-pivot:not([data-total=''])")
        assert "直播场次" in await page.inner_text("#live-measure")
        await page.set_input_files("#import-file", files=[{"name": "入驻企业.csv", "mimeType": "text/csv",
                                                           "buffer": csv.encode()}])  # fmt: skip
        await page.click("#import-submit")
        await page.wait_for_selector("#import-result[data-rejected]")
        result = page.locator("#import-result")
        rejected = int(await result.get_attribute("data-rejected") or -1)
        accepted = int(await result.get_attribute("data-accepted") or -1)
        duplicates = int(await result.get_attribute("data-duplicates") or -1)
        assert rejected == 1 and accepted + duplicates == 2, await result.inner_text()
        row = await page.inner_text("#import-rejected tbody tr")
        assert "4" in row and "平台" in row and "某宝" in row, row
        await check_layout(page, shot)
        await page.close()


async def test_the_data_intake_page_shows_each_shop(browser: Any, demo: Demo) -> None:
    """Issue 20 §8: 数据接入 lists each shop's pushes, bad signatures, reconciliation and last
    error: the demo's own 抖店 shop (demo/shop.py), then two shops as the API answers for a
    store that has them, handed to the page for that call (an error row among them)."""
    from demo.shop import SHOP_ID

    body = {"connectors": [
        {"platform": "douyin", "shop_id": "1001", "last_push_at": "2020-02-29T14:57:00+08:00", "pushes": 1234,
         "bad_signatures": 2, "last_reconciled_to": "2020-02-29T14:50:00+08:00", "recovered_steps": 17,
         "last_error": None, "last_error_at": None},
        {"platform": "kuaishou", "shop_id": "ks-88", "last_push_at": None, "pushes": 0, "bad_signatures": 0,
         "last_reconciled_to": "2020-02-29T14:45:00+08:00", "recovered_steps": 3,
         "last_error": "reconciliation: open.order.cursor.list: HTTP 503", "last_error_at": "2020-02-29T14:46:00+08:00"},
    ]}  # fmt: skip
    page = await open_page(browser, demo, "bureau", "/connectors.html", DESKTOP)
    assert await page.get_attribute("#connectors-table", "data-count") == "1"
    assert "抖音" in (row := await page.inner_text("#connectors-table tbody tr")) and SHOP_ID in row, row
    assert not await page.locator("#connectors-empty").is_visible()
    await page.close()

    async def two_shops(route: Any) -> None:
        await route.fulfill(status=200, content_type="application/json", body=json.dumps(body, ensure_ascii=False))

    for size, shot in ((DESKTOP, "screenshot-connectors.png"), (PHONE, "screenshot-connectors-phone.png")):
        page = await browser.new_page(viewport=size)
        await page.add_init_script(f"sessionStorage.setItem('livesales.token', {json.dumps(demo.tokens['bureau'])})")
        await page.route("**/v1/connectors", two_shops)
        await page.goto(demo.base + "/connectors.html")
        await page.wait_for_selector("#connectors-table[data-count='2']")
        rows = await page.locator("#connectors-table tbody tr").all_inner_texts()
        assert "抖音" in rows[0] and "1,234" in rows[0] and "17" in rows[0], rows
        assert "快手" in rows[1] and "对账失败：open.order.cursor.list: HTTP 503" in rows[1], rows  # in Chinese
        assert not await page.locator("#connectors-empty").is_visible()
        await check_layout(page, shot)
        await page.close()
