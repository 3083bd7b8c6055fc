"""A process's notifications: its detector and its sender, started and stopped together.

For the runtime's composition root: one object to build from the robots, the store, the
producer and the alert computation, started after storage and the producer, stopped
before them. Either half may run alone (a process that only detects, or only posts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from notify.config import RobotConfig
from notify.detector import AlertSource, Detector, DetectorConfig, Publisher
from notify.metrics import NotifyMetrics
from notify.sender import Sender, SenderConfig
from processors.store import ClickHouse


@dataclass(frozen=True)
class NotifyConfig:
    sender: SenderConfig | None  # None: this process posts nothing (another one does)
    detector: DetectorConfig | None  # None: this process detects nothing


class Notifications:
    def __init__(
        self,
        config: NotifyConfig,
        robots: Sequence[RobotConfig],
        store: ClickHouse,
        publisher: Publisher,
        alerts: AlertSource,
        metrics: NotifyMetrics | None = None,
    ) -> None:
        self.metrics = metrics or NotifyMetrics()
        self.detector = (
            Detector(config.detector, robots, store, publisher, alerts, self.metrics) if config.detector else None
        )
        self.sender = Sender(config.sender, robots, store, self.metrics) if config.sender else None

    async def start(self) -> None:
        """The sender first: what the detector publishes is then already being read."""
        if self.sender is not None:
            await self.sender.start()
        if self.detector is not None:
            await self.detector.start()

    async def stop(self) -> None:
        if self.detector is not None:
            await self.detector.stop()
        if self.sender is not None:
            await self.sender.stop()
