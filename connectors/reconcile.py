"""Reconciliation: each shop's order list by update time, so a lost push is found.

Per shop, every ``interval_s``: the window [watermark − ``overlap_s``, now − ``lag_s``)
(a shop never reconciled starts ``first_lookback_s`` back; never more than the platforms'
90 days), pulled page by page as the platform requires (``PlatformApi.updated``). For each
page, the steps its orders imply are looked up: those the service already counted
(``order_steps``) are not sent again; the others are published, and those no connector had
published before (``pushed``/``recovered`` rows) are *recovered* — noted as such **before** they are
published, so a kill -9 between the two counts them once (the note is keyed by event id)
rather than never. The watermark moves to the window's end only once every page's events
were acknowledged by the broker; a failed window leaves it and is retried after
``retry_s``. Overlapping windows re-read the edges; §3's dedupe makes that free.

**Once per interval, with any number of processes.** Only the member of the push worker's
consumer group that holds a shop's raw-push partition reconciles it (``owns``), and the
watermark row says when the shop was last reconciled, by anyone: a member taking a shop
over after a rebalance (its owner died) waits out the rest of the interval. Two members can
overlap only inside a rebalance, and then they publish the same event ids twice, which §3
drops and the recovered count (distinct event ids) does not see.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from connectors.apis import Apis
from connectors.config import AppConfig, ConnectorsConfig, ShopConfig
from connectors.events import RoomDirectory, Step, order_steps
from connectors.metrics import ConnectorMetrics
from connectors.platform import PlatformRefused, PlatformUnavailable, unexpected
from connectors.state import ConnectorState, StepRow, Watermark
from connectors.status import StatusBook
from ground.stopping import cancel_and_wait
from ingest.producer import ProduceError, Producer
from processors.store import StorageError

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BACK = timedelta(days=89)  # 快手: "不能小于90天前"; 拼多多/淘宝: 3 months


@dataclass(frozen=True)
class ReconcileConfig:
    orders_topic: str
    owner: str  # this process's id, written on the watermark
    interval_s: float = 300.0  # LIVESALES_RECONCILE_INTERVAL_S
    lag_s: float = 180.0  # windows end this long before now (late writes on the platform's side)
    overlap_s: float = 600.0  # and start this long before the last one ended
    first_lookback_s: float = 86_400.0
    tick_s: float = 1.0
    retry_s: float = 30.0
    # pages' steps looked up, noted and sent together: per page of 100 orders, the two
    # look-ups, the note's insert and the acks cost ~55 of ~80 ms (docs/BENCHMARKS.md)
    publish_steps: int = 2_000


async def ahead(pages: AsyncIterator[T]) -> AsyncGenerator[T, None]:
    """``pages``, the next one fetched while the caller works on this one: a page's API
    call then overlaps the work on the page before (at most one page held ahead)."""
    iterator = aiter(pages)
    pending: asyncio.Task[T] = asyncio.ensure_future(anext(iterator))
    try:
        while True:
            try:
                page = await pending
            except StopAsyncIteration:
                return
            pending = asyncio.ensure_future(anext(iterator))
            yield page
    finally:
        if not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        elif not pending.cancelled():
            pending.exception()  # retrieved: a failure after the caller stopped reading is not logged as lost
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


class OwnershipLost(Exception):
    """The shop's partition moved away mid-window: its new owner does the window."""


@dataclass(frozen=True)
class WindowResult:
    start: datetime
    end: datetime
    orders: int
    published: int
    recovered: int


