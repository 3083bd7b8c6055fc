"""Route every dedupe key's copies to the one member that owns their partition number.

Kafka Streams' answer to "the same key may arrive on any partition" (a repartition
topic, co-partitioned with its source): a message that is not *in place*
(processors.placement: keyed by its routing key, on the default partitioner's partition
for it) is validated as usual, but instead of being stored its original value goes to
``<topic>.routed``, keyed by the routing key, on that partition; its source offset is
committed once the forward is acknowledged. Partition p of a topic and of its
``.routed`` topic always belong to the same member (the range assignor, equal partition
counts: ``check_partition_counts``), so every copy of one order step, in place or
forwarded, is decided by one member, one batch after another (docs/DESIGN.md,
"Exactly-once counting").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from ground.config_errors import ConfigError
from ingest.backoff import Backoff
from ingest.producer import ProduceError, Producer
from processors.placement import Placement, routed_topic

__all__ = ["check_partition_counts", "forward", "placement_of", "routed_topic", "routed_topics"]


class _Record(Protocol):
    @property
    def key(self) -> bytes | None: ...


class _Partition(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...


def routed_topics(sources: Iterable[str]) -> list[str]:
    return [routed_topic(t) for t in sources]


def placement_of(
    records: Mapping[_Partition, Sequence[_Record]], routed: frozenset[str], count_of: Callable[[str], int | None]
) -> Placement:
    """The batch's keys and runs (``getmany``'s grouping, in its order) for the in-place
    check. A ``.routed`` topic's records were placed by a forward: trusted, as is a topic
    whose partition count is not known yet (never once assigned: metadata comes first)."""
    keys: list[bytes | None] = []
    runs: list[tuple[int, int, int]] = []
    for tp, recs in records.items():
        keys.extend(r.key for r in recs)
        count = 0 if tp.topic in routed else (count_of(tp.topic) or 0)
        runs.append((len(recs), tp.partition, count))
    return Placement(keys, runs)


async def forward(
    producer: Producer,
    messages: Sequence[tuple[str, bytes, bytes, int]],
    on_failure: Callable[[str], None],
    retry_cap_s: float,
) -> None:
    """Send until acknowledged (the source offsets are committed only after): a broker
    that is away stalls the consumer, as a failing dead-letter queue does."""
    backoff = Backoff(cap=retry_cap_s)
    while True:
        try:
            await producer.send_placed(messages)
            return
        except ProduceError as exc:
            on_failure(f"forwarding to the .routed topics failed: {exc}")
            await asyncio.sleep(backoff.next())


def check_partition_counts(counts: Mapping[str, int], sources: Iterable[str]) -> None:
    """Refuse to start when a ``.routed`` topic and its source differ in partition count:
    the range assignor would then split partition p of the two between members, and two
    members could again count one order step each."""
    for source in sources:
        routed = routed_topic(source)
        if source in counts and routed in counts and counts[source] != counts[routed]:
            raise ConfigError(
                f"topic {routed}",
                f"has {counts[routed]} partitions but {source} has {counts[source]}; they must be equal "
                f"(add partitions to the smaller one: deploy/README.md)",
            )
