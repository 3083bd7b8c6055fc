"""The bureau's view: pivots of orders, onboarding and domestic sales, as JSON, CSV or Excel."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any
from urllib.parse import quote

from aiohttp import web

from api.auth import principal_of
from api.context import PIVOT_LIMITS, STORE
from api.errors import ApiError
from api.params import time_params
from api.queries.pivot import DATASETS, PivotRequest, run_pivot
from api.queries.pivot_limits import PivotRefused
from api.responses import json_response
from api.xlsx import file_name, to_xlsx

FORMATS = ("json", "csv", "xlsx")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

routes = web.RouteTableDef()


def _dims(text: str | None, allowed: list[str], what: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in (text or "").split(",") if n.strip())
    bad = [n for n in names if n not in allowed]
    if bad:
        raise ApiError(400, f"unknown {what} dimension {bad[0]!r}; allowed: {', '.join(allowed)}")
    if len(names) > 2:
        raise ApiError(400, f"at most 2 {what} dimensions, got {len(names)}")
    return names


def parse_pivot(query: Any) -> PivotRequest:
    dataset = query.get("dataset")
    if dataset not in DATASETS:
        raise ApiError(400, f"dataset must be one of: {', '.join(DATASETS)}")
    ds = DATASETS[dataset]
    allowed = list(ds.dims)
    rows = _dims(query.get("rows"), allowed, "rows")
    cols = _dims(query.get("cols"), allowed, "cols")
    if len(set(rows + cols)) != len(rows + cols):
        raise ApiError(400, "a dimension may appear only once across rows and cols")
    measure = query.get("measure") or ds.default_measure
    if measure not in ds.measures:
        raise ApiError(400, f"measure for {dataset} must be one of: {', '.join(ds.measures)}")
    fmt = query.get("format", "json")
    if fmt not in FORMATS:
        raise ApiError(400, f"format must be one of: {', '.join(FORMATS)}")
    return PivotRequest(dataset, rows, cols, measure, fmt)


def _label(value: Any, names: dict[str, str] | None = None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return names.get(text, text) if names else text


def _names(p: dict[str, Any], dims: list[str]) -> list[dict[str, str] | None]:
    """Per dimension, the names its keys show as in CSV (firm names; else the keys)."""
    labels = p.get("labels", {})
    return [labels.get(d) for d in dims]


def attachment(name: str) -> str:
    """An ASCII fallback plus the RFC 5987 UTF-8 name, so browsers save the Chinese name."""
    fallback = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}"


def to_csv(p: dict[str, Any]) -> bytes:
    """UTF-8 with BOM so Excel shows Chinese; header, one line per row key, a total line."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    row_names, col_names_of = _names(p, p["rows"]), _names(p, p["cols"])
    col_names = ["/".join(_label(x, n) for x, n in zip(ck, col_names_of, strict=True)) or p["measure"]
                 for ck in p["col_keys"]]  # fmt: skip
    w.writerow([*p["rows"], *col_names, "total"])
    for rk, cells, rt in zip(p["row_keys"], p["cells"], p["row_totals"], strict=True):
        w.writerow([*(_label(x, n) for x, n in zip(rk, row_names, strict=True)), *cells, rt])
    w.writerow(["total", *([""] * (len(p["rows"]) - 1)), *p["col_totals"], p["total"]] if p["rows"]
               else ["total", *p["col_totals"], p["total"]])  # fmt: skip
    return ("\ufeff" + out.getvalue()).encode("utf-8")


@routes.get("/v1/pivot")
async def pivot(request: web.Request) -> web.Response:
    principal = principal_of(request)
    req = parse_pivot(request.query)
    tp = time_params(request)
    try:
        result = await run_pivot(request.app[STORE], req, principal.scope, tp, request.app[PIVOT_LIMITS])
    except PivotRefused as exc:  # over a limit: the error names it, the figure and how to narrow
        retry = {"Retry-After": "30"} if exc.status == 503 else None
        raise ApiError(exc.status, exc.message, exc.code, retry,
                       {"message_zh": exc.message_zh, "limit": exc.limit}) from None  # fmt: skip
    fmt = req.fmt
    if fmt == "csv":
        name = f"{req.dataset}-{req.measure}.csv"
        return web.Response(
            body=to_csv(result),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    if fmt == "xlsx":
        body = await asyncio.to_thread(to_xlsx, result, tp)  # a big table takes a while: not on the loop
        return web.Response(body=body, content_type=XLSX,
                            headers={"Content-Disposition": attachment(file_name(req.dataset, req.measure, "xlsx"))})
    return json_response(result)
