"""Whether a consumer group has committed everything on its topics, ``.routed`` ones included."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from ground.settings import Settings
from ingest.routing import routed_topics


async def committed(bootstrap: str, group: str, topics: list[str], partitions: int = 4) -> bool:
    """Whether ``group`` committed every offset of ``topics`` up to their ends."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            if (await consumer.committed(tp) or 0) < ends[tp]:
                return False
        return True
    finally:
        await consumer.stop()


async def all_committed(settings: Settings, partitions: int = 4) -> bool:
    """Every source offset committed, and then every ``.routed`` one: a source offset is
    committed only once its forward is acknowledged (ingest.routing), so the second ends
    are read after the first are done. Checking the sources alone would call a group done
    while the records it forwarded are still waiting to be stored."""
    for topics in (settings.topics, routed_topics(settings.topics)):
        if not await committed(settings.kafka_bootstrap, settings.consumer_group, list(topics), partitions):
            return False
    return True
