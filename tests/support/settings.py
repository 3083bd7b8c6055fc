"""Settings with some values changed, wherever they live (a setting or internal tuning)."""

from __future__ import annotations

from typing import Any

from ground.settings import Settings, Tuning


def tuned(settings: Settings, **changes: Any) -> Settings:
    """``tuned(s, live_poll_ms=100, api_port=0)``: Tuning's names go to ``s.tuning``."""
    tuning = {k: changes.pop(k) for k in list(changes) if k in Tuning.model_fields}
    if tuning:
        changes["tuning"] = settings.tuning.model_copy(update=tuning)
    return settings.model_copy(update=changes)
