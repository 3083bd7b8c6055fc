"""Deterministic seed scenarios: the 2020 figures this project is built to show, as events.

``generate(name, seed)`` gives the same events for the same seed, so the demo, the
benchmarks and the pipeline tests all replay a known stream and can check the service
against :func:`reference_totals` (an independent count by contract §3).
"""

from __future__ import annotations

from scenarios import festival, ninghai, onboarding
from scenarios.model import TOPIC_KINDS, ChannelTotals, ScheduledEvent, Totals, reference_totals

# The festival day (ninghai) is the festival plus other townships' smaller rooms: what the demo replays.
SCENARIOS = (festival.NAME, onboarding.NAME, ninghai.NAME)

__all__ = [
    "SCENARIOS",
    "TOPIC_KINDS",
    "ChannelTotals",
    "ScheduledEvent",
    "Totals",
    "generate",
    "reference_totals",
]


def generate(name: str, seed: int = 2020) -> list[ScheduledEvent]:
    """The events of scenario ``name`` (one of :data:`SCENARIOS`), sorted by ``at``."""
    if name == festival.NAME:
        return festival.generate(seed)
    if name == onboarding.NAME:
        return onboarding.generate(seed)
    if name == ninghai.NAME:
        return ninghai.generate(seed)
    raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
