"""What one pivot request may cost, enforced inside ClickHouse (OWASP API4).

Why: a pivot's size is the product of keys the caller picks. On 100M order steps over
100,000 channels, ``rows=channel_id&cols=day`` for one day answered 100,000 rows in
11–17 s on 1.5 cores, and a month 30× that, for any token with a wide scope (issue 23).
So every pivot query

* counts its dense size — distinct row keys × distinct column keys, what the answer's
  ``cells`` matrix would hold — in the same query, with window functions over the
  grouped rows, and returns one row instead of the answer when that is over the cap for
  the format: nothing over the cap reaches Python, is shaped, encoded or written to Excel;
* carries ClickHouse limits that stop it part-way, whatever the count would say:
  ``max_execution_time``, ``max_rows_to_group_by`` (a backstop far above anything the
  cell cap lets through: it also counts the groups of the sources' subqueries, such as
  a scoped token's channel list) and ``max_memory_usage``.

A refusal names the limit, the figure and how to narrow the request, in English for
programs and in Chinese for the dashboard (``message_zh``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from api import labels as L
from processors.store import ClickHouse, StorageError

FINE_DIMS = ("channel_id", "merchant_id", "firm_id")
COARSE_DIMS = ("platform", "district", "township")


@dataclass(frozen=True)
class PivotLimits:
    """Per request. JSON feeds a screen: 50,000 cells is already more than a person reads.
    Excel is the slow format to write: 50,000 one-column rows took 2.5 s of a core (a
    thread, but the GIL's), CSV 0.2 s (loaded machine)."""

    json_cells: int = 50_000
    xlsx_cells: int = 100_000
    csv_cells: int = 200_000
    seconds: float = 10.0
    groups: int = 2_000_000
    memory_bytes: int = 2 << 30

    def cells(self, fmt: str) -> int:
        return {"csv": self.csv_cells, "xlsx": self.xlsx_cells}.get(fmt, self.json_cells)

    def settings(self, fmt: str) -> str:
        """ClickHouse settings for one pivot query (numbers from this object, never input).
        ``max_result_rows``: an answer under the cap has at most 3 rows a cell (3 statuses,
        or cells + row totals + column totals), so this only ever catches a bug."""
        return (
            f"max_execution_time = {self.seconds:g}, timeout_overflow_mode = 'throw', "
            f"max_rows_to_group_by = {self.groups}, group_by_overflow_mode = 'throw', "
            f"max_memory_usage = {self.memory_bytes}, "
            f"max_result_rows = {3 * self.cells(fmt) + 1}, result_overflow_mode = 'throw'"
        )


LIMITS = PivotLimits()


def bounded(sql: str, rows: Sequence[str], cols: Sequence[str], is_cell: str, cap: int, settings: str) -> str:
    """``sql`` (a grouped query) answering its rows only when at most ``cap`` cells: else
    exactly one row, whose ``_rows``/``_cols`` are the distinct row and column keys
    among the rows where ``is_cell`` (fixed SQL). ``rows``/``cols``: the key aliases."""

    def keys(aliases: Sequence[str]) -> str:
        return f"uniqExactIf(tuple({', '.join(aliases)}), {is_cell}) OVER ()" if aliases else "toUInt64(1)"

    return f"""
        SELECT * FROM (
            SELECT *, {keys(rows)} AS _rows, {keys(cols)} AS _cols, row_number() OVER () AS _n FROM ({sql})
        ) WHERE greatest(_rows, 1) * greatest(_cols, 1) <= {int(cap)} OR _n = 1
        SETTINGS {settings}
    """  # noqa: S608 - fixed SQL and numbers from PivotLimits


class PivotRefused(Exception):
    """A pivot over a limit: ``status`` 400 (narrow it) or 503 (timed out: narrow or retry)."""

    def __init__(self, status: int, code: str, limit: str, maximum: float, estimate: int | None,
                 message: str, message_zh: str) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.code, self.message, self.message_zh = status, code, message, message_zh
        self.limit: dict[str, Any] = {"name": limit, "max": maximum, "estimate": estimate}


@dataclass(frozen=True)
class Shape:
    """What a refusal needs to know of a request: its row and column dimensions, what else
    its dataset offers (for the hints), and the format asked."""

    rows: Sequence[str]
    cols: Sequence[str]
    available: Collection[str]
    fmt: str

    @property
    def dims(self) -> list[str]:
        return [*self.rows, *self.cols]


async def limited_query(
    ch: ClickHouse,
    sql: str,
    params: Mapping[str, Any],
    shape: Shape,
    limits: PivotLimits,
    is_cell: str = "1",
    settings: str = "",
) -> list[dict[str, Any]]:
    """The rows of ``sql``, a grouped query whose keys are ``d0, d1, …`` (rows, then
    columns), once ClickHouse has counted that they fit the cap; else PivotRefused.
    ``is_cell``: fixed SQL true on the rows that are cells (not totals); ``settings``:
    more of the query's own, e.g. ``group_by_use_nulls = 1``."""
    aliases = [f"d{i}" for i in range(len(shape.dims))]
    nr, cap = len(shape.rows), limits.cells(shape.fmt)
    wrapped = bounded(sql, aliases[:nr], aliases[nr:], is_cell, cap,
                      limits.settings(shape.fmt) + (f", {settings}" if settings else ""))  # fmt: skip
    try:
        rows = await ch.query(wrapped, params)
    except StorageError as exc:
        refused = from_clickhouse(str(exc), shape, limits)
        if refused is None:
            raise
        raise refused from None
    if rows:
        n_rows, n_cols = max(1, int(rows[0]["_rows"])), max(1, int(rows[0]["_cols"]))
        if n_rows * n_cols > cap:
            raise too_many_cells(shape, limits, n_rows, n_cols)
    return rows


def _hints(shape: Shape) -> tuple[list[str], list[str]]:
    """(English, Chinese) ways to narrow this request; the API has no other filter than
    from/to and the token's scope, so: time range, coarser time, coarser key, fewer keys."""
    en, zh = ["a shorter from/to range"], ["缩短时间范围"]
    if "day" in shape.dims:
        en.append("week or month instead of day")
        zh.append("改用按周或按月汇总")
    elif "week" in shape.dims:
        en.append("month instead of week")
        zh.append("改用按月汇总")
    fine = [d for d in shape.dims if d in FINE_DIMS]
    coarse = [d for d in COARSE_DIMS if d in shape.available and d not in shape.dims]
    if fine and coarse:
        en.append(f"{_either(coarse, ', ', ' or ')} instead of {fine[0]}")
        zh.append(f"改用{_either([L.dimension_name(d) for d in coarse], '、', '或')}代替{L.dimension_name(fine[0])}")
    if len(shape.dims) > 1:
        en.append("fewer dimensions")
        zh.append("减少维度")
    return en, zh


def _either(items: Sequence[str], sep: str, last: str) -> str:
    """``a, b or c``: the items as alternatives."""
    return sep.join(items[:-1]) + (last if len(items) > 1 else "") + items[-1]


def _advice(shape: Shape, limits: PivotLimits, cells: int | None) -> tuple[str, str]:
    en, zh = _hints(shape)
    text_en, text_zh = "narrow it: " + _either(en, "; ", "; or "), "请" + _either(zh, "，", "，或")
    if cells is not None and shape.fmt != "csv" and cells <= limits.csv_cells:
        text_en += f"; or ask format=csv (up to {limits.csv_cells:,} cells)"
        text_zh += f"；也可下载 CSV（上限 {limits.csv_cells:,} 个单元格）"
    return text_en, text_zh + "。"


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def too_many_cells(shape: Shape, limits: PivotLimits, rows: int, cols: int) -> PivotRefused:
    cells, cap = rows * cols, limits.cells(shape.fmt)
    en, zh = _advice(shape, limits, cells)
    return PivotRefused(
        400, "too_large", "cells", cap, cells,
        f"pivot too large: {_n(rows, 'row')} × {_n(cols, 'column')} = {cells:,} cells, over the limit of "
        f"{cap:,} cells per {shape.fmt} request; {en}",
        f"结果过大：{rows:,} 行 × {cols:,} 列 = {cells:,} 个单元格，超过每次查询的上限 {cap:,} 个。{zh}",
    )  # fmt: skip


# ClickHouse's error names (in the message of the StorageError it raised) -> our limit
_GROUPS, _RESULT = "(TOO_MANY_ROWS)", "(TOO_MANY_ROWS_OR_BYTES)"
_TIMEOUT, _MEMORY = "(TIMEOUT_EXCEEDED)", "(MEMORY_LIMIT_EXCEEDED)"


def from_clickhouse(error: str, shape: Shape, limits: PivotLimits) -> PivotRefused | None:
    """The refusal for a query ClickHouse stopped at one of our limits; None for any other
    failure (storage down, the server short of memory as a whole: 503 as before)."""
    en, zh = _advice(shape, limits, None)
    if _GROUPS in error or _RESULT in error:
        return PivotRefused(
            400, "too_large", "groups", limits.groups, None,
            f"pivot too large: more than {limits.groups:,} groups to compute, the limit per request; {en}",
            f"结果过大：需要计算的分组超过每次查询的上限 {limits.groups:,} 个。{zh}",
        )  # fmt: skip
    if _MEMORY in error and "total" not in error.lower():  # "Query memory limit exceeded", not the server's
        mib = limits.memory_bytes >> 20
        return PivotRefused(
            400, "too_large", "memory", limits.memory_bytes, None,
            f"pivot too large: it needs more than {mib:,} MiB, the limit per request; {en}",
            f"结果过大：所需内存超过每次查询的上限 {mib:,} MiB。{zh}",
        )  # fmt: skip
    if _TIMEOUT in error:
        return PivotRefused(
            503, "timeout", "seconds", limits.seconds, None,
            f"pivot took longer than {limits.seconds:g} s, the limit per request; {en}; or retry later",
            f"查询超时：超过每次查询的时限 {limits.seconds:g} 秒。{zh.removesuffix('。')}；也可稍后重试。",
        )  # fmt: skip
    return None
