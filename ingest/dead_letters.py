"""The dead-letter lane: a batch's dead letters go out as soon as it is validated.

Sent beside the batch's insert, a poison flood's dead letters (tens of MB a batch; the
values over and near 64 KiB) kept the write loop waiting on the broker's acks while the
lane to the broker stood idle in between: while the writer gathered the next batches,
while it committed. Here one task sends every validated batch's dead letters in order,
as they come, joining whatever waits into one send; the writer awaits a batch's ack
before committing its offsets (contract §3: nothing committed before it is stored), so
the rule is unchanged and the sending overlaps everything else.

One send at a time, on purpose: concurrent ``send_values`` to the same partitions queue
in aiokafka's accumulator and time out there (``KafkaTimeoutError``) when the broker is
slower than they come. Memory stays bounded: a ticket holds the values its batch holds
anyway, and no more batches exist than the consumer's queue and validations allow.
A ticket cancelled (its batch given up unwritten) is skipped if not yet sent; one already
on its way completes, and the batch's re-reader dead-letters it again (dead letters are
at least once, as before).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka.errors import KafkaError

from ground.metrics import Metrics
from ingest.backoff import Backoff
from ingest.producer import ProduceError, Producer

log = logging.getLogger(__name__)


@dataclass
class _Ticket:
    values: Sequence[bytes]
    codes: Mapping[str, int]
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class DeadLetterLane:
    """``submit`` a batch's dead letters, await the returned future before committing it."""

    def __init__(
        self, producer: Producer, topic: str, metrics: Metrics, stall: Callable[[str], None], retry_max_s: float,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.metrics = metrics
        self.stall = stall  # told while the DLQ fails (fetching pauses, readiness says why)
        self.retry_max_s = retry_max_s
        self._waiting: asyncio.Queue[_Ticket] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def submit(self, values: Sequence[bytes], codes: Mapping[str, int]) -> asyncio.Future[None]:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="dead-letters")
        # copies: the batch's own list and counts grow when a later batch joins it (Batch.absorb)
        ticket = _Ticket(list(values), dict(codes))
        self._waiting.put_nowait(ticket)
        return ticket.done

    async def close(self) -> None:
        """Stop sending; every ticket not acknowledged yet is cancelled."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while not self._waiting.empty():
            self._waiting.get_nowait().done.cancel()

    async def _run(self) -> None:
        while True:
            tickets = [await self._waiting.get()]
            while not self._waiting.empty():
                tickets.append(self._waiting.get_nowait())
            live = [t for t in tickets if not t.done.done()]  # skip those given up
            if not live:
                continue
            try:
                await self._send([v for t in live for v in t.values])
            except asyncio.CancelledError:
                for t in live:
                    t.done.cancel()
                raise
            for t in live:
                for code, n in t.codes.items():
                    self.metrics.dead_letters.labels(code).inc(n)
                if not t.done.done():
                    t.done.set_result(None)

    async def _send(self, values: list[bytes]) -> None:
        backoff = Backoff(cap=self.retry_max_s)
        while True:
            try:
                await self.producer.send_values(self.topic, values)
                return
            except (ProduceError, KafkaError) as exc:
                self.stall(f"dead-letter queue unavailable: {exc}")
                await asyncio.sleep(backoff.next())
