"""A token's scope as a SQL condition with bound parameters, applied inside every query.

Onboarding and domestic sales are scoped by district only (contract §6: a district or
township scope sees the onboarding and domestic-sales data of its district).

Orders are scoped *by their channel*: one channel, one answer (docs/DESIGN.md,
"Channels"). A channel's place — platform, district, township — is its registry entry's
(``channels_current``) when it has one, else that of its **earliest order event** (least
``occurred_at``; ties: the least ``(district, township, platform)``). A scoped token sees
a channel, on its pages, in the list, on the live screen, in the region overview and in
orders pivots, exactly when that place is inside its scope, and then sees all of that
channel's orders, whatever region a single order carries. The earliest order is used,
not the latest, so that a channel does not move out of a township's sight in the middle
of a sale; only a late-arriving earlier order (or a registry entry) can move it.
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


def in_scope(scope: Scope, district: str, township: str) -> bool:
    """``region_condition`` in Python, for a place already read."""
    if scope.is_all:
        return True
    return district == scope.district and (scope.township is None or township == scope.township)


# One row per channel known from its registry entry, its orders or its stream stats, in
# one aggregation over a UNION ALL (no joins): src 1 = registry, 2 = orders, 3 = stream
# stats; ``live`` is membership in {live_ids} (LIVE_IDS_SQL). The orders branch is answered
# from the p_channel projection (grouped by channel, place and status), the registry
# from channels_current; ``{where}`` (a fixed condition on channel_id, e.g. one channel)
# is applied inside every branch so that the primary keys prune.
_CHANNEL_ROWS = """
    SELECT channel_id,
        argMinIf(platform, src, src <= 3) AS platform,
        argMinIf(district, src, src <= 2) AS district,
        argMinIf(township, src, src <= 2) AS township,
        anyIf(title, src = 1) AS title, anyIf(host, src = 1) AS host,
        anyIf(scheduled_start, src = 1) AS scheduled_start, anyIf(scheduled_end, src = 1) AS scheduled_end,
        sum(paid) AS paid_orders, sum(gmv) AS gmv_fen, min(first_at) AS first_at, max(last_at) AS last_at,
        channel_id IN {{live_ids:Array(String)}} AS live
    FROM (
        SELECT toString(channel_id) AS channel_id, toUInt8(1) AS src, toString(platform) AS platform,
               toString(district) AS district, toString(township) AS township,
               CAST(title AS Nullable(String)) AS title, host, scheduled_start, scheduled_end,
               toUInt64(0) AS paid, toUInt64(0) AS gmv,
               CAST(NULL AS Nullable(DateTime64(3, 'UTC'))) AS first_at,
               CAST(NULL AS Nullable(DateTime64(3, 'UTC'))) AS last_at
        FROM channels_current WHERE {where}
        UNION ALL
        SELECT channel_id, 2, place.1, place.2, place.3, NULL, NULL, NULL, NULL, paid, gmv, first_at, last_at
        FROM (
            SELECT channel_id,
                   argMin(tuple(platform, district, township), tuple(f, district, township, platform)) AS place,
                   sumIf(n, status = 'paid') AS paid, sumIf(a, status = 'paid') AS gmv,
                   min(f) AS first_at, max(l) AS last_at
            FROM (
                SELECT toString(channel_id) AS channel_id, toString(platform) AS platform,
                       toString(district) AS district, toString(township) AS township, status,
                       count() AS n, sum(amount_fen) AS a, min(occurred_at) AS f, max(occurred_at) AS l
                FROM order_steps WHERE {where}
                GROUP BY channel_id, platform, district, township, status
            )
            GROUP BY channel_id
        )
        UNION ALL
        SELECT toString(channel_id), 3, toString(any(platform)), '', '', NULL, NULL, NULL, NULL, 0, 0,
               min(occurred_at), max(occurred_at)
        FROM stream_stats WHERE {where} GROUP BY channel_id
    )
    GROUP BY channel_id
"""

# The channels with a row stored since {live_since} (contract §3: live). A query of its
# own: inside the union above it cost ~6x its ~15 ms alone (2M-row benchmark store).
LIVE_IDS_SQL = """
    SELECT DISTINCT toString(channel_id) AS channel_id FROM order_steps
    WHERE stored_at >= {live_since:DateTime64(3, 'UTC')}
    UNION DISTINCT
    SELECT DISTINCT toString(channel_id) FROM stream_stats WHERE stored_at >= {live_since:DateTime64(3, 'UTC')}
"""

# the status of contract §3, from a channel row (bound {now})
STATUS_SQL = (
    "multiIf(live, 'live', scheduled_start IS NOT NULL AND scheduled_start > {now:DateTime64(3, 'UTC')},"
    " 'scheduled', 'ended')"
)


def channel_rows(where: str = "1") -> str:
    """SQL of one row per channel: place, registry fields, paid totals, first/last event
    time (orders and stream stats: the last is the channel's clock) and ``live``.
    Needs ``{live_ids}``; ``where`` is fixed SQL over ``channel_id`` (parameters bound)."""
    return _CHANNEL_ROWS.format(where=where)


def channel_scope(scope: Scope) -> tuple[str, dict[str, Any]]:
    """A condition on ``channel_id`` keeping the channels whose place is inside ``scope``
    (for queries over order rows, e.g. pivots); ``"1"`` for the unscoped token."""
    if scope.is_all:
        return "1", {}
    cond, params = region_condition(scope, "p.district", "p.township")
    sql = f"""channel_id IN (
        SELECT p.channel_id FROM (
            SELECT channel_id,
                   if(countIf(src = 1) > 0, anyIf(district, src = 1), argMinIf(district, k, src = 2)) AS district,
                   if(countIf(src = 1) > 0, anyIf(township, src = 1), argMinIf(township, k, src = 2)) AS township
            FROM (
                SELECT toString(channel_id) AS channel_id, toUInt8(1) AS src, toString(district) AS district,
                       toString(township) AS township,
                       tuple(toDateTime64(0, 3, 'UTC'), '', '', '') AS k
                FROM channels_current
                UNION ALL
                SELECT toString(channel_id), 2, toString(district), toString(township),
                       tuple(min(occurred_at), toString(district), toString(township), toString(platform))
                FROM order_steps GROUP BY channel_id, platform, district, township
            )
            GROUP BY channel_id
        ) AS p WHERE {cond}
    )"""  # noqa: S608 - fixed SQL; the scope is bound parameters
    return sql, params
