"""Domestic-sales pivots from per-firm sums that the projections answer.

Why: the plain form (``pivot.DATASETS["domestic_sales"]``) joins every paid order row
with the export-oriented firms; at 10^7 order rows that takes seconds, and no projection
answers a join. Here ClickHouse first sums the paid orders per (platform, merchant,
month label) from the projections p_firm_month and p_firm_hour (schemas.ddl migration
5), and only those sums — one row per firm and month — are joined with the firms. The
answers are the plain form's: a firm counts in ``firms_with_sales`` of a cell exactly
when it has paid orders there, i.e. when its summed count is above 0 (``HAVING n > 0``).

Which orders come from where, for a range [from, to) on whole UTC hours:

* every UTC month wholly inside the range: p_firm_month, labelled with that month;
* with a month dimension and an offset of k whole hours, the k hours at the end (k > 0)
  or the start (k < 0) of such a month lie in the next (previous) month in the caller's
  offset: one read of p_firm_hour adds them under that month and takes them off the UTC
  month's;
* the hours of a month only partly inside the range: p_firm_hour, under their own label;
* with neither bounds nor a month dimension, simply every row of p_firm_month.

Day and week dimensions, a month dimension in an offset that is not a whole hour, and
bounds off the hour return ``None``: the caller reads rows the plain way. (Per-firm
daily sums would help only where firms sell many orders a day; on the benchmark's
20,000 firms selling a few a day they are as many as the rows, and slower than the join.)
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from processors.store import ClickHouse

# The export-oriented onboarded firms, each in its latest district: as the plain form.
FIRMS = """(
    SELECT platform, firm_id, argMax(district, occurred_at) AS firm_district
    FROM onboarding_steps WHERE status = 'onboarded' AND export_oriented
    GROUP BY platform, firm_id
)"""
MONTHS_SQL = "SELECT toStartOfMonth(occurred_at) AS m, count() AS c FROM order_steps WHERE status = 'paid' GROUP BY m"
_HOUR = "toStartOfHour(occurred_at)"
# Months (their first days), each from a projection key: a UTC month itself, an hour's
# month in the caller's offset and an hour's in UTC. Formatted as pivot.TIME_DIMS["month"]
# only once summed per firm: formatting every projection row costs more than the sums.
MONTH_OF_MONTH = "toStartOfMonth(occurred_at)"
MONTH_OF_HOUR = f"toStartOfMonth({_HOUR} + toIntervalSecond({{off:Int32}}))"
MONTH_OF_HOUR_UTC = f"toStartOfMonth({_HOUR})"
DIMS = {"platform": "platform", "district": "district", "firm_id": "firm_id", "month": "formatDateTime(month, '%Y-%m')"}
MEASURES = {"gmv_fen": "sum(a)", "paid_orders": "sum(n)", "firms_with_sales": "uniqExact(firm_id)"}
TIME_DIMS = ("day", "week", "month")


def _on_the_hour(t: datetime | None) -> bool:
    if t is None:
        return True
    u = t.astimezone(UTC)
    return u.minute == 0 and u.second == 0 and u.microsecond == 0


def applies(dims: list[str], offset_seconds: int, from_: datetime | None, to: datetime | None) -> bool:
    """Whether the per-firm sums can answer exactly (else: rows, the plain way)."""
    times = {d for d in dims if d in TIME_DIMS}
    if times - {"month"} or not (_on_the_hour(from_) and _on_the_hour(to)):
        return False
    return not times or offset_seconds % 3600 == 0


def _month_start(m: date) -> datetime:
    return datetime(m.year, m.month, 1, tzinfo=UTC)


def _next_month(t: datetime) -> datetime:
    return t.replace(year=t.year + t.month // 12, month=t.month % 12 + 1)


def plan(
    months: list[date], lo: datetime, hi: datetime, offset_seconds: int, by_month: bool
) -> tuple[list[date], list[tuple[datetime, datetime]], list[tuple[datetime, datetime]]]:
    """(whole UTC months, hour ranges read under their own label, hour ranges moved to
    the neighbouring month) for the months holding paid orders and the range [lo, hi)."""
    whole: list[date] = []
    hours: list[tuple[datetime, datetime]] = []
    moved: list[tuple[datetime, datetime]] = []
    shift = timedelta(seconds=abs(offset_seconds))
    for m in sorted(months):
        start = _month_start(m)
        end = _next_month(start)
        if lo <= start and end <= hi:
            whole.append(m)
            if by_month and offset_seconds > 0:
                moved.append((end - shift, end))
            elif by_month and offset_seconds < 0:
                moved.append((start, start + shift))
        elif max(start, lo) < min(end, hi):
            hours.append((max(start, lo), min(end, hi)))
    return whole, hours, moved


def sums(label: str | None, cond: str, sign: str = "") -> str:
    """Paid orders' count and GMV per firm (and month ``label``, if any) where ``cond``."""
    lab, grp = (f"{label} AS month, ", ", month") if label else ("", "")
    agg = f"{sign}toInt64(count()) AS dn, {sign}toInt64(sum(amount_fen)) AS da"
    return f"SELECT platform, merchant_id, {lab}{agg} FROM order_steps WHERE status = 'paid' AND {cond} GROUP BY platform, merchant_id{grp}"  # noqa: S608, E501 - fixed SQL; values are bound


