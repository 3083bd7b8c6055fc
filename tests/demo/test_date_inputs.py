"""Dates in Chinese (issue 21 item 6): every date input on every page reads 年/月/日, never
mm/dd/yyyy, in a Chromium whose UI language is English (the default here, and what a bureau
PC set up in English runs). What the browser draws inside a date input lives in a
user-agent shadow root that page scripts cannot read; the DevTools protocol can (DOM with
``pierce``), so this reads the native fields' placeholders and whether they are visible,
and the face api/web/datefield.js draws over them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.demo.conftest import DESKTOP, PHONE, SHOTS, Demo

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PAGES = ["/index.html", "/bureau.html", "/regions.html"]
US = {"mm", "dd", "yyyy"}


async def native_fields(page: Any) -> dict[str, dict[str, Any]]:
    """Per date input (by id): the native fields' placeholders in order and the computed
    opacity of the box that holds them, read through the DevTools protocol."""
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("DOM.enable")
    await cdp.send("CSS.enable")
    doc = await cdp.send("DOM.getDocument", {"depth": -1, "pierce": True})
    found: dict[str, dict[str, Any]] = {}

    def attrs(n: dict[str, Any]) -> dict[str, str]:
        a = n.get("attributes", [])
        return dict(zip(a[::2], a[1::2], strict=True))

    def walk(n: dict[str, Any], owner: dict[str, Any] | None) -> None:
        a = attrs(n)
        if n.get("nodeName") == "INPUT" and a.get("type") == "date":
            owner = found.setdefault(a.get("id", f"#{len(found)}"), {"placeholders": [], "edit": None})
        if owner is not None and "aria-placeholder" in a:
            owner["placeholders"].append(a["aria-placeholder"])
        if owner is not None and a.get("pseudo") == "-webkit-datetime-edit":
            owner["edit"] = n["nodeId"]
        for c in n.get("children", []) + n.get("shadowRoots", []):
            walk(c, owner)

    walk(doc["root"], None)
    for field in found.values():
        style = await cdp.send("CSS.getComputedStyleForNode", {"nodeId": field["edit"]})
        field["opacity"] = next(p["value"] for p in style["computedStyle"] if p["name"] == "opacity")
    await cdp.detach()
    return found


FACES = """() => Object.fromEntries([...document.querySelectorAll('input[type="date"]')].map((i) => {
  const face = i.parentElement.querySelector('.date-face');
  const r = face ? face.getBoundingClientRect() : null, b = i.getBoundingClientRect();
  const shown = !!face && r.width > 0 && getComputedStyle(face).visibility === 'visible'
    && r.left >= b.left && r.right <= b.right + 1 && getComputedStyle(i).color === 'rgba(0, 0, 0, 0)';
  return [i.id, {value: i.value, face: face ? face.textContent : null, shown, lang: i.lang, clipped:
    !!face && face.scrollWidth > face.clientWidth + 1}];
}))"""


def problems(native: dict[str, dict[str, Any]], faces: dict[str, dict[str, Any]]) -> list[str]:
    """What a person would read as a US date, or as no date at all, per input."""
    out = []
    for name, field in native.items():
        if field["opacity"] != "0":  # the browser's own text shows: it must be Chinese
            if US & set(field["placeholders"]) or field["placeholders"] != ["年", "月", "日"]:
                out.append(f"{name} shows {'/'.join(field['placeholders'])}")
            continue
        f = faces.get(name)
        if f is None or not f["shown"]:
            out.append(f"{name}: native text hidden and no face shown")
            continue
        want = f["value"].replace("-", "/") if f["value"] else "年/月/日"
        if f["face"] != want or f["clipped"]:
            out.append(f"{name}: face {f['face']!r} for value {f['value']!r} (clipped: {f['clipped']})")
    return out


async def test_a_plain_date_input_here_shows_mm_dd_yyyy(browser: Any) -> None:
    """The check below can fail: an unenhanced input in this Chromium is a US date."""
    page = await browser.new_page()
    await page.set_content('<!doctype html><html lang="zh-CN"><body><input id="d" type="date"></body></html>')
    found = problems(await native_fields(page), await page.evaluate(FACES))
    assert found == ["d shows mm/dd/yyyy"]
    await page.close()


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_every_date_input_reads_nian_yue_ri(browser: Any, demo: Demo, size: dict[str, int]) -> None:
    seen = 0
    for path in PAGES:
        page = await browser.new_page(viewport=size)
        await page.add_init_script(f"sessionStorage.setItem('livesales.token', {json.dumps(demo.tokens['bureau'])})")
        await page.goto(demo.base + path)
        await page.wait_for_function("document.body.dataset.updatedAt")
        assert await page.get_attribute("html", "lang") == "zh-CN"
        ids = await page.locator('input[type="date"]').evaluate_all("(xs) => xs.map((x) => x.id)")
        assert ids, path
        seen += len(ids)
        faces = await page.evaluate(FACES)
        assert all(f["lang"] == "zh-CN" for f in faces.values()), faces
        assert problems(await native_fields(page), faces) == [], path
        # typed or picked, cleared, or set by a script: the face follows the value
        first, last = ids[0], ids[-1]
        await page.fill(f"#{first}", "2020-02-29")
        assert (await page.evaluate(FACES))[first]["face"] == "2020/02/29"
        await page.evaluate(f"document.getElementById({json.dumps(last)}).value = '2021-12-05'")
        assert (await page.evaluate(FACES))[last]["face"] == "2021/12/05"
        await page.fill(f"#{last}", "")
        faces = await page.evaluate(FACES)
        assert faces[last]["face"] == "年/月/日"
        assert problems(await native_fields(page), faces) == [], path
        if size is PHONE and path == "/regions.html":
            SHOTS.mkdir(parents=True, exist_ok=True)
            await page.locator(f"#{first}").scroll_into_view_if_needed()
            await page.screenshot(path=str(SHOTS / "screenshot-dates-phone.png"))
        await page.close()
    assert seen >= 11  # index 1, bureau 8, regions 2
