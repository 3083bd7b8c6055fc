"""The bureau's view: pivots of orders, onboarding and domestic sales, as JSON or CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

from aiohttp import web

from api.auth import principal_of
from api.context import STORE, json_response
from api.errors import ApiError
from api.params import time_params
from api.queries.pivot import DATASETS, PivotRequest, run_pivot

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
    if fmt not in ("json", "csv"):
        raise ApiError(400, "format must be one of: json, csv")
    return PivotRequest(dataset, rows, cols, measure)


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_csv(p: dict[str, Any]) -> bytes:
    """UTF-8 with BOM so Excel shows Chinese; header, one line per row key, a total line."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    col_names = ["/".join(_label(x) for x in ck) or p["measure"] for ck in p["col_keys"]]
    w.writerow([*p["rows"], *col_names, "total"])
    for rk, cells, rt in zip(p["row_keys"], p["cells"], p["row_totals"], strict=True):
        w.writerow([*(_label(x) for x in rk), *cells, rt])
    w.writerow(["total", *([""] * (len(p["rows"]) - 1)), *p["col_totals"], p["total"]] if p["rows"]
               else ["total", *p["col_totals"], p["total"]])  # fmt: skip
    return ("\ufeff" + out.getvalue()).encode("utf-8")


@routes.get("/v1/pivot")
async def pivot(request: web.Request) -> web.Response:
    principal = principal_of(request)
    req = parse_pivot(request.query)
    tp = time_params(request)
    result = await run_pivot(request.app[STORE], req, principal.scope, tp)
    if request.query.get("format") == "csv":
        name = f"{req.dataset}-{req.measure}.csv"
        return web.Response(
            body=to_csv(result),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return json_response(result)
