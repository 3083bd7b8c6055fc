"""Each app's :class:`~connectors.platform.PlatformApi`, over one HTTP session per process,
shared by the push worker and reconciliation (so a shop's token is created once)."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from connectors.config import AppConfig, ConnectorsConfig
from connectors.platform import Platform, PlatformApi
from connectors.registry import PLATFORMS


class Apis:
    def __init__(
        self, connectors: ConnectorsConfig, timeout_s: float = 10.0, platforms: Mapping[str, Platform] = PLATFORMS
    ) -> None:
        self.connectors, self.timeout_s, self.platforms = connectors, timeout_s, platforms
        self._session: aiohttp.ClientSession | None = None
        self._apis: dict[tuple[str, str], PlatformApi] = {}

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))

    async def close(self) -> None:
        session, self._session = self._session, None
        self._apis.clear()
        if session is not None:
            await session.close()

    def get(self, app: AppConfig) -> PlatformApi:
        if self._session is None:
            raise RuntimeError("Apis not started")
        key = (app.platform, app.app_key)
        api = self._apis.get(key)
        if api is None:
            api = self._apis[key] = self.platforms[app.platform].api(app, self._session, self.timeout_s)
        return api
