"""A consumer's standing in its group: what it does when partitions come and go, and how
it learns that the coordinator still counts it as a member (ingest.lease)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from ingest.lease import Lease
from processors.store import StorageError

log = logging.getLogger(__name__)


class _Writer(Protocol):
    async def refresh(self) -> None: ...


class Member(Protocol):
    """What the listener needs of ingest.consumer.Consumer."""

    name: str
    lease: Lease

    @property
    def writer(self) -> _Writer: ...
    def evicted(self) -> bool: ...
    async def drain(self, timeout: float) -> None: ...


def _pairs(tps: Iterable[TopicPartition]) -> list[tuple[str, int]]:
    return [(tp.topic, tp.partition) for tp in tps]


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: Member) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        owner = self.owner
        if revoked and owner.evicted():
            # The coordinator dropped us (a pause, a partition): the partitions may be
            # someone else's already. Write nothing more; the owners re-read.
            log.warning("%s was evicted from the group; dropping unwritten batches", owner.name)
            owner.lease.lost()
        await owner.drain(timeout=30.0)
        owner.lease.released(_pairs(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Covers a topic's partitions and its ``.routed`` topic's alike (ingest.routing):
        the range assignor hands both partition p's over in the same rebalance."""
        owner = self.owner
        owner.lease.assigned(_pairs(assigned))
        log.info("%s assigned %s", owner.name, sorted(_pairs(assigned)))
        # Before the first record of these partitions: learn what their previous owners
        # (and everyone else) stored. The writer also does so before every batch.
        try:
            await owner.writer.refresh()
        except StorageError as exc:
            log.warning("%s: dedupe refresh on assignment failed (%s); retried per batch", owner.name, exc)


def watch_heartbeats(kafka: AIOKafkaConsumer, lease: Lease, name: str) -> None:
    """Renew the lease with every heartbeat the coordinator answers.

    aiokafka keeps its heartbeats to itself, so this wraps its coordinator's one
    heartbeat call (a private name, checked here: without it the lease is renewed only
    by assignments and commits, and an idle member's writes wait for the next one).
    """
    coordinator = getattr(kafka, "_coordinator", None)
    beat = getattr(coordinator, "_do_heartbeat", None)
    if coordinator is None or beat is None:
        log.warning("%s: cannot watch heartbeats (aiokafka changed?)", name)
        return

    async def heartbeat() -> bool:
        sent = time.monotonic()
        ok = bool(await beat())
        if ok:
            lease.renew(sent)
        return ok

    coordinator._do_heartbeat = heartbeat


def evicted(kafka: AIOKafkaConsumer | None) -> bool:
    """True when the coordinator no longer knows this member (checked on revocation)."""
    coordinator = getattr(kafka, "_coordinator", None)
    return coordinator is not None and getattr(coordinator, "member_id", None) == ""
