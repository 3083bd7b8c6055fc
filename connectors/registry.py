"""The platform modules by name: the one place a new platform is added (docs/CONNECTORS.md)."""

from __future__ import annotations

from connectors.douyin import Douyin
from connectors.kuaishou import Kuaishou
from connectors.platform import Platform

PLATFORMS: dict[str, Platform] = {"douyin": Douyin(), "kuaishou": Kuaishou()}
