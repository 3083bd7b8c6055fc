"""Create the service's topics where they are missing (the admin client's one job here)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any


async def ensure_topics(
    bootstrap: str, topics: list[str], partitions: int = 4, security: Mapping[str, Any] | None = None
) -> None:
    """Create the topics that are missing; an existing topic is left as it is.

    ``security``: ingest.kafka_security's TLS/SASL options."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

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
    finally:
        await admin.close()

