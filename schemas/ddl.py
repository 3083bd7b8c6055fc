"""ClickHouse DDL, as an ordered list of migrations applied once each.

Design (docs/DESIGN.md has the long form): every counted fact is one row, written once.
The writer decides "new or seen" before inserting (processors.dedupe), so tables are
plain MergeTrees and every aggregate is a GROUP BY over them; nothing is pre-summed that
a lost or doubled block could skew. Tables are unpartitioned so that one insert is one
part, which ClickHouse commits atomically.

``step_hash``/``event_hash`` are XXH3-64 hashes of the dedupe keys, computed by
ClickHouse on insert and, identically, by Python (processors.keys); they feed the
in-memory Bloom filters at start-up; on order_steps the projection indexes of migration
16 (before it, bloom_filter skip indexes, dropped by migration 17) make "is this key
stored?" look-ups cheap.
"""

from __future__ import annotations

from schemas.ddl_channel_state import CHANNEL_STATE
from schemas.ddl_connectors import CONNECTORS
from schemas.ddl_notify import NOTIFICATIONS
from schemas.ddl_v12 import V12
from schemas.ddl_v13 import V13
from schemas.ddl_v14 import V14
from schemas.ddl_v15 import V15
from schemas.ddl_v16 import V16
from schemas.ddl_v17 import V17
from schemas.migration import COMPRESS_BLOCK_BYTES, STORED_TABLES, VERTICAL_MERGE_SETTINGS, Migration
from schemas.migration import DEDUP as _DEDUP

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "order steps, onboarding steps, stream stats",
        (
            f"""
            CREATE TABLE IF NOT EXISTS order_steps (
                step_hash      UInt64,
                event_hash     UInt64,
                event_id       String,
                platform       LowCardinality(String),
                order_id       String,
                status         Enum8('created' = 1, 'paid' = 2, 'refunded' = 3),
                occurred_at    DateTime64(3, 'UTC'),
                minute         DateTime('UTC') MATERIALIZED toStartOfMinute(occurred_at),
                channel_id     LowCardinality(String),
                merchant_id    String,
                district       LowCardinality(String),
                township       LowCardinality(String),
                amount_fen     UInt64,
                units          UInt64,
                weight_g       UInt64,
                `items.sku`            Array(String),
                `items.name`           Array(String),
                `items.quantity`       Array(UInt32),
                `items.unit_price_fen` Array(UInt64),
                `items.weight_g`       Array(UInt32),
                stored_at      DateTime64(3, 'UTC') DEFAULT now64(3),
                INDEX ix_step  step_hash  TYPE bloom_filter(0.001) GRANULARITY 1,
                INDEX ix_event event_hash TYPE bloom_filter(0.001) GRANULARITY 1,
                -- per-minute sums, stored in the same part as the rows (so written
                -- atomically with them); the minutes and summary queries read these
                PROJECTION p_minute (
                    SELECT channel_id, minute, district, township, status, count(), sum(amount_fen),
                           sum(units), sum(weight_g), min(occurred_at), max(occurred_at)
                    GROUP BY channel_id, minute, district, township, status
                ),
                -- hourly sums by region and platform for the bureau's pivots
                PROJECTION p_hour (
                    SELECT platform, district, township, status, toStartOfHour(occurred_at), count(),
                           sum(amount_fen), sum(units), sum(weight_g)
                    GROUP BY platform, district, township, status, toStartOfHour(occurred_at)
                )
            ) ENGINE = MergeTree
            ORDER BY (channel_id, minute, step_hash)
            SETTINGS {_DEDUP}
            """,
            f"""
            CREATE TABLE IF NOT EXISTS onboarding_steps (
                step_hash       UInt64,
                event_hash      UInt64,
                event_id        String,
                platform        LowCardinality(String),
                firm_id         String,
                status          Enum8('onboarded' = 1, 'withdrawn' = 2),
                occurred_at     DateTime64(3, 'UTC'),
                firm_name       String,
                district        LowCardinality(String),
                export_oriented Bool,
                stored_at       DateTime64(3, 'UTC') DEFAULT now64(3),
                INDEX ix_event event_hash TYPE bloom_filter(0.001) GRANULARITY 1
            ) ENGINE = MergeTree
            ORDER BY (platform, firm_id, status)
            SETTINGS {_DEDUP}
            """,
            f"""
            CREATE TABLE IF NOT EXISTS stream_stats (
                event_hash     UInt64,
                event_id       String,
                channel_id     LowCardinality(String),
                platform       LowCardinality(String),
                occurred_at    DateTime64(3, 'UTC'),
                minute         DateTime('UTC') MATERIALIZED toStartOfMinute(occurred_at),
                viewers_online UInt64,
                views_total    UInt64,
                stored_at      DateTime64(3, 'UTC') DEFAULT now64(3),
                INDEX ix_event event_hash TYPE bloom_filter(0.001) GRANULARITY 1
            ) ENGINE = MergeTree
            ORDER BY (channel_id, minute, event_hash)
            SETTINGS {_DEDUP}
            """,
            # Ingest transforms: the writer inserts the validated events' JSON into these
            # Null tables and ClickHouse (C++) derives the stored columns, so Python never
            # serialises rows. One insert still writes one part of one real table.
            """
            CREATE TABLE IF NOT EXISTS order_events_in (
                event_id String, platform String, order_id String, status String,
                occurred_at DateTime64(3, 'UTC'), channel_id String, merchant_id String,
                region Tuple(district String, township Nullable(String)),
                items Array(Tuple(sku String, name String, quantity UInt32, unit_price_fen UInt64,
                                  weight_g UInt32)),
                amount_fen UInt64
            ) ENGINE = Null
            """,
            """
            CREATE MATERIALIZED VIEW IF NOT EXISTS order_events_mv TO order_steps AS
            SELECT
                xxh3(concat(platform, '\x1f', order_id, '\x1f', status)) AS step_hash,
                xxh3(event_id) AS event_hash, event_id, platform, order_id, status, occurred_at,
                channel_id, merchant_id,
                tupleElement(region, 'district') AS district,
                ifNull(tupleElement(region, 'township'), '') AS township,
                amount_fen,
                arraySum(i -> toUInt64(i.quantity), items) AS units,
                arraySum(i -> toUInt64(i.quantity) * i.weight_g, items) AS weight_g,
                arrayMap(i -> i.sku, items) AS `items.sku`,
                arrayMap(i -> i.name, items) AS `items.name`,
                arrayMap(i -> i.quantity, items) AS `items.quantity`,
                arrayMap(i -> i.unit_price_fen, items) AS `items.unit_price_fen`,
                arrayMap(i -> i.weight_g, items) AS `items.weight_g`
            FROM order_events_in
            """,
            """
            CREATE TABLE IF NOT EXISTS onboarding_events_in (
                event_id String, platform String, firm_id String, status String,
                occurred_at DateTime64(3, 'UTC'), firm_name String, district String,
                export_oriented Bool
            ) ENGINE = Null
            """,
            """
            CREATE MATERIALIZED VIEW IF NOT EXISTS onboarding_events_mv TO onboarding_steps AS
            SELECT
                xxh3(concat(platform, '\x1f', firm_id, '\x1f', status)) AS step_hash,
                xxh3(event_id) AS event_hash, event_id, platform, firm_id, status, occurred_at,
                firm_name, district, export_oriented
            FROM onboarding_events_in
            """,
            """
            CREATE TABLE IF NOT EXISTS stream_stats_in (
                event_id String, channel_id String, platform String,
                occurred_at DateTime64(3, 'UTC'), viewers_online UInt64, views_total UInt64
            ) ENGINE = Null
            """,
            """
            CREATE MATERIALIZED VIEW IF NOT EXISTS stream_stats_mv TO stream_stats AS
            SELECT xxh3(event_id) AS event_hash, event_id, channel_id, platform, occurred_at,
                   viewers_online, views_total
            FROM stream_stats_in
            """,
        ),
    ),
    Migration(
        2,
        "per-channel projection with SKU sums, for the summary",
        (
            # Per-item units and GMV as stored arrays: a projection's aggregates match a
            # query's only on plain columns (an arrayMap lambda never matches), and the
            # materialized views and bulk loads fill them without being told.
            """
            ALTER TABLE order_steps
                ADD COLUMN IF NOT EXISTS item_units Array(UInt64)
                    MATERIALIZED arrayMap(q -> toUInt64(q), `items.quantity`),
                ADD COLUMN IF NOT EXISTS item_gmv_fen Array(UInt64)
                    MATERIALIZED arrayMap((q, p) -> toUInt64(q) * p, `items.quantity`, `items.unit_price_fen`)
            """,
            # One row per channel, region and status holding everything the summary
            # needs, SKU sums included (sumMap of units and GMV; a SKU's units are never 0,
            # so sumMap never drops one). With the default 8,192-row granules, reading a
            # channel's few rows would decode thousands of other channels' SKU maps too;
            # 128-row granules make that read small (24 -> 17 ms for a 40-SKU channel).
            """
            ALTER TABLE order_steps ADD PROJECTION IF NOT EXISTS p_channel (
                SELECT channel_id, platform, district, township, status, count(), sum(amount_fen),
                       sum(units), sum(weight_g), min(occurred_at), max(occurred_at),
                       sumMap(`items.sku`, item_units, item_gmv_fen), minMap(`items.sku`, `items.name`)
                GROUP BY channel_id, platform, district, township, status
            ) WITH SETTINGS (index_granularity = 128)
            """,
            # existing parts get it in the background; until then queries read their rows
            "ALTER TABLE order_steps MATERIALIZE PROJECTION p_channel",
        ),
    ),
    Migration(
        3,
        "channel registry (channel.v1), its current view, stored_at indexes for channel status",
        (
            f"""
            CREATE TABLE IF NOT EXISTS channel_registry (
                event_hash      UInt64,
                event_id        String,
                channel_id      String,
                platform        LowCardinality(String),
                title           String,
                host            Nullable(String),
                district        LowCardinality(String),
                township        LowCardinality(String),
                scheduled_start Nullable(DateTime64(3, 'UTC')),
                scheduled_end   Nullable(DateTime64(3, 'UTC')),
                occurred_at     DateTime64(3, 'UTC'),
                stored_at       DateTime64(3, 'UTC') DEFAULT now64(3),
                INDEX ix_event event_hash TYPE bloom_filter(0.001) GRANULARITY 1
            ) ENGINE = MergeTree
            ORDER BY (channel_id, occurred_at, event_id)
            SETTINGS {_DEDUP}
            """,
            """
            CREATE TABLE IF NOT EXISTS channel_events_in (
                event_id String, channel_id String, platform String, title String, host Nullable(String),
                region Tuple(district String, township Nullable(String)),
                scheduled_start Nullable(DateTime64(3, 'UTC')), scheduled_end Nullable(DateTime64(3, 'UTC')),
                occurred_at DateTime64(3, 'UTC')
            ) ENGINE = Null
            """,
            """
            CREATE MATERIALIZED VIEW IF NOT EXISTS channel_events_mv TO channel_registry AS
            SELECT xxh3(event_id) AS event_hash, event_id, channel_id, platform, title, host,
                   tupleElement(region, 'district') AS district,
                   ifNull(tupleElement(region, 'township'), '') AS township,
                   scheduled_start, scheduled_end, occurred_at
            FROM channel_events_in
            """,
            # One row per channel: its latest registry entry by (occurred_at, event_id)
            # (contract §3). One argMax over a tuple keeps every field from the same
            # entry: argMax of a Nullable column alone would skip a newer entry's NULL host.
            """
            CREATE VIEW IF NOT EXISTS channels_current AS
            SELECT channel_id,
                   latest.1 AS platform, latest.2 AS title, latest.3 AS host, latest.4 AS district,
                   latest.5 AS township, latest.6 AS scheduled_start, latest.7 AS scheduled_end
            FROM (
                SELECT channel_id,
                       argMax(tuple(platform, title, host, district, township, scheduled_start, scheduled_end),
                              tuple(occurred_at, event_id)) AS latest
                FROM channel_registry GROUP BY channel_id
            )
            """,
            # A channel is live while its rows keep being stored: "stored in the last ten
            # minutes" then skips every granule whose rows are all older.
            "ALTER TABLE order_steps ADD INDEX IF NOT EXISTS ix_stored stored_at TYPE minmax GRANULARITY 1",
            "ALTER TABLE stream_stats ADD INDEX IF NOT EXISTS ix_stored stored_at TYPE minmax GRANULARITY 1",
            "ALTER TABLE order_steps MATERIALIZE INDEX ix_stored",
            "ALTER TABLE stream_stats MATERIALIZE INDEX ix_stored",
        ),
    ),
    Migration(
        4,
        "minmax indexes on event and storage time, for the dedupe horizon",
        # processors.dedupe loads the rows within its horizon (by occurred_at, or by
        # stored_at for late arrivals) at start-up, and a day's rows for old events: these
        # let the reads skip other granules (order_steps and stream_stats got ix_stored in 3).
        (
            *(
                stmt
                for table in ("order_steps", "onboarding_steps", "stream_stats", "channel_registry")
                for stmt in (
                    f"ALTER TABLE {table} ADD INDEX IF NOT EXISTS ix_occurred occurred_at TYPE minmax GRANULARITY 1",
                    f"ALTER TABLE {table} MATERIALIZE INDEX ix_occurred",
                )
            ),
            *(
                stmt
                for table in ("onboarding_steps", "channel_registry")
                for stmt in (
                    f"ALTER TABLE {table} ADD INDEX IF NOT EXISTS ix_stored stored_at TYPE minmax GRANULARITY 1",
                    f"ALTER TABLE {table} MATERIALIZE INDEX ix_stored",
                )
            ),
        ),
    ),
    CHANNEL_STATE,  # 5: schemas/ddl_channel_state.py
    Migration(
        6,
        "per-firm monthly and hourly projections, for the domestic-sales pivots",
        # Domestic sales join orders with the export-oriented firms by (platform,
        # merchant_id), which no earlier projection keeps. api.queries.domestic sums the
        # paid orders per firm from these and joins the sums: whole UTC months from
        # p_firm_month, and from p_firm_hour the hours at the edges of the asked range and
        # those a month in the caller's offset takes from the next or last UTC month.
        # Status and the time unit lead the keys, so that paid orders of some hours are a
        # range read of the projection, not a scan.
        (
            """
            ALTER TABLE order_steps ADD PROJECTION IF NOT EXISTS p_firm_month (
                SELECT status, toStartOfMonth(occurred_at), platform, merchant_id, count(), sum(amount_fen)
                GROUP BY status, toStartOfMonth(occurred_at), platform, merchant_id
            )
            """,
            """
            ALTER TABLE order_steps ADD PROJECTION IF NOT EXISTS p_firm_hour (
                SELECT status, toStartOfHour(occurred_at), platform, merchant_id, count(), sum(amount_fen)
                GROUP BY status, toStartOfHour(occurred_at), platform, merchant_id
            )
            """,
            # existing parts get them in the background; until then queries read their rows
            "ALTER TABLE order_steps MATERIALIZE PROJECTION p_firm_month",
            "ALTER TABLE order_steps MATERIALIZE PROJECTION p_firm_hour",
        ),
    ),
    Migration(
        7,
        "64 KiB compression blocks, so a merge's buffers stay small",
        # A part writes every column, projection column and index through a buffer of
        # max_compress_block_size (ClickHouse's default: 1 MiB). An order_steps merge of
        # 7 parts, 4 MB compressed, took ~105 MiB for those buffers (system.merges), and
        # such merges were the soak's RSS swings (docs/BENCHMARKS.md "Memory soak"). At 64
        # KiB the same merge takes ~37 MiB; blocks compress slightly less well. New parts
        # and merges only: nothing is rewritten.
        tuple(
            f"ALTER TABLE {table} MODIFY SETTING max_compress_block_size = {COMPRESS_BLOCK_BYTES}"
            for table in STORED_TABLES
        ),
    ),
    Migration(
        8,
        "vertical merges from the first row, so a merge holds one column's buffers at a time",
        # A horizontal merge reads and writes every column of its parts at once (and each
        # projection's); a vertical one does the sorting key first, then one column after
        # another. An order_steps merge of 6-7 parts then held 10 MiB at p90 instead of 30-34,
        # and those merges were the soak's remaining RSS peaks (docs/BENCHMARKS.md "Memory
        # soak"). Inserts are not slowed (`livesales bench merges`). Tables whose engine
        # merges only horizontally (Summing, Aggregating) and those under 11 columns keep doing so.
        tuple(f"ALTER TABLE {table} MODIFY SETTING {VERTICAL_MERGE_SETTINGS}" for table in STORED_TABLES),
    ),
    Migration(
        9,
        "write fences: which member of a consumer group last claimed each partition",
        # processors.fence: a member claims its partitions here before it decides for them,
        # and every insert of a member that writes beside others checks, inside its own
        # statement, that the latest claim of each of its partitions is still its own. The
        # latest claim wins (seq); a ReplacingMergeTree keeps one row per partition in the end,
        # and argMax(token, seq) reads the right one before merges too. Tiny: a row per partition.
        (
            f"""
CREATE TABLE IF NOT EXISTS write_fences (
    consumer_group String,
    topic          String,
    partition      UInt32,
    token          String,
    seq            UInt64,
    claimed_at     DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(seq) ORDER BY (consumer_group, topic, partition)
SETTINGS max_compress_block_size = {COMPRESS_BLOCK_BYTES}, {VERTICAL_MERGE_SETTINGS}
""",
        ),
    ),
    CONNECTORS,
    NOTIFICATIONS,
    V12,
    V13,  # schemas/ddl_v13.py: p_live, for the live_monitor pivot
    V14,  # schemas/ddl_v14.py: p_live_keys (128-bit product keys) replaces p_live
    V15,  # schemas/ddl_v15.py: small parts stored packed, one file each
    V16,  # schemas/ddl_v16.py: projection indexes for the exact dedupe look-up
    V17,  # schemas/ddl_v17.py: order_steps' unread bloom_filter skip indexes dropped
)

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     UInt32,
    description String,
    applied_at  DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree ORDER BY version
"""

LATEST_VERSION = MIGRATIONS[-1].version
