"""The senders' standing in their consumer group: joining it, hearing of revocations, and
which offsets of a partition may be committed.

Apart from notify.sender so that the posting logic reads on its own: these are the Kafka
mechanics it relies on (docs/NOTIFY.md, "Once, with any number of processes").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from ingest.kafka_security import KafkaAccess, kafka_security

log = logging.getLogger(__name__)


class Ledger:
    """A partition's offsets read and not yet finished. The committable offset is the
    oldest unfinished one (or the next after the last read): a record is committed only
    once it and every record before it are finished, whatever order they finish in."""

    def __init__(self) -> None:
        self.pending: set[int] = set()
        self.next: int | None = None

    def add(self, offset: int) -> None:
        self.pending.add(offset)
        self.next = max(self.next or 0, offset + 1)

    def done(self, offset: int) -> None:
        self.pending.discard(offset)

    def committable(self) -> int | None:
        return min(self.pending) if self.pending else self.next


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Hands revoked partitions to ``revoked`` before the group moves them elsewhere."""

    def __init__(self, revoked: Callable[[set[TopicPartition]], Awaitable[None]]) -> None:
        self._revoked = revoked

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("notify sender: assigned %s", sorted(tp.partition for tp in assigned))


async def join(
    kafka: KafkaAccess, group: str, topic: str, listener: Rebalance, name: str,
    session_timeout_ms: int, heartbeat_interval_ms: int,
) -> AIOKafkaConsumer:  # fmt: skip
    """A consumer of ``topic`` in ``group`` that commits nothing by itself; retried with
    back-off while the broker is away (a sender may start before Kafka does)."""
    delay = 0.2
    while True:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            **kafka_security(kafka),
        )
        try:
            await consumer.start()
        except asyncio.CancelledError:  # stopped while joining
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise
        except KafkaError as exc:
            log.warning("%s: broker unavailable (%s); retrying", name, exc)
            with contextlib.suppress(Exception):
                await consumer.stop()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            continue
        consumer.subscribe([topic], listener=listener)
        return consumer
