"""A consumer's standing in its group: what it does when partitions come and go, and how
it learns that the coordinator still counts it as a member (ingest.lease)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, Protocol

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
    def __init__(self, owner: Member, drain_timeout_s: float = 30.0) -> None:
        self.owner = owner
        self.drain_timeout_s = drain_timeout_s

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Nothing new is sent for the revoked partitions from here on: the batches waiting
        are dropped unwritten (their records are re-read from the committed offsets by the
        next owner), and only the insert already under way is waited for, at most
        ``drain_timeout_s``. One that outlasts that is the next owner's to wait out on the
        server (processors.fence)."""
        owner = self.owner
        if revoked and owner.evicted():
            # The coordinator dropped us (a pause, a partition): the partitions may be
            # someone else's already.
            log.warning("%s was evicted from the group; dropping unwritten batches", owner.name)
            owner.lease.lost()
        owner.lease.released(_pairs(revoked))
        await owner.drain(timeout=self.drain_timeout_s)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Covers a topic's partitions and its ``.routed`` topic's alike (ingest.routing):
        the range assignor hands both partition p's over in the same rebalance."""
        owner = self.owner
        owner.lease.assigned(_pairs(assigned))
        log.info("%s assigned %s, claim=%s", owner.name, sorted(_pairs(assigned)), owner.lease.token)
        # Before the first record of these partitions: learn what their previous owners
        # (and everyone else) stored. The writer also does so before every batch.
        try:
            await owner.writer.refresh()
        except StorageError as exc:
            log.warning("%s: dedupe refresh on assignment failed (%s); retried per batch", owner.name, exc)


def watch_heartbeats(kafka: AIOKafkaConsumer, lease: Lease, name: str) -> None:
    """Renew the lease with every heartbeat the coordinator answers as a plain success
    in the generation this member is in.

    aiokafka keeps its heartbeats to itself, so this wraps its coordinator's one
    heartbeat call (a private name, checked here: without it the lease is renewed only
    by assignments and commits, and an idle member's writes wait for the next one).
    aiokafka also counts "rebalance in progress" as a success (to keep heartbeating while
    it rejoins); such an answer renews nothing here: the coordinator may complete that
    rebalance without us and give our partitions away. aiokafka marks that answer by
    asking to rejoin, and a generation change shows a join in between.
    """
    coordinator = getattr(kafka, "_coordinator", None)
    beat = getattr(coordinator, "_do_heartbeat", None)
    if coordinator is None or beat is None or not hasattr(coordinator, "_rejoin_needed_fut"):
        log.warning("%s: cannot watch heartbeats (aiokafka changed?)", name)
        return

    async def heartbeat() -> bool:
        sent, generation = time.monotonic(), coordinator.generation
        ok = bool(await beat())
        if ok and current_member(coordinator, generation):
            lease.renew(sent)
        return ok

    coordinator._do_heartbeat = heartbeat


def current_member(coordinator: Any, generation: int) -> bool:
    """After a heartbeat aiokafka counted as a success: was it a plain one, in ``generation``?"""
    return bool(coordinator.generation == generation and not coordinator._rejoin_needed_fut.done())


def rejoin(kafka: AIOKafkaConsumer | None) -> None:
    """Ask the coordinator for a new assignment (aiokafka's own call for it; private)."""
    coordinator = getattr(kafka, "_coordinator", None)
    if coordinator is not None and hasattr(coordinator, "request_rejoin"):
        coordinator.request_rejoin()


def evicted(kafka: AIOKafkaConsumer | None) -> bool:
    """True when the coordinator no longer knows this member (checked on revocation)."""
    coordinator = getattr(kafka, "_coordinator", None)
    return coordinator is not None and getattr(coordinator, "member_id", None) == ""
