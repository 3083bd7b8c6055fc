"""Put a scenario on Kafka, as fast as possible or paced like the live stream was.

The demo replays the festival at e.g. 60x (six hours in six minutes) so the dashboard
moves like it did on the day, and loads the onboarding history at once; benchmarks and
tests replay at full speed. Sends are pipelined: ``AIOKafkaProducer.send`` only queues
a message (it blocks only when the producer's buffer is full, which is the
back-pressure we want), and delivery is confirmed for a whole chunk at a time, because
waiting for each acknowledgement in turn would cap throughput at one round trip per
message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from aiokafka import AIOKafkaProducer

from scenarios.model import TOPIC_KINDS, ScheduledEvent

if TYPE_CHECKING:
    from ground.settings import Settings

CHUNK = 1000  # deliveries confirmed (and progress reported) per this many messages


def topic_map(settings: Settings) -> dict[str, str]:
    """``topic_kind`` -> topic name, following the service's (possibly renamed) topics."""
    return {
        "orders": settings.topic_orders,
        "onboarding": settings.topic_onboarding,
        "stream_stats": settings.topic_stream_stats,
        "channels": settings.topic_channels,
    }


def encode(event: ScheduledEvent) -> tuple[bytes, bytes]:
    """(key, value) as the contract recommends: compact UTF-8 JSON, Chinese kept as is."""
    value = json.dumps(event.event, ensure_ascii=False, separators=(",", ":")).encode()
    return event.key.encode(), value


class Clock(Protocol):
    """What pacing needs of a clock: the time now, and a wait until a time."""

    def time(self) -> float: ...

    async def wait_until(self, due: float, stop: asyncio.Event | None) -> None:
        """Return at ``due`` (this clock's time), or earlier once ``stop`` is set."""


class LoopClock:
    """The running event loop's clock: what a replay is paced by unless given another."""

    def time(self) -> float:
        return asyncio.get_running_loop().time()

    async def wait_until(self, due: float, stop: asyncio.Event | None) -> None:
        delay = due - self.time()
        if delay <= 0:
            return
        if stop is None:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)


async def replay(
    events: Sequence[ScheduledEvent],
    producer: AIOKafkaProducer,
    topics: Mapping[str, str],
    speed: float = 60.0,
    progress: Callable[[int, int], None] | None = None,
    stop: asyncio.Event | None = None,
    clock: Clock | None = None,
) -> int:
    """Send ``events`` in order; return how many were sent (and acknowledged).

    Scenario second ``at`` goes out ``at / speed`` wall seconds after the start;
    ``speed`` 0 or infinity means no pacing. ``progress(sent, total)`` is called after
    each confirmed chunk, before each pacing pause, and at the end. Setting ``stop``
    ends the replay early; what was already queued is still delivered. A failed
    delivery raises (the broker's error), since a partial scenario would mislead.
    ``clock`` paces it (default: the event loop's).
    """
    if math.isnan(speed) or speed < 0:
        raise ValueError(f"speed must be >= 0 (0 or inf: no pacing), got {speed}")
    unknown = {e.topic_kind for e in events} - set(topics)
    if unknown:
        raise ValueError(f"no topic for {sorted(unknown)}; topic kinds are {', '.join(TOPIC_KINDS)}")
    paced = 0 < speed < math.inf
    clock = clock or LoopClock()
    start = clock.time()
    total = len(events)
    pending: list[asyncio.Future[object]] = []
    sent = reported = 0

    def report() -> None:
        nonlocal reported
        if progress is not None and sent != reported:
            progress(sent, total)
        reported = sent

    for event in events:
        if stop is not None and stop.is_set():
            break
        if paced:
            due = start + event.at / speed
            if due > clock.time():
                report()
                await clock.wait_until(due, stop)
                if stop is not None and stop.is_set():
                    break
        key, value = encode(event)
        pending.append(await producer.send(topics[event.topic_kind], value=value, key=key))
        sent += 1
        if len(pending) >= CHUNK:
            await asyncio.gather(*pending)
            pending.clear()
            report()
    await asyncio.gather(*pending)
    report()
    return sent
