"""Create the service's topics where they are missing (the admin client's one job here)."""

from __future__ import annotations

import contextlib


async def ensure_topics(bootstrap: str, topics: list[str], partitions: int = 4) -> None:
    """Create the topics that are missing; an existing topic is left as it is."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
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

