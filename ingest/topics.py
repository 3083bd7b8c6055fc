"""Create the service's topics where they are missing (the admin client's one job here)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ingest.routing import check_partition_counts, routed_topic


@dataclass(frozen=True)
class Topics:
    """The service's topics (contract §1): four of events in, one of dead letters out."""

    orders: str = "livesales.orders"
    onboarding: str = "livesales.onboarding"
    stream_stats: str = "livesales.stream_stats"
    channels: str = "livesales.channels"
    dlq: str = "livesales.dlq"

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.orders, self.onboarding, self.stream_stats, self.channels)

    def for_schema(self, schema: str) -> str:
        return {
            "order.v1": self.orders,
            "onboarding.v1": self.onboarding,
            "stream_stats.v1": self.stream_stats,
            "channel.v1": self.channels,
        }[schema]


async def ensure_topics(
    bootstrap: str,
    topics: list[str],
    partitions: int = 4,
    security: Mapping[str, Any] | None = None,
    routed_from: Iterable[str] = (),
) -> None:
    """Create the topics that are missing; an existing topic is left as it is.

    ``security``: ingest.kafka_security's TLS/SASL options. ``routed_from``: topics whose
    ``<topic>.routed`` (ingest.routing) is created too, with the source's partition
    count; raises ground.config_errors.ConfigError when an existing one differs."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    sources = list(routed_from)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **dict(security or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing]
                )
        if not sources:
            return
        counts = await partition_counts(admin)
        routed = [
            NewTopic(routed_topic(t), num_partitions=counts.get(t, partitions), replication_factor=1)
            for t in sources
            if routed_topic(t) not in counts
        ]
        if routed:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(routed)
            counts = await partition_counts(admin)
        check_partition_counts(counts, sources)
    finally:
        await admin.close()


async def partition_counts(admin: Any) -> dict[str, int]:
    """Every topic's partition count, as the cluster's metadata gives it."""
    return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics() if t.get("partitions")}
