"""The dashboard's static files (api/web) are complete, offline and carry the ids browser tests use."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

WEB = Path(__file__).resolve().parents[2] / "api" / "web"
VENDOR = WEB / "vendor"
PAGES = ["index.html", "live.html", "bureau.html", "regions.html"]

# Vendored third-party files may mention URLs (licence text, comments); ours may not.
EXEMPT = {VENDOR / "echarts.min.js", VENDOR / "echarts.LICENSE.txt"}

DATA_VALUE_IDS = [
    "gmv",
    "paid-orders",
    "weight",
    "views-total",
    "viewers-peak",
    "pace",
    "refunded-orders",
    "refund",
    "avg-order",
    "net-gmv",
    "units",
    "viewers-avg",
    "gpm",
    "refund-rate",
]

IDS = {
    "index.html": [
        "token",
        "sign-in",
        "error",
        "channels",
        "bureau-link",
        "regions-link",
        "sign-out",
        "channel-filters",
        "filter-platform",
        "filter-status",
        "filter-district",
        "filter-township",
        "filter-day",
        "channels-more",
    ],
    "live.html": [
        "error",
        "sign-out",
        *DATA_VALUE_IDS,
        "chart",
        "top-skus",
        "channel-title",
        "channel-status",
        "channel-host",
        "channel-platform",
        "channel-id",
        "alerts",
        "projection",
        "chart-line",
        "poster-make",
        "poster",
        "poster-download",
        "poster-image",
        "poster-close",
        "poster-share",
    ],
    "regions.html": [
        "error",
        "sign-out",
        "regions-level",
        "regions-from",
        "regions-to",
        "regions-today",
        "regions-all",
        "regions-table",
        "regions-ranking",
        *(f"total-{k}" for k in ("channels", "live", "orders", "gmv", "kg", "refund")),
    ],
    "bureau.html": [
        "error",
        "sign-out",
        "onboarding-pivot",
        "domestic-pivot",
        "onboarding-measure",
        "onboarding-rows",
        "onboarding-cols",
        "onboarding-from",
        "onboarding-to",
        "onboarding-csv",
        "onboarding-chart",
        "domestic-measure",
        "domestic-rows",
        "domestic-cols",
        "domestic-from",
        "domestic-to",
        "domestic-csv",
        "domestic-chart",
        *(f"{p}-{k}" for p in ("onboarding", "domestic", "trend", "firms") for k in ("csv", "xlsx", "note")),
        "trend-measure",
        "trend-rows",
        "trend-pivot",
        "trend-chart",
        "firms-measure",
        "firms-table",
        "firms-chart",
    ],
}


OPTIONS = {
    "onboarding-measure": {"firms_onboarded", "firms_withdrawn", "firms_net"},
    "domestic-measure": {"gmv_fen", "paid_orders", "firms_with_sales"},
    "onboarding-rows": {"platform", "district", "export_oriented", "week", "month"},
    "onboarding-cols": {"none", "platform", "district", "export_oriented", "week", "month"},
    "domestic-rows": {"platform", "district", "week", "month"},
    "domestic-cols": {"none", "platform", "district", "week", "month"},
    "trend-rows": {"week", "month"},
    "firms-measure": {"gmv_fen", "paid_orders"},
    "filter-status": {"", "live", "scheduled", "ended"},
}


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: dict[str, tuple[str, dict[str, str | None]]] = {}
        self.duplicates: list[str] = []
        self.refs: list[str] = []
        self.options: dict[str, set[str]] = {}
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            ident = str(a["id"])
            if ident in self.elements:
                self.duplicates.append(ident)
            self.elements[ident] = (tag, a)
        for name in ("src", "href"):
            if a.get(name):
                self.refs.append(str(a[name]))
        if tag == "select":
            self._select = a.get("id")
            if self._select:
                self.options[self._select] = set()
        elif tag == "option" and self._select is not None:
            self.options[self._select].add(str(a.get("value")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


def parse(name: str) -> Page:
    page = Page()
    page.feed((WEB / name).read_text(encoding="utf-8"))
    return page


def own_files() -> list[Path]:
    return [p for p in sorted(WEB.rglob("*")) if p.is_file() and p not in EXEMPT]


def local_target(base: Path, ref: str) -> Path | None:
    """The file a local reference points to, or None for in-page anchors / data: URIs."""
    parts = urlsplit(ref)
    if parts.scheme in ("data", "blob", "javascript", "mailto") or (not parts.path and ref.startswith("#")):
        return None
    assert not parts.scheme and not parts.netloc, f"external reference {ref!r}"
    path = parts.path
    if not path:
        return None
    target = (WEB / path.lstrip("/")) if path.startswith("/") else (base.parent / path)
    if path.endswith("/") or path == "/":
        target = target / "index.html"
    return target.resolve()


def test_pages_and_assets_exist() -> None:
    for name in [*PAGES, "app.js", "labels.js", "style.css", "vendor/echarts.min.js"]:
        assert (WEB / name).is_file(), name


def test_echarts_licence_is_present() -> None:
    licence = VENDOR / "echarts.LICENSE.txt"
    assert licence.is_file()
    text = licence.read_text(encoding="utf-8")
    assert "Apache License" in text
    assert (VENDOR / "echarts.min.js").stat().st_size > 100_000


@pytest.mark.parametrize("name", PAGES)
def test_html_references_exist(name: str) -> None:
    page = parse(name)
    assert page.refs, f"{name} references nothing"
    for ref in page.refs:
        target = local_target(WEB / name, ref)
        if target is None:
            continue
        assert target.is_relative_to(WEB.resolve()), f"{name}: {ref} leaves api/web"
        assert target.is_file(), f"{name}: {ref} does not exist"


IMPORT_RE = re.compile(
    r"""(?:\bimport\s+(?:[\w*{}\s,]+\s+from\s+)?|\bexport\s+[\w*{}\s,]+\s+from\s+|\bimport\s*\()\s*["']([^"']+)["']"""
)


def test_js_imports_exist() -> None:
    scripts = [p for p in own_files() if p.suffix in (".js", ".mjs")]
    assert scripts
    for script in scripts:
        text = script.read_text(encoding="utf-8")
        for ref in IMPORT_RE.findall(text):
            assert ref.startswith((".", "/")), f"{script.name}: bare import {ref!r} needs a build step"
            target = local_target(script, ref)
            assert target is not None and target.is_file(), f"{script.name}: import {ref} does not exist"


def test_css_urls_exist() -> None:
    for sheet in [p for p in own_files() if p.suffix == ".css"]:
        for ref in re.findall(r"""url\(\s*["']?([^"')]+)["']?\s*\)""", sheet.read_text(encoding="utf-8")):
            target = local_target(sheet, ref)
            if target is not None:
                assert target.is_file(), f"{sheet.name}: url({ref}) does not exist"


def test_no_external_urls() -> None:
    offenders = []
    for path in own_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for m in re.finditer(r"(?i)\b(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text):
            if m.group(0).lower().startswith(("http:", "https:")) or text[max(m.start() - 1, 0)] in "\"'(=":
                offenders.append(f"{path.relative_to(WEB)}: {m.group(0)}")
    assert not offenders, offenders


def test_vendor_holds_only_echarts() -> None:
    assert {p.name for p in VENDOR.iterdir()} == {"echarts.min.js", "echarts.LICENSE.txt"}


@pytest.mark.parametrize("name", PAGES)
def test_ids_present(name: str) -> None:
    page = parse(name)
    assert not page.duplicates, f"{name}: duplicate ids {page.duplicates}"
    missing = [i for i in IDS[name] if i not in page.elements]
    assert not missing, f"{name} lacks ids {missing}"


def test_element_kinds() -> None:
    index = parse("index.html")
    assert index.elements["token"][0] == "input"
    assert index.elements["sign-in"][0] == "button"
    assert index.elements["channels"][0] == "table"
    assert index.elements["bureau-link"][1].get("href") == "bureau.html"
    live = parse("live.html")
    assert live.elements["top-skus"][0] == "table"
    for ident in DATA_VALUE_IDS:
        assert "data-value" in live.elements[ident][1], f"live.html #{ident} lacks data-value"
    bureau = parse("bureau.html")
    for ident in ("onboarding-pivot", "domestic-pivot"):
        tag, attrs = bureau.elements[ident]
        assert tag == "table" and "data-total" in attrs
    options = {**bureau.options, **index.options}
    for ident, values in OPTIONS.items():
        assert options[ident] >= values, f"{ident}: {values - options[ident]} missing"


@pytest.mark.parametrize("name", ["live.html", "bureau.html"])
def test_chart_pages_load_vendored_echarts_first(name: str) -> None:
    refs = parse(name).refs
    assert "vendor/echarts.min.js" in refs
    mine = [r for r in refs if r.endswith(".js") and not r.startswith("vendor/")]
    assert mine and refs.index("vendor/echarts.min.js") < refs.index(mine[0])


def test_live_stream_read_with_fetch_not_eventsource() -> None:
    text = (WEB / "live.js").read_text(encoding="utf-8")
    assert "EventSource" not in text
    assert "/live?" in text and "Authorization" in (WEB / "app.js").read_text(encoding="utf-8")


def js_table(text: str, name: str) -> dict[str, str]:
    body = re.search(rf"const {name} = {{(.*?)}};", text, re.S)
    assert body, f"labels.js lacks {name}"
    return dict(re.findall(r"(\w+): \"([^\"]+)\"", body.group(1)))


def test_platform_names_cover_the_contract_slugs() -> None:
    names = js_table((WEB / "labels.js").read_text(encoding="utf-8"), "PLATFORMS")
    contract = {"douyin", "kuaishou", "taobao", "pinduoduo", "jd", "netease", "vipshop", "wechat"}
    assert set(names) >= contract
    assert names["douyin"] == "抖音" and names["wechat"] == "微信视频号"


def test_builtin_labels_agree_with_the_served_table() -> None:
    """The built-in copy only bridges an older server; it must not contradict api/labels.py."""
    from api import labels  # a broken module fails this test (the static files' tests need none of it)

    text = (WEB / "labels.js").read_text(encoding="utf-8")
    tables = (("PLATFORMS", labels.PLATFORMS), ("RULES", labels.RULES), ("MEASURES", labels.MEASURES),
              ("FIGURES", labels.FIGURES))  # fmt: skip
    for name, served in tables:
        builtin = js_table(text, name)
        assert builtin, f"labels.js: {name} read as empty"
        for slug, shown in builtin.items():
            assert slug in served, f"labels.js names {name}.{slug}, which api/labels.py does not serve"
            assert served[slug] == shown, f"{name}.{slug}: {shown!r} vs served {served[slug]!r}"


def test_no_ellipsis_on_figures() -> None:
    css = (WEB / "style.css").read_text(encoding="utf-8")
    assert "text-overflow: ellipsis" not in css


def test_live_screen_names_the_v12_figures_and_never_kehudanjia() -> None:
    """Contract v1.2 §6: 千次观看成交 (GPM), 平均在线, 退款率 shown; avg_order_fen is 笔单价,
    never 客单价 (that needs buyers, which no event carries)."""
    for path in WEB.glob("*.*"):  # what people see: the pages and the scripts' strings, not comments
        text = re.sub(r"^\s*//.*$|/\*.*?\*/", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
        assert "客单价" not in text, path.name
    live = (WEB / "live.html").read_text(encoding="utf-8")
    for name in ("千次观看成交", "GPM", "平均在线", "退款率", "笔单价", "生成战报"):
        assert name in live, name
    from api import labels

    assert labels.FIGURES["avg_order_fen"] == "笔单价（元）"
    tiles = dict(re.findall(r'<div class="label" data-figure="(\w+)"[^>]*>([^<]+)</div>', live))
    assert set(tiles) >= {"gpm_fen", "viewers_avg", "refund_rate", "avg_order_fen"}
    assert tiles == {k: labels.FIGURES[k] for k in tiles}  # the page's names are the served table's


@pytest.mark.parametrize("name", PAGES)
def test_pages_with_date_inputs_load_the_chinese_date_field_first(name: str) -> None:
    text = (WEB / name).read_text(encoding="utf-8")
    assert '<html lang="zh-CN">' in text
    if 'type="date"' not in text:
        return
    refs = [r for r in parse(name).refs if r.endswith(".js") and not r.startswith("vendor/")]
    assert refs[0] == "datefield.js", refs  # before the page's script sets a value


def test_the_intake_page_words_every_connector_error_in_chinese() -> None:
    """connectors.js turns a shop's last_error, "<where>: <what>" as the connectors write it,
    into Chinese by its prefix; a new or reworded prefix would reach the bureau in English."""
    js = (WEB / "connectors.js").read_text(encoding="utf-8")
    connectors = WEB.parents[1] / "connectors"
    prefixes = {
        prefix
        for path in connectors.glob("*.py")
        for prefix in re.findall(r'book\.error\([^\n]*?f"([a-z ]+(?: [a-z]+)*): ', path.read_text(encoding="utf-8"))
    }
    assert {"reconciliation", "push worker"} <= prefixes
    for prefix in prefixes:
        # at least the catch-all for the prefix; narrower patterns come before it
        assert f"/^{prefix}: (.*)$/" in js, f"connectors.js has no Chinese words for last_error {prefix!r}"
