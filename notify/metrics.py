"""The robots' metrics, registered in the process's registry (ground.metrics.Metrics.registry).

Their own object rather than fields of ground.metrics.Metrics: the notify package owns its
figures and the runtime passes the registry in (no module globals, as ground.metrics).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class NotifyMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        self.transitions = Counter(
            "livesales_notify_transitions", "Transitions this process detected and published (every detecting"
            " process counts its own: the senders post each once)", ["rule", "edge"], registry=r,
        )
        self.detect_failures = Counter(
            "livesales_notify_detect_failures", "Detection rounds that failed (store or broker unavailable)",
            registry=r,
        )
        self.attempts = Counter(
            "livesales_notify_attempts", "Posts to robots by result: ok, failed, rate_limited",
            ["robot", "result"], registry=r,
        )
        self.notifications = Counter(
            "livesales_notifications", "Deliveries finished by final state: sent, dropped", ["robot", "state"],
            registry=r,
        )
        self.dropped = Counter(
            "livesales_notifications_dropped", "Deliveries dropped: older than the maximum age (an hour) before"
            " the robot answered", ["robot"], registry=r,
        )
        self.skipped = Counter(
            "livesales_notify_skipped", "Records on the notifications topic not posted: duplicate (already"
            " sent or dropped), unknown_robot (not in this process's notify file), unreadable", ["reason"],
            registry=r,
        )
        self.pending = Gauge(
            "livesales_notify_pending", "Deliveries held in memory, waiting for their robot", registry=r
        )
