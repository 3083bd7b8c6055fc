"""``livesales replay``: put a seed scenario on the configured Kafka topics."""

from __future__ import annotations

import sys
from collections.abc import Callable

from aiokafka import AIOKafkaProducer

from ground.settings import Settings
from ingest.kafka_security import kafka_security
from livesales.wiring import kafka_access
from scenarios import generate
from scenarios.replay import replay, topic_map


def print_progress(label: str) -> Callable[[int, int], None]:
    def progress(sent: int, total: int) -> None:
        sys.stdout.write(f"\r{label}: {sent:,}/{total:,} events ({sent / max(total, 1):.0%})")
        sys.stdout.flush()
        if sent == total:
            sys.stdout.write("\n")

    return progress


async def replay_to_kafka(settings: Settings, scenario: str, speed: float, seed: int) -> int:
    events = generate(scenario, seed)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5, **kafka_security(kafka_access(settings))
    )
    await producer.start()
    try:
        return await replay(events, producer, topic_map(settings), speed, print_progress(scenario))
    finally:
        await producer.stop()