def moved_sums(cond: str) -> str:
    """Per firm, the hours where ``cond`` (those whose month in the caller's offset is not
    their UTC month), read once: each sum is added under the first month, taken off the second."""
    inner = (
        f"SELECT platform, merchant_id, {MONTH_OF_HOUR} AS tz_month, {MONTH_OF_HOUR_UTC} AS utc_month,"  # noqa: S608
        f" toInt64(count()) AS c, toInt64(sum(amount_fen)) AS s FROM order_steps WHERE status = 'paid' AND {cond}"
        " GROUP BY platform, merchant_id, tz_month, utc_month"
    )  # fixed SQL; values are bound
    return (
        f"SELECT platform, merchant_id, side.1 AS month, side.2 * c AS dn, side.2 * s AS da FROM ({inner})"  # noqa: S608
        " ARRAY JOIN [(tz_month, toInt64(1)), (utc_month, toInt64(-1))] AS side"
    )


def branches(
    whole: list[date], hours: list[tuple[datetime, datetime]], moved: list[tuple[datetime, datetime]], by_month: bool
) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """The per-firm sums as (SELECT, the projection that must answer it), and their
    parameters; every SELECT is one aggregation over projection keys."""
    params: dict[str, Any] = {"months": whole}
    out: list[tuple[str, str]] = []

    def ranges(name: str, spans: list[tuple[datetime, datetime]]) -> str:
        conds = []
        for i, (a, b) in enumerate(spans):
            params[f"{name}{i}a"], params[f"{name}{i}b"] = a, b
            conds.append(f"({_HOUR} >= {{{name}{i}a:DateTime('UTC')}} AND {_HOUR} < {{{name}{i}b:DateTime('UTC')}})")
        return "(" + " OR ".join(conds) + ")"

    month, hour = (MONTH_OF_MONTH, MONTH_OF_HOUR) if by_month else (None, None)
    if whole:
        out.append((sums(month, "toStartOfMonth(occurred_at) IN {months:Array(Date)}"), "p_firm_month"))
    if hours:
        out.append((sums(hour, ranges("h", hours)), "p_firm_hour"))
    if moved:
        out.append((moved_sums(ranges("m", moved)), "p_firm_hour"))
    if not out:  # no paid orders in the range
        out.append((sums(month, "0"), "p_firm_month"))
    return out, params


def source(selects: list[str], by_month: bool) -> str:
    """The FROM clause of the pivot: the per-firm sums joined with the firms."""
    month, month_col = (", month", "s.month AS month, ") if by_month else ("", "")
    union = " UNION ALL ".join(selects)
    return f"""(
        SELECT s.platform AS platform, f.firm_district AS district, s.merchant_id AS firm_id, {month_col}s.n AS n,
               s.a AS a
        FROM (
            SELECT platform, merchant_id{month}, sum(dn) AS n, sum(da) AS a FROM ({union})
            GROUP BY platform, merchant_id{month} HAVING n > 0
        ) AS s
        INNER JOIN {FIRMS} AS f ON s.platform = f.platform AND s.merchant_id = f.firm_id
    )"""  # noqa: S608 - fixed SQL; values are bound


async def firm_sums(
    ch: ClickHouse, dims: list[str], offset_seconds: int, bounds: tuple[datetime, datetime] | None
) -> tuple[str, dict[str, Any]] | None:
    """(FROM clause, its parameters) for a request that ``applies``, over [lo, hi) or,
    with no ``bounds``, all time; None when a stored time lies outside what the
    projections' Date and DateTime keys hold (bulk loads can store such; the validator
    would not)."""
    by_month = "month" in dims
    if bounds is None and not by_month:  # every firm's sum over all months: one read
        return source([sums(None, "1")], by_month=False), {}
    months: list[date] = [r["m"] for r in await ch.query(MONTHS_SQL)]
    if any(not 1970 < m.year < 2106 for m in months):
        return None
    lo, hi = bounds or (datetime(1970, 1, 1, tzinfo=UTC), datetime(2262, 1, 1, tzinfo=UTC))
    whole, hours, moved = plan(months, lo, hi, offset_seconds, by_month)
    selects, params = branches(whole, hours, moved, by_month)
    return source([s for s, _ in selects], by_month), params
