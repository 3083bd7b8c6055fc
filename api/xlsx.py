"""A pivot answer as an Excel workbook the bureau can work in directly.

Written with XlsxWriter (maintained, pure Python, writes in memory): Chinese headers,
platform and firm names in the keys, money as yuan numbers with two decimals and weight
as kilograms (real numbers, so Excel sums them), a totals row and column (合计), a
frozen header and a sheet name that says what the sheet holds.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from typing import Any

import xlsxwriter

from api import labels as L
from api.params import TimeParams

_BAD_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")
FORMATS = {100: "#,##0.00", 1000: "#,##0.000", 1: "#,##0"}


def sheet_name(dataset: str, measure: str) -> str:
    """E.g. ``订单-成交额（元）``: at most 31 characters, none of []:*?/\\ (Excel's rules)."""
    name = f"{L.DATASETS.get(dataset, dataset)}-{L.measure_name(measure)}"
    return _BAD_SHEET_CHARS.sub("_", name)[:31]


def file_name(dataset: str, measure: str, ext: str) -> str:
    return f"{sheet_name(dataset, measure)}.{ext}"


def _when(t: datetime | None, tp: TimeParams) -> str | None:
    return None if t is None else t.astimezone(tp.tzinfo).strftime("%Y-%m-%d %H:%M")


def title(p: dict[str, Any], tp: TimeParams) -> str:
    lo, hi = _when(tp.from_, tp), _when(tp.to, tp)
    span = f"{lo or '最早'} 至 {hi or '最新'}" + ("（不含）" if hi else "")
    return f"{L.DATASETS.get(p['dataset'], p['dataset'])} · {L.measure_name(p['measure'])} · {span} · 时区 UTC{tp.tz}"


def _width(text: str) -> int:
    """Display width: CJK and full-width characters take two columns."""
    return sum(2 if ord(c) >= 0x2E80 else 1 for c in text)


def key_text(p: dict[str, Any], dims: list[str], key: list[Any]) -> list[str]:
    names = p.get("labels", {})
    return [L.key_label(d, v, names.get(d)) for d, v in zip(dims, key, strict=True)]


def table(p: dict[str, Any]) -> list[list[Any]]:
    """The header and body as plain values (counts, yuan, kg), shared by the writer and tests.

    With no row dimensions the one row is the total; with no column dimensions the one
    column is the measure: neither gets a second, identical 合计."""
    scale = L.SCALED.get(p["measure"], 1)

    def v(x: int) -> int | float:
        return x / scale if scale != 1 else x

    rows, cols = p["rows"], p["cols"]
    head = [L.dimension_name(d) for d in rows] or [""]
    if cols:
        head += ["/".join(key_text(p, cols, ck)) for ck in p["col_keys"]] + [L.TOTAL]
    else:
        head += [L.measure_name(p["measure"])]
    body: list[list[Any]] = []
    if rows:
        for rk, cells, rt in zip(p["row_keys"], p["cells"], p["row_totals"], strict=True):
            body.append([*key_text(p, rows, rk), *(v(c) for c in cells), *([v(rt)] if cols else [])])
    body.append([L.TOTAL, *([""] * (len(rows) - 1)), *(v(c) for c in p["col_totals"]),
                 *([v(p["total"])] if cols else [])])  # fmt: skip
    return [head, *body]


def to_xlsx(p: dict[str, Any], tp: TimeParams) -> bytes:
    out = io.BytesIO()
    wb = xlsxwriter.Workbook(out, {"in_memory": True})
    ws = wb.add_worksheet(sheet_name(p["dataset"], p["measure"]))
    bold = wb.add_format({"bold": True})
    head_fmt = wb.add_format({"bold": True, "bg_color": "#EEF2F7", "border": 1, "text_wrap": True})
    num = wb.add_format({"num_format": FORMATS[L.SCALED.get(p["measure"], 1)]})
    total_num = wb.add_format({"num_format": FORMATS[L.SCALED.get(p["measure"], 1)], "bold": True, "top": 1})
    total_label = wb.add_format({"bold": True, "top": 1})
    rows, cols = p["rows"], p["cols"]
    n_labels = max(1, len(rows))
    ws.write(0, 0, title(p, tp), bold)
    ws.write(1, 0, f"行：{'、'.join(map(L.dimension_name, rows)) or '（无）'}；"
                   f"列：{'、'.join(map(L.dimension_name, cols)) or '（无）'}")  # fmt: skip
    grid = table(p)
    first = 2  # the header's row: under the title and the layout line
    for r, line in enumerate(grid):
        last = r == len(grid) - 1
        for c, value in enumerate(line):
            is_total_col = bool(cols) and c == len(line) - 1
            if value == "":
                ws.write_blank(first + r, c, None, head_fmt if r == 0 else total_label if last else None)
            elif r == 0:
                ws.write_string(first, c, str(value), head_fmt)
            elif c < n_labels:
                ws.write_string(first + r, c, str(value), total_label if last else None)
            else:
                ws.write_number(first + r, c, value, total_num if last or is_total_col else num)
    for c in range(len(grid[0])):
        widest = max(_width(str(line[c])) for line in grid)
        ws.set_column(c, c, min(max(widest + 2, 10), 40))
    ws.freeze_panes(first + 1, n_labels)
    wb.close()
    return out.getvalue()
