"""How long stored rows are kept: forever by default, or a TTL by event time (issue 21 §8).

Live-commerce rules ask platforms to keep live and transaction records for at least three
years, and a county may have its own rule; so nothing is dropped unless the operator sets
``LIVESALES_RETENTION_DAYS``. Then the order steps, the stream stats and the per-minute
channel activity older than that (by their event time, not by when they were stored) are
dropped by ClickHouse at its merges. The onboarding steps and the channel registry are
kept (a firm onboarded years ago still counts in ``firms_net``), and so is each channel's
folded state (``channel_state``): the channel list keeps showing an old sale's totals
after its minutes are gone (deploy/README.md, "Retention").

Applied at every start, after the migrations; unsetting it removes the TTL again. On a
cluster the stored tables are the ``_local`` ones, altered ON CLUSTER.
"""

from __future__ import annotations

import logging

from clickhouse_connect.driver.client import Client

from schemas.cluster import LOCAL_SUFFIX

log = logging.getLogger(__name__)

# table -> its event-time column
KEPT_BY_EVENT_TIME: dict[str, str] = {
    "order_steps": "occurred_at",
    "stream_stats": "occurred_at",
    "channel_minutes": "minute",
}
RULES_DAYS = 3 * 365  # what the live-commerce rules ask to keep at least


def apply_retention(client: Client, days: int | None, cluster: str | None = None) -> None:
    """Set (``days``) or remove (None) the TTL of each table of ``KEPT_BY_EVENT_TIME``."""
    if days is not None and days < RULES_DAYS:
        log.warning("LIVESALES_RETENTION_DAYS=%d keeps less than the %d days live-commerce rules ask for",
                    days, RULES_DAYS)  # fmt: skip
    on = f" ON CLUSTER `{cluster}`" if cluster else ""
    for table, column in KEPT_BY_EVENT_TIME.items():
        name = table + LOCAL_SUFFIX if cluster else table
        full = str(client.command(
            "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
            parameters={"t": name},
        ))  # fmt: skip
        if days is not None:
            if f"toIntervalDay({int(days)})" in full:
                continue  # as set at an earlier start: no ALTER, no mutation
            # days is an int from validated settings (DDL takes no bound parameters); the
            # parts are not rewritten now, old rows go at the merges
            client.command(
                f"ALTER TABLE {name}{on} MODIFY TTL toDateTime({column}) + toIntervalDay({int(days)})"
                " SETTINGS materialize_ttl_after_modify = 0"
            )
        elif " TTL " in full:
            client.command(f"ALTER TABLE {name}{on} REMOVE TTL")
