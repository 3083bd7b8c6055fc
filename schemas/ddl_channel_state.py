"""Migration 5: per-channel state and per-minute channel activity, kept by materialized
views (api.queries.channel_list, api.queries.regions and api.channel_snapshot read them).

Its own file because it is half of the DDL: the state table's columns, the views that
fill them from each source table, and the backfill of rows stored before the views.
"""

from __future__ import annotations

from schemas.migration import DEDUP as _DEDUP
from schemas.migration import Migration

# Migration 5's per-channel state: the sentinels a view leaves in the columns it does not
# fill (never the min/max of a real event), and per source table and target the columns
# filled and one SELECT, both a materialized view and the backfill of rows stored before it.
_STATE_MIN_TIME = "toDateTime64('1900-01-01 00:00:00', 3, 'UTC')"
_STATE_MAX_TIME = "toDateTime64('2299-12-31 23:59:59.999', 3, 'UTC')"
_ORDER_SUMS = """
    countIf(status = 'paid') AS paid_orders, sumIf(amount_fen, status = 'paid') AS gmv_fen,
    sumIf(weight_g, status = 'paid') AS paid_weight_g, sumIf(amount_fen, status = 'refunded') AS refund_fen
"""
_STATE_VIEWS: tuple[tuple[str, str, str, str], ...] = (
    (
        "channel_state_orders_mv",
        "channel_state",
        "channel_id, order_rows, first_order, paid_orders, gmv_fen, paid_weight_g, refund_fen, first_at, last_at,"
        " last_stored",
        f"""SELECT toString(channel_id) AS channel_id, count() AS order_rows,
               min(tuple(occurred_at, toString(district), toString(township), toString(platform))) AS first_order,
               {_ORDER_SUMS},
               min(occurred_at) AS first_at, max(occurred_at) AS last_at, max(stored_at) AS last_stored
            FROM order_steps GROUP BY channel_id""",  # noqa: S608 - fixed SQL
    ),
    (
        "channel_state_stats_mv",
        "channel_state",
        "channel_id, stats_platform, first_at, last_at, last_stored",
        """SELECT toString(channel_id) AS channel_id, max(toString(platform)) AS stats_platform,
               min(occurred_at) AS first_at, max(occurred_at) AS last_at, max(stored_at) AS last_stored
            FROM stream_stats GROUP BY channel_id""",
    ),
    (
        "channel_state_registry_mv",
        "channel_state",
        "channel_id, registered, registry",
        """SELECT channel_id, toUInt8(1) AS registered,
               max(tuple(occurred_at, event_id, toString(platform), title, host, toString(district),
                         toString(township), scheduled_start, scheduled_end)) AS registry
            FROM channel_registry GROUP BY channel_id""",
    ),
    (
        "channel_minutes_orders_mv",
        "channel_minutes",
        "minute, channel_id, first_at, last_at, paid_orders, gmv_fen, paid_weight_g, refund_fen",
        f"""SELECT toStartOfMinute(occurred_at) AS minute, toString(channel_id) AS channel_id,
               min(occurred_at) AS first_at, max(occurred_at) AS last_at, {_ORDER_SUMS}
            FROM order_steps GROUP BY minute, channel_id""",  # noqa: S608 - fixed SQL
    ),
    (
        "channel_minutes_stats_mv",
        "channel_minutes",
        "minute, channel_id, first_at, last_at",
        """SELECT toStartOfMinute(occurred_at) AS minute, toString(channel_id) AS channel_id,
               min(occurred_at) AS first_at, max(occurred_at) AS last_at
            FROM stream_stats GROUP BY minute, channel_id""",
    ),
)

CHANNEL_STATE = Migration(  # arguments indented as in the tuple it came from: the SQL text is unchanged
        5,
        "per-channel state and per-minute channel activity, kept by materialized views",
        (
            # One row per channel once merged (AggregatingMergeTree of simple aggregates, so
            # any number of unmerged rows of a channel fold with the same functions at
            # read time): what GET /v1/channels and /v1/regions show, kept as rows are
            # stored instead of aggregated from every order row per request. Each source
            # table's view fills its own columns; the others take their defaults, chosen
            # so that they never win the fold (min/max sentinels, 0, NULL). 128-row
            # granules: a page's 100 channels, scattered over the key, read ~100 granules.
            f"""
            CREATE TABLE IF NOT EXISTS channel_state (
                channel_id    String,
                -- the latest registry entry: max by (occurred_at, event_id), as channels_current
                registered    SimpleAggregateFunction(max, UInt8),
                registry      SimpleAggregateFunction(max, Tuple(
                                  occurred_at DateTime64(3, 'UTC'), event_id String, platform String,
                                  title String, host Nullable(String), district String, township String,
                                  scheduled_start Nullable(DateTime64(3, 'UTC')),
                                  scheduled_end Nullable(DateTime64(3, 'UTC'))))
                              DEFAULT ({_STATE_MIN_TIME}, '', '', '', NULL, '', '', NULL, NULL),
                -- the earliest order: min by (occurred_at, district, township, platform),
                -- the place rule of api.queries.scope
                order_rows    SimpleAggregateFunction(sum, UInt64),
                first_order   SimpleAggregateFunction(min, Tuple(
                                  occurred_at DateTime64(3, 'UTC'), district String, township String,
                                  platform String))
                              DEFAULT ({_STATE_MAX_TIME}, '', '', ''),
                paid_orders   SimpleAggregateFunction(sum, UInt64),
                gmv_fen       SimpleAggregateFunction(sum, UInt64),
                paid_weight_g SimpleAggregateFunction(sum, UInt64),
                refund_fen    SimpleAggregateFunction(sum, UInt64),
                stats_platform SimpleAggregateFunction(max, String),
                -- orders and stream stats: first and last event time, last storage time (live)
                first_at      SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
                last_at       SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC'))),
                last_stored   SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC')))
            ) ENGINE = AggregatingMergeTree
            ORDER BY channel_id
            SETTINGS {_DEDUP}, index_granularity = 128
            """,
            # Per channel and minute with an order or stream-stats event: first and last
            # event time and the order sums, so "channels with events in [from, to)" and
            # a range's sums read the range's minutes, not every order row.
            f"""
            CREATE TABLE IF NOT EXISTS channel_minutes (
                minute        DateTime('UTC'),
                channel_id    String,
                first_at      SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
                last_at       SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
                paid_orders   SimpleAggregateFunction(sum, UInt64),
                gmv_fen       SimpleAggregateFunction(sum, UInt64),
                paid_weight_g SimpleAggregateFunction(sum, UInt64),
                refund_fen    SimpleAggregateFunction(sum, UInt64)
            ) ENGINE = AggregatingMergeTree
            ORDER BY (minute, channel_id)
            SETTINGS {_DEDUP}
            """,
            # The views read the stored tables (not the *_in ones), so every way rows are
            # stored feeds them; a block the dedup token drops feeds nothing. The same
            # SELECTs then backfill what was stored before the views existed. (Rows
            # stored by another process between a view's creation and the backfill would
            # count twice: upgrade with the writers stopped; `livesales run` migrates
            # before it consumes.)
            *(f"CREATE MATERIALIZED VIEW IF NOT EXISTS {v} TO {t} AS {sql}" for v, t, _, sql in _STATE_VIEWS),
            *(f"INSERT INTO {t} ({cols}) {sql}" for _, t, cols, sql in _STATE_VIEWS),
        ),
    )
