"""``POST /v1/onboarding/import`` (contract v1.2 §6): the bureau's spreadsheet of firms.

A list of onboarded firms reaches the bureau as a spreadsheet, not as events. Each row
becomes an ``onboarding.v1`` event whose ``event_id`` is a hash of the row's content, so
the same file uploaded twice publishes nothing new (and counting would drop it anyway:
contract §3). The file is read whole before anything is published: a file that cannot be
read, or whose header names a column we do not know, is refused (400) with nothing
published; a bad row is listed (its row number as the spreadsheet shows it, the column,
a code and why) and the good rows go ahead.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timezone
from typing import Any

from api import labels as L
from processors.validate import Rejection, validate_value

# contract §6: each column by its English name or its Chinese header
COLUMNS: dict[str, str] = {
    "firm_id": "企业编号", "firm_name": "企业名称", "platform": "平台", "district": "区县",
    "export_oriented": "外贸企业", "status": "状态", "occurred_at": "日期",
}  # fmt: skip
_BY_HEADER = {**{k: k for k in COLUMNS}, **{v: k for k, v in COLUMNS.items()}}
_PLATFORMS = {**{k: k for k in L.PLATFORMS}, **{v: k for k, v in L.PLATFORMS.items()}}
_BOOLS = {"是": True, "否": False, "true": True, "false": False, "1": True, "0": False}
_STATUSES = {"onboarded": "onboarded", "入驻": "onboarded", "withdrawn": "withdrawn", "退出": "withdrawn"}
MAX_ROWS = 100_000
NOT_A_SHEET = "不是电子表格：请上传 .xlsx 文件或 UTF-8 编码的 CSV"
MAX_XLSX_UNZIPPED = 200 * 1024 * 1024  # a zip bomb is refused before it is parsed


class FileError(ValueError):
    """The file itself cannot be imported (400, nothing published)."""


@dataclass
class Parsed:
    events: list[tuple[int, bytes]] = field(default_factory=list)  # (row number, event JSON)
    rejected: list[dict[str, Any]] = field(default_factory=list)


def read_table(body: bytes) -> list[list[Any]]:
    """The first sheet of an .xlsx, or a UTF-8 CSV (BOM allowed), as rows of cells."""
    if body[:4] == b"PK\x03\x04":
        return _xlsx_rows(body)
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FileError(NOT_A_SHEET) from None
    if "\x00" in text:
        raise FileError(NOT_A_SHEET)
    return [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]


def _xlsx_rows(body: bytes) -> list[list[Any]]:
    from openpyxl import load_workbook  # only an import needs it

    try:
        with zipfile.ZipFile(io.BytesIO(body)) as z:
            if sum(i.file_size for i in z.infolist()) > MAX_XLSX_UNZIPPED:
                raise FileError("工作簿解压后过大，请拆分后再导入")
        book = load_workbook(io.BytesIO(body), read_only=True, data_only=True)
    except FileError:
        raise
    except Exception:
        raise FileError("无法读取该 .xlsx 文件，请确认文件未损坏") from None
    try:
        sheet = book.worksheets[0]
        rows: list[list[Any]] = []
        for row in sheet.iter_rows(values_only=True):
            if len(rows) > MAX_ROWS:
                raise FileError(f"超过 {MAX_ROWS:,} 行，请拆分后再导入")
            if any(c is not None and str(c).strip() for c in row):
                rows.append(list(row))
        return rows
    finally:
        book.close()


def parse(body: bytes, tz: timezone) -> Parsed:
    """Rows into events; raises FileError for a file that cannot be imported at all."""
    rows = read_table(body)
    if not rows:
        raise FileError("文件为空：第一行应为表头，之后每行一家企业")
    header = [str(c).strip() if c is not None else "" for c in rows[0]]
    names: list[str] = []
    for i, title in enumerate(header):
        if title not in _BY_HEADER:
            known = "、".join(f"{k}/{v}" for k, v in COLUMNS.items())
            raise FileError(f"不认识的列「{title}」（第 {_letter(i)} 列）；可用的列：{known}")
        names.append(_BY_HEADER[title])
    missing = [f"{k}/{v}" for k, v in COLUMNS.items() if k not in names]
    if missing:
        raise FileError(f"缺少列：{'、'.join(missing)}")
    out = Parsed()
    now = datetime.now(UTC)
    for n, row in _numbered(rows[1:]):
        cells = {names[i]: row[i] if i < len(row) else None for i in range(len(names))}
        event, problem = _event(cells, tz)
        if problem is not None:
            column, code, message = problem
            out.rejected.append({"row": n, "column": header[names.index(column)], "code": code, "message": message})
            continue
        raw = json.dumps(event, ensure_ascii=False).encode()
        checked = validate_value(raw, now)
        if isinstance(checked, Rejection):
            out.rejected.append({"row": n, "column": None, "code": checked.code, "message": checked.message})
            continue
        out.events.append((n, raw))
    return out


def _numbered(rows: Sequence[list[Any]]) -> Iterator[tuple[int, list[Any]]]:
    return ((i + 2, r) for i, r in enumerate(rows))  # the header is row 1


def _letter(i: int) -> str:
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(65 + r) + s
    return s


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))  # a firm number typed into a numeric cell
    return str(v).strip()


def _event(c: dict[str, Any], tz: timezone) -> tuple[dict[str, Any], tuple[str, str, str] | None]:
    for name in ("firm_id", "firm_name", "platform", "district", "export_oriented", "status", "occurred_at"):
        if _text(c[name]) == "":
            return {}, (name, "schema_violation", f"{COLUMNS[name]}为空")
    platform = _PLATFORMS.get(_text(c["platform"]).lower(), _PLATFORMS.get(_text(c["platform"])))
    if platform is None:
        known = "、".join(L.PLATFORMS.values())
        return {}, ("platform", "unknown_platform", f"不认识的平台「{_text(c['platform'])}」；可用：{known}")
    export = _BOOLS.get(_text(c["export_oriented"]).lower())
    if export is None:
        return {}, ("export_oriented", "schema_violation", "外贸企业应为 是/否、true/false 或 1/0")
    status = _STATUSES.get(_text(c["status"]).lower())
    if status is None:
        return {}, ("status", "schema_violation", "状态应为 入驻/onboarded 或 退出/withdrawn")
    at = _when(c["occurred_at"], tz)
    if at is None:
        return {}, ("occurred_at", "bad_date", "日期应为 YYYY-MM-DD 或带时区的 RFC 3339 时间")
    event = {
        "schema": "onboarding.v1", "occurred_at": at.isoformat(), "firm_id": _text(c["firm_id"]),
        "firm_name": _text(c["firm_name"]), "platform": platform, "district": _text(c["district"]),
        "export_oriented": export, "status": status,
    }  # fmt: skip
    content = json.dumps(event, ensure_ascii=False, sort_keys=True).encode()
    event["event_id"] = "import-" + hashlib.sha256(content).hexdigest()[:32]
    return event, None


def _when(v: Any, tz: timezone) -> datetime | None:
    """A date (midnight in ``tz``) or a time: an RFC 3339 string, or a spreadsheet date cell."""
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=tz)
    if isinstance(v, date):
        return datetime.combine(v, time(), tz)
    text = _text(v)
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tz)
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if at.tzinfo is None or "T" not in text.upper():
        return None  # RFC 3339 needs the offset and the T
    return at