class Reconciler:
    def __init__(
        self, config: ReconcileConfig, connectors: ConnectorsConfig, producer: Producer, state: ConnectorState,
        apis: Apis, rooms: RoomDirectory, book: StatusBook, metrics: ConnectorMetrics,
        owns: Callable[[str, str], bool],
    ) -> None:  # fmt: skip
        self.config, self.connectors, self.producer, self.state = config, connectors, producer, state
        self.apis, self.rooms, self.book, self.metrics, self.owns = apis, rooms, book, metrics, owns
        self._due: dict[tuple[str, str], datetime] = {}  # when each owned shop is next due (wall clock)
        self._task: asyncio.Task[None] | None = None
        self.runs = 0  # windows completed by this instance (observability, tests)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="connector-reconcile")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            try:
                await self.tick(datetime.now(UTC))
            except Exception as exc:  # never let one bad round end reconciliation for good
                log.error("reconciliation round failed (%s); the next tick tries again", unexpected(exc))
            await asyncio.sleep(self.config.tick_s)

    async def tick(self, now: datetime) -> None:
        """Reconcile every owned shop that is due; forget shops no longer owned."""
        for app, shop in self.connectors.shops():
            key = (app.platform, shop.shop_id)
            if not self.owns(*key):
                self._due.pop(key, None)
                continue
            due = self._due.get(key)
            if due is not None and now < due:
                continue
            try:
                mark = await self.state.watermark(*key)
            except StorageError as exc:
                log.warning("reconcile %s/%s: watermark not readable (%s)", *key, exc)
                continue
            interval = timedelta(seconds=self.config.interval_s)
            if mark is not None and mark.written_at + interval > now:
                self._due[key] = mark.written_at + interval  # done by someone within the interval
                continue
            if not self.owns(*key):  # ownership moved while we read
                continue
            try:
                await self.reconcile(app, shop, mark, now)
                self._due[key] = now + interval
            except OwnershipLost:
                log.info("reconcile %s/%s: the shop moved to another member mid-window; it finishes there", *key)
                self._due.pop(key, None)
            except Exception as exc:  # the watermark stays: the window is tried again after retry_s
                expected = isinstance(exc, PlatformUnavailable | PlatformRefused | ProduceError | StorageError
                                      | ValueError | KeyError | TypeError)  # fmt: skip
                # an unexpected error's text may quote a request (and its token): only its type and place
                what = str(exc) if expected else unexpected(exc)
                self.metrics.reconciliations.labels(app.platform, "failed").inc()
                self.book.error(app.platform, shop.shop_id, f"reconciliation: {what}")
                log.warning("reconcile %s/%s failed (retried in %ss): %s", *key, self.config.retry_s, what)
                self._due[key] = now + timedelta(seconds=self.config.retry_s)

    def window(self, mark: Watermark | None, now: datetime) -> tuple[datetime, datetime]:
        c = self.config
        end = now - timedelta(seconds=c.lag_s)
        if mark is None:
            start = end - timedelta(seconds=c.first_lookback_s)
        else:
            start = mark.reconciled_to - timedelta(seconds=c.overlap_s)
        return max(start, now - MAX_BACK), end

    async def reconcile(self, app: AppConfig, shop: ShopConfig, mark: Watermark | None, now: datetime) -> WindowResult:
        """One window of one shop; raises when any part of it failed (watermark unmoved), or
        OwnershipLost when the shop's partition moved away meanwhile (checked between pages
        and before the watermark, so a rebalance rarely lets two members do one window)."""
        start, end = self.window(mark, now)
        orders = published = recovered = 0
        steps: list[Step] = []
        if start < end:
            async for page in ahead(self.apis.get(app).updated(shop, start, end)):
                if not self.owns(app.platform, shop.shop_id):  # stop early: two owners overlap only briefly
                    raise OwnershipLost(f"{app.platform}/{shop.shop_id}")
                for order in page:
                    found, problems = await order_steps(order, app, shop, self.rooms, now)
                    steps += found
                    for problem in problems:
                        self.book.error(app.platform, shop.shop_id, f"reconciliation: refused event {problem}")
                orders += len(page)
                if len(steps) >= self.config.publish_steps:
                    p, r = await self._publish(app, shop, steps)
                    published, recovered, steps = published + p, recovered + r, []
            p, r = await self._publish(app, shop, steps)
            published, recovered = published + p, recovered + r
        if not self.owns(app.platform, shop.shop_id):
            raise OwnershipLost(f"{app.platform}/{shop.shop_id}")
        await self.state.set_watermark(app.platform, shop.shop_id, end, self.config.owner, mark, datetime.now(UTC))
        self.runs += 1
        self.metrics.reconciliations.labels(app.platform, "done").inc()
        self.metrics.reconciled_lag.labels(app.platform, shop.shop_id).set((datetime.now(UTC) - end).total_seconds())
        log.info("reconciled %s/%s [%s, %s): %d orders, %d events sent, %d recovered", app.platform, shop.shop_id,
                 start.isoformat(), end.isoformat(), orders, published, recovered)  # fmt: skip
        return WindowResult(start, end, orders, published, recovered)

    async def _publish(self, app: AppConfig, shop: ShopConfig, steps: list[Step]) -> tuple[int, int]:
        """Send the steps not yet counted; note first-seen ones as recovered before sending."""
        unique = list({s.event_id: s for s in steps}.values())
        if not unique:
            return 0, 0
        ids = [s.event_id for s in unique]
        counted = await self.state.counted(ids)
        todo = [s for s in unique if s.event_id not in counted]
        if not todo:
            return 0, 0
        known = await self.state.published(app.platform, shop.shop_id, [s.event_id for s in todo])
        new = [s for s in todo if s.event_id not in known]
        await self.state.record_steps(
            StepRow(app.platform, shop.shop_id, s.event_id, "reconcile") for s in new
        )
        await self.producer.send_keyed(self.config.orders_topic, [(s.order_id.encode(), s.value) for s in todo])
        self.metrics.events.labels(app.platform, "reconcile").inc(len(todo))
        self.metrics.recovered.labels(app.platform).inc(len(new))
        return len(todo), len(new)
