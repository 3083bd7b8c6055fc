"""A token's scope as a SQL condition with bound parameters, applied inside every query.

Orders and channels are scoped by their own district and township; onboarding and
domestic sales by district only (contract §6: a district or township scope sees the
onboarding and domestic-sales data of its district).
"""

from __future__ import annotations

from typing import Any

from api.auth import Scope


def region_condition(scope: Scope, district_col: str, township_col: str | None) -> tuple[str, dict[str, Any]]:
    """``(sql, params)``; column names come from the callers' fixed SQL, never from input."""
    if scope.is_all:
        return "1", {}
    sql = f"{district_col} = {{scope_district:String}}"
    params: dict[str, Any] = {"scope_district": scope.district}
    if township_col is not None and scope.township is not None:
        sql += f" AND {township_col} = {{scope_township:String}}"
        params["scope_township"] = scope.township
    return sql, params
