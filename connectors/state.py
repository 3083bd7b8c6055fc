"""The connectors' durable state in ClickHouse (schemas/ddl_connectors.py, one table):
watermarks, per-process push counters, and the steps they published.

Every write is a row a later read folds by ``argMax(…, seq)``: no mutation, nothing to lose
on a crash but the row not yet written, which each caller orders so that a kill -9 repeats
work rather than skipping it (docs/CONNECTORS.md, "What a kill -9 repeats").
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from processors.keys import key_hash
from processors.store import ClickHouse
from schemas.ddl_v16 import LOOKUP_SETTINGS_SQL

_CHUNK = 5_000  # ids per look-up: bounded query size whatever a window holds

_STATE_COLUMNS = ["platform", "shop_id", "kind", "writer", "reconciled_to", "owner", "pushes", "bad_signatures",
                  "last_push_at", "last_error", "last_error_at", "seq", "written_at"]  # fmt: skip
_STEP_COLUMNS = ["platform", "shop_id", "kind", "writer", "seq"]
_STEP_KIND = {"push": "pushed", "reconcile": "recovered"}


@dataclass(frozen=True, slots=True)
class Watermark:
    reconciled_to: datetime
    written_at: datetime  # when the shop was last reconciled, by anyone
    owner: str
    seq: int


@dataclass(frozen=True, slots=True)
class ProcessRow:
    """One process's cumulative counters for one shop (or one app: shop_id ``@<app_key>``)."""

    platform: str
    shop_id: str
    writer: str
    pushes: int
    bad_signatures: int
    last_push_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    seq: int


@dataclass(frozen=True, slots=True)
class StepRow:
    platform: str
    shop_id: str
    event_id: str
    source: str  # "push" | "reconcile"


def next_seq(previous: int = 0) -> int:
    """A version later than ``previous`` and than any earlier call here (wall clock, ns)."""
    return max(previous + 1, time.time_ns())


class ConnectorState:
    def __init__(self, store: ClickHouse) -> None:
        self.store = store

    async def _insert(self, table: str, rows: list[list[Any]], columns: list[str]) -> None:
        if rows:
            client = self.store.client
            await self.store.run_in_thread(client.insert, table, rows, column_names=columns)

    async def watermark(self, platform: str, shop_id: str) -> Watermark | None:
        rows = await self.store.query(
            "SELECT argMax(reconciled_to, seq) AS rt, argMax(written_at, seq) AS wa, argMax(owner, seq) AS owner,"
            " max(seq) AS version FROM connector_watermarks WHERE platform = {p:String} AND shop_id = {s:String}"
            " AND kind = 'watermark' AND writer = '' GROUP BY platform",
            {"p": platform, "s": shop_id},
        )
        if not rows or rows[0]["rt"] is None:
            return None
        r = rows[0]
        return Watermark(_utc(r["rt"]), _utc(r["wa"]), str(r["owner"]), int(r["version"]))

    async def set_watermark(
        self, platform: str, shop_id: str, reconciled_to: datetime, owner: str, previous: Watermark | None,
        now: datetime,
    ) -> None:
        seq = next_seq(previous.seq if previous else 0)
        await self._insert("connector_watermarks", [[platform, shop_id, "watermark", "", reconciled_to, owner, 0, 0,
                                                     None, None, None, seq, now]], _STATE_COLUMNS)  # fmt: skip

    async def write_process_rows(self, rows: Sequence[ProcessRow], now: datetime) -> None:
        await self._insert("connector_watermarks", [
            [r.platform, r.shop_id, "process", r.writer, None, r.writer, r.pushes, r.bad_signatures, r.last_push_at,
             r.last_error, r.last_error_at, r.seq, now] for r in rows
        ], _STATE_COLUMNS)  # fmt: skip

    async def record_steps(self, rows: Iterable[StepRow]) -> None:
        """Note published steps (kind ``pushed``, or ``recovered`` when reconciliation was
        first); a row per event id, so noting one twice counts it once."""
        await self._insert("connector_watermarks", [[r.platform, r.shop_id, _STEP_KIND[r.source], r.event_id, 1]
                                                    for r in rows], _STEP_COLUMNS)  # fmt: skip

    async def published(self, platform: str, shop_id: str, event_ids: Sequence[str]) -> set[str]:
        """Of ``event_ids``, those a connector already published (either source)."""
        found: set[str] = set()
        for i in range(0, len(event_ids), _CHUNK):
            chunk = list(event_ids[i : i + _CHUNK])
            rows = await self.store.query(
                "SELECT DISTINCT writer AS event_id FROM connector_watermarks WHERE platform = {p:String}"
                " AND shop_id = {s:String} AND kind IN ('pushed', 'recovered') AND writer IN {ids:Array(String)}",
                {"p": platform, "s": shop_id, "ids": chunk},
            )
            found.update(str(r["event_id"]) for r in rows)
        return found

    async def counted(self, event_ids: Sequence[str]) -> set[str]:
        """Of ``event_ids``, those the service has stored (``order_steps``, by event id)."""
        found: set[str] = set()
        for i in range(0, len(event_ids), _CHUNK):
            chunk = list(event_ids[i : i + _CHUNK])
            rows = await self.store.query(  # the projection index of schemas.ddl_v16 (a constant)
                "SELECT DISTINCT event_id FROM order_steps WHERE event_hash IN {h:Array(UInt64)}"  # noqa: S608
                " AND event_id IN {ids:Array(String)}" + LOOKUP_SETTINGS_SQL,
                {"h": [key_hash(e) for e in chunk], "ids": chunk},
            )
            found.update(str(r["event_id"]) for r in rows)
        return found

    async def watermarks(self) -> dict[tuple[str, str], Watermark]:
        rows = await self.store.query(
            "SELECT platform, shop_id, argMax(reconciled_to, seq) AS rt, argMax(written_at, seq) AS wa,"
            " argMax(owner, seq) AS owner, max(seq) AS version FROM connector_watermarks"
            " WHERE kind = 'watermark' AND writer = '' GROUP BY platform, shop_id"
        )
        return {
            (str(r["platform"]), str(r["shop_id"])): Watermark(
                _utc(r["rt"]), _utc(r["wa"]), str(r["owner"]), int(r["version"])
            )
            for r in rows
            if r["rt"] is not None
        }

    async def process_rows(self) -> list[ProcessRow]:
        rows = await self.store.query(
            "SELECT platform, shop_id, writer, argMax(pushes, seq) AS pushes, argMax(bad_signatures, seq) AS bad,"
            " argMax(last_push_at, seq) AS lpa, argMax(last_error, seq) AS le, argMax(last_error_at, seq) AS lea,"
            " max(seq) AS version FROM connector_watermarks WHERE kind = 'process' GROUP BY platform, shop_id, writer"
        )
        return [ProcessRow(str(r["platform"]), str(r["shop_id"]), str(r["writer"]), int(r["pushes"]), int(r["bad"]),
                           _utc_or_none(r["lpa"]), None if r["le"] is None else str(r["le"]), _utc_or_none(r["lea"]),
                           int(r["version"])) for r in rows]  # fmt: skip

    async def recovered(self) -> dict[tuple[str, str], int]:
        rows = await self.store.query(
            "SELECT platform, shop_id, uniqExact(writer) AS n FROM connector_watermarks WHERE kind = 'recovered'"
            " GROUP BY platform, shop_id"
        )
        return {(str(r["platform"]), str(r["shop_id"])): int(r["n"]) for r in rows}


def _utc(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_or_none(value: Any) -> datetime | None:
    return None if value is None else _utc(value)
