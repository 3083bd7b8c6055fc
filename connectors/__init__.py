"""Platform connectors (contract §7): 抖店 and 快手 orders into ``order.v1`` events.

Pushes are verified and put on :data:`RAW_TOPIC` before they are answered; a worker turns
them into events (fetching the order's detail when the push is thin); reconciliation pulls
each shop's order list by update time and publishes what the pushes missed. docs/CONNECTORS.md
is the map. Layering: this package imports ``ground``, ``schemas``, ``processors`` and
``ingest``, never ``api`` or ``livesales``.
"""

from __future__ import annotations

RAW_TOPIC = "livesales.connector_pushes"
"""Verified raw pushes, keyed ``{platform}:{shop_id}`` (one shop, one partition)."""
