"""The OpenAPI 3.1 document, built from the same whitelists the handlers use.

Dimension and measure enums come from ``api.queries.pivot.DATASETS``; a test walks the
app's router and fails when a route is missing here, and validates real responses
against the response schemas below, so the document cannot drift from the code.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.queries.pivot import DATASETS
from api.responses import json_response

_INT = {"type": "integer"}
_NINT = {"type": ["integer", "null"]}
_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}


def _obj(props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(props), "properties": props, "additionalProperties": False}


ERROR = _obj({"error": _obj({"code": _STR, "message": _STR})})
# A pivot over a limit (api.queries.pivot_limits): code too_large (400) or timeout (503),
# the limit with its figure, and the message in Chinese for screens; not required, as a
# bad parameter's 400 has neither.
_LIMIT = _obj({
    "name": {"enum": ["cells", "groups", "memory", "seconds"]}, "max": {"type": "number"},
    "estimate": {"type": ["integer", "null"], "description": "the request's cells, when counted"},
})  # fmt: skip
_PIVOT_ERROR = _obj({"code": _STR, "message": _STR, "message_zh": _STR, "limit": _LIMIT})
PIVOT_ERROR = _obj({"error": {**_PIVOT_ERROR, "required": ["code", "message"]}})
CHANNEL = _obj({
    "channel_id": _STR, "platform": _STR, "district": _NSTR, "township": _NSTR, "paid_orders": _INT,
    "gmv_fen": _INT, "first_event_at": _TIME, "last_event_at": _TIME,
    "title": _NSTR, "host": _NSTR, "status": {"enum": ["scheduled", "live", "ended"]},
    "scheduled_start": _TIME, "scheduled_end": _TIME,
})  # fmt: skip
MINUTE = _obj({
    "minute": {"type": "string", "format": "date-time"}, "paid_orders": _INT, "gmv_fen": _INT, "units": _INT,
    "weight_g": _INT, "created_orders": _INT, "refunded_orders": _INT, "refund_fen": _INT,
    "views_total": _NINT, "viewers_peak": _NINT,
})  # fmt: skip
MINUTES = _obj({"channel_id": _STR, "tz": _STR, "minutes": {"type": "array", "items": MINUTE}})
SUMMARY = _obj({
    "channel_id": _STR, "platform": _STR, "district": _NSTR, "township": _NSTR, "paid_orders": _INT,
    "gmv_fen": _INT, "units": _INT, "weight_g": _INT, "created_orders": _INT, "refunded_orders": _INT,
    "refund_fen": _INT, "net_gmv_fen": _INT, "views_total": _NINT, "viewers_peak": _NINT,
    "first_paid_at": _TIME, "last_paid_at": _TIME, "avg_order_fen": _NINT,
    "seconds_per_order": {"type": ["number", "null"]},
    "title": _NSTR, "host": _NSTR, "status": {"enum": ["scheduled", "live", "ended"]}, "scheduled_end": _TIME,
    "projected_paid_orders": _NINT, "projected_gmv_fen": _NINT,
    "gpm_fen": {**_NINT, "description": "千次观看成交: round(gmv_fen × 1000 / views_total), half up; null without"
                " views"},
    "viewers_avg": {**_NINT, "description": "平均在线: mean of the viewers_online samples, half up; null without any"},
    "refund_rate": {"type": ["number", "null"], "minimum": 0,
                    "description": "退款率: refunded_orders / paid_orders, 4 decimals; null with no paid order"},
    "top_skus": {"type": "array", "maxItems": 10,
                 "items": _obj({"sku": _STR, "name": _STR, "units": _INT, "gmv_fen": _INT})},
})  # fmt: skip
_KEY = {"type": "array", "items": {"type": ["string", "boolean"]}}
PIVOT = _obj({
    "dataset": {"enum": list(DATASETS)}, "measure": _STR,
    "rows": {"type": "array", "items": _STR}, "cols": {"type": "array", "items": _STR},
    "row_keys": {"type": "array", "items": _KEY}, "col_keys": {"type": "array", "items": _KEY},
    "cells": {"type": "array", "items": {"type": "array", "items": _INT}},
    "row_totals": {"type": "array", "items": _INT}, "col_totals": {"type": "array", "items": _INT},
    "total": _INT,
})  # fmt: skip
PIVOT["properties"]["labels"] = {  # v1.1: only with firm_id among the dimensions, so not required
    "type": "object", "description": "display names of keys: {\"firm_id\": {\"<id>\": \"<firm_name>\"}}",
    "additionalProperties": {"type": "object", "additionalProperties": _STR},
}  # fmt: skip
ALERT = _obj({
    "rule": {"enum": ["silence", "refund_spike", "pace_drop"]}, "state": {"enum": ["firing", "cleared"]},
    "since": {"type": "string", "format": "date-time"}, "until": _TIME, "message": _STR,
})  # fmt: skip
ALERTS = _obj({"channel_id": _STR, "alerts": {"type": "array", "items": ALERT}})
_NAMES = {"type": "object", "additionalProperties": _STR}
LABELS = _obj({
    "platforms": _NAMES, "dimensions": _NAMES, "measures": _NAMES, "figures": _NAMES, "datasets": _NAMES,
    "rules": _NAMES,
    "statuses": _NAMES, "booleans": _NAMES, "total": _STR, "scaled": {"type": "object", "additionalProperties": _INT},
})  # fmt: skip
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
INGEST = _obj({
    "accepted": _INT,
    "rejected": {"type": "array", "items": _obj({"index": _INT, "code": _STR, "message": _STR})},
})  # fmt: skip
IMPORTED = _obj({
    "accepted": _INT, "duplicates": _INT,
    "rejected": {"type": "array", "items": _obj({"row": _INT, "column": _NSTR, "code": _STR, "message": _STR})},
})  # fmt: skip
CONNECTORS = _obj({"connectors": {"type": "array", "items": _obj({
    "platform": _STR, "shop_id": _STR, "last_push_at": _TIME, "pushes": _INT, "bad_signatures": _INT,
    "last_reconciled_to": _TIME, "recovered_steps": _INT, "last_error": _NSTR, "last_error_at": _TIME,
})}})  # fmt: skip
STATUS = {"type": "object", "properties": {"status": _STR}}
REGION = _obj({
    "district": _STR, "township": _NSTR, "channels": _INT, "live_channels": _INT, "paid_orders": _INT,
    "gmv_fen": _INT, "weight_g": _INT, "refund_fen": _INT,
    "top_channels": {"type": "array", "maxItems": 10,
                     "items": _obj({"channel_id": _STR, "title": _NSTR, "paid_orders": _INT, "gmv_fen": _INT})},
})  # fmt: skip
REGIONS = _obj({"level": {"enum": ["township", "district"]}, "regions": {"type": "array", "items": REGION}})
CHANNEL_LIST = _obj({"channels": {"type": "array", "items": CHANNEL}, "next_cursor": _NSTR})


def _q(name: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


TIME_PARAMS = [
    _q("from", {"type": "string", "format": "date-time"}, "inclusive start, RFC 3339 with offset"),
    _q("to", {"type": "string", "format": "date-time"}, "exclusive end, RFC 3339 with offset"),
    _q("tz", {"type": "string", "pattern": r"^[+-](0\d|1[0-4]):[0-5]\d$", "default": "+08:00"},
       "offset in which minutes, days, weeks and months are shown"),
]  # fmt: skip
LIST_PARAMS = [
    _q("platform", _STR, "only channels on this platform (slug)"),
    _q("district", _STR, "only channels placed in this district (registry region, else earliest order's)"),
    _q("township", _STR, "only channels placed in this township"),
    _q("status", {"enum": ["scheduled", "live", "ended"]}, "only channels in this status (contract §3)"),
    _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "page size"),
    _q("cursor", _STR, "opaque: next_cursor of the previous page"),
]  # fmt: skip
CHANNEL_PARAM = {"name": "channel_id", "in": "path", "required": True, "schema": {"type": "string"}}
ALL_DIMS = sorted({d for ds in DATASETS.values() for d in ds.dims})
ALL_MEASURES = sorted({m for ds in DATASETS.values() for m in ds.measures})


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _json(ERROR, "error") for c in codes}


def _op(summary: str, ok: dict[str, Any], params: list[dict[str, Any]], errors: tuple[int, ...],
        secured: bool = True) -> dict[str, Any]:  # fmt: skip
    op: dict[str, Any] = {"summary": summary, "parameters": params, "responses": {"200": ok, **_errors(*errors)}}
    if not secured:
        op["security"] = []
    return op


def build_spec() -> dict[str, Any]:
    authed = (400, 401, 429)
    pivot_params = [
        _q("dataset", {"enum": list(DATASETS)}, "what to pivot", required=True),
        _q("rows", {"type": "string"}, f"0-2 comma-separated dimensions of: {', '.join(ALL_DIMS)} (per dataset)"),
        _q("cols", {"type": "string"}, "0-2 comma-separated dimensions, as rows"),
        _q("measure", {"enum": ALL_MEASURES}, "per dataset; " + "; ".join(
            f"{name}: {', '.join(ds.measures)}" for name, ds in DATASETS.items())),
        _q("format", {"enum": ["json", "csv", "xlsx"], "default": "json"},
           "csv is UTF-8 with a BOM; xlsx is an Excel workbook with Chinese headers, yuan/kg and totals"),
        *TIME_PARAMS,
    ]  # fmt: skip
    pivot_ok = _json(PIVOT)
    pivot_ok["content"]["text/csv"] = {"schema": {"type": "string"}}
    pivot_ok["content"][XLSX] = {"schema": {"type": "string", "format": "binary"}}
    pivot_op = _op("pivot a dataset; a request over what one may cost (cells per format, seconds, groups, "
                   "memory) answers too_large (400) or timeout (503), naming the limit and how to narrow it",
                   pivot_ok, pivot_params, authed)  # fmt: skip
    pivot_op["responses"] |= {
        "400": _json(PIVOT_ERROR, "a bad parameter, or over a limit"),
        "503": _json(PIVOT_ERROR, "timed out, or storage unavailable"),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "livesales", "version": "1", "description": "Live-stream sales, exactly counted."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {"get": _op("the process lives", _json(STATUS), [], (), secured=False)},
            "/readyz": {"get": _op("consumers subscribed and storage open", _json(STATUS), [], (503,),
                                   secured=False)},
            "/metrics": {"get": _op("Prometheus metrics",
                                    {"description": "OK", "content": {"text/plain": {"schema": _STR}}}, [], (),
                                    secured=False)},
            "/v1/openapi.json": {"get": _op("this document", _json({"type": "object"}), [], (), secured=False)},
            "/v1/channels": {"get": _op(
                "channels in the token's scope, the most recently active first (registry-only last), "
                "ties by channel_id; from/to keep channels with an order or stream-stats event in the range "
                "or a schedule overlapping it", _json(CHANNEL_LIST), [*LIST_PARAMS, *TIME_PARAMS], authed)},
            "/v1/regions": {"get": _op(
                "per township (or district) in the token's scope: channels, live ones, sales in the range and "
                "the ten channels with the highest GMV; regions ranked by GMV", _json(REGIONS),
                [_q("level", {"enum": ["township", "district"], "default": "township"}, "what a region is"),
                 *TIME_PARAMS], authed)},
            "/v1/channels/{channel_id}/minutes": {"get": _op(
                "per-minute counts of one channel", _json(MINUTES), [CHANNEL_PARAM, *TIME_PARAMS], (*authed, 404))},
            "/v1/channels/{channel_id}/summary": {"get": _op(
                "running totals of one channel", _json(SUMMARY), [CHANNEL_PARAM, *TIME_PARAMS[2:]],
                (*authed, 404))},
            "/v1/channels/{channel_id}/live": {"get": _op(
                "Server-Sent Events: 'update' events carrying {summary, minutes} whenever the channel changes",
                {"description": "event stream", "content": {"text/event-stream": {"schema": _STR}}},
                [CHANNEL_PARAM, *TIME_PARAMS[2:]], (*authed, 404, 503))},
            "/v1/pivot": {"get": pivot_op},
            "/v1/channels/{channel_id}/alerts": {"get": _op(
                "alert episodes of one channel along its clock, newest first (at most 100)", _json(ALERTS),
                [CHANNEL_PARAM, *TIME_PARAMS[2:]], (*authed, 404))},
            "/v1/labels": {"get": _op("display names of platforms, dimensions and measures", _json(LABELS), [],
                                      (401, 429))},
            "/v1/events": {"post": {
                **_op("validate and publish events (token with ingest)", _json(INGEST), [],
                      (400, 401, 403, 413, 429, 503)),
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                    "application/x-ndjson": {"schema": _STR}}},
            }},
            "/v1/connectors": {"get": _op(
                "platform connectors (contract §7), scope all only: each shop's pushes, bad signatures, "
                "reconciliation watermark, recovered steps and last error", _json(CONNECTORS), [], (401, 403, 429))},
            "/v1/onboarding/import": {"post": {
                **_op("import onboarded firms from a spreadsheet (token with ingest): each row one onboarding.v1 "
                      "event with an id from its content, so a second upload adds nothing (duplicates); rows "
                      "numbered as the spreadsheet numbers them", _json(IMPORTED), TIME_PARAMS[2:],
                      (400, 401, 403, 413, 429, 503)),
                "requestBody": {"required": True, "content": {
                    XLSX: {"schema": {"type": "string", "format": "binary"}},
                    "text/csv": {"schema": _STR}}},
            }},
        },
    }  # fmt: skip


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(build_spec())
