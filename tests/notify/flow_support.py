"""What the notify integration tests share: topic, sender settings, waiting for the group."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from ground.settings import Settings
from ingest.kafka_security import KafkaAccess
from ingest.producer import Producer
from notify.messages import MessageConfig
from notify.sender import SenderConfig
from tests.conftest import wait_for

PUBLIC = "https://sales.example.cn"
PARTITIONS = 4


def sender_config(settings: Settings, topic: str, **kw: Any) -> SenderConfig:
    return SenderConfig(
        kafka=KafkaAccess(settings.kafka_bootstrap), messages=MessageConfig(PUBLIC), topic=topic,
        group=f"{settings.consumer_group}-notify", post_timeout_s=1.0,
        **{"session_timeout_ms": 6000, "heartbeat_interval_ms": 300, **kw},
    )  # fmt: skip


async def true_ends(settings: Settings, topic: str, records: int, timeout: float = 15.0) -> dict[int, int]:
    """Each partition's end offset, found by reading the topic's ``records`` records: Tansu's
    ListOffsets answers a record batch's base offset + 1, not its last record's + 1, so
    ``end_offsets`` falls short after a batched send."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends: dict[int, int] = {}
        seen = 0
        deadline = asyncio.get_running_loop().time() + timeout
        while seen < records:
            assert asyncio.get_running_loop().time() < deadline, f"read {seen} of {records} records"
            for tp, recs in (await consumer.getmany(timeout_ms=200)).items():
                seen += len(recs)
                ends[tp.partition] = recs[-1].offset + 1
        return ends
    finally:
        await consumer.stop()


async def committed_to(settings: Settings, topic: str, group: str, ends: dict[int, int]) -> bool:
    """Every record up to ``ends`` finished and committed by the senders' group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group)
    await consumer.start()
    try:
        for p, end in ends.items():
            if (await consumer.committed(TopicPartition(topic, p)) or 0) < end:
                return False
        return True
    finally:
        await consumer.stop()


class Counting:
    """A publisher that counts what it published (the detectors' producer, in tests)."""

    def __init__(self, producer: Producer) -> None:
        self.producer, self.sent = producer, 0

    async def send_all_or_raise(self, messages: Sequence[tuple[str, bytes | None, bytes]]) -> None:
        await self.producer.send_all_or_raise(messages)
        self.sent += len(messages)


async def all_done(settings: Settings, topic: str, group: str, records: int) -> None:
    """Wait until the senders' group has finished and committed ``records`` records."""
    ends = await true_ends(settings, topic, records)
    await wait_for(lambda: committed_to(settings, topic, group, ends), timeout=30, what="senders done")
