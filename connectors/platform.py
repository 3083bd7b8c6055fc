"""What a platform module provides, and the HTTP plumbing every platform's API shares.

A platform module (``douyin.py``, ``kuaishou.py``) is one :class:`Platform`: it verifies and
parses pushes (:meth:`Platform.verify`), answers them in the platform's words
(``success_body``), and builds an :class:`PlatformApi` per app that fetches one order or
every order updated in a window. Adding 微信小店 is one more such module
(docs/CONNECTORS.md).

Errors are split by what the caller does next: :class:`PlatformUnavailable` (5xx, timeout,
rate limit, connection refused: wait and retry, the work stays on Kafka) and
:class:`PlatformRefused` (the platform said no: retrying the same call will not help).
Neither message ever carries a URL: the platforms put tokens and signatures in the query.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import aiohttp

from connectors.config import AppConfig, ShopConfig
from connectors.model import Notice, PlatformOrder
from connectors.money import loads


def unexpected(exc: BaseException) -> str:
    """An unexpected error as its type and where it was raised, never its text."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
    return f"{exc.__class__.__name__}{where}"


class PlatformUnavailable(RuntimeError):
    """The platform's API cannot answer now (retry later)."""


class PlatformRefused(RuntimeError):
    """The platform answered with an error that a retry will not change."""


class TokenExpired(PlatformRefused):
    """The access token was refused: refresh it and call again (once)."""


class PushRejected(Exception):
    """A push that fails authentication (401); ``app_key`` names the app whose check failed."""

    def __init__(self, platform: str, app_key: str | None, why: str) -> None:
        super().__init__(why)
        self.platform, self.app_key = platform, app_key


@dataclass(frozen=True, slots=True)
class PushBatch:
    """A verified push: the app it authenticated as, and its order messages (none for an
    activation or test message, which is answered with success all the same)."""

    app: AppConfig
    notices: tuple[Notice, ...]
    activation: bool = False


class PlatformApi(Protocol):
    """One app's API: fetch an order (for a thin push), or every order updated in a window."""

    async def order(self, shop: ShopConfig, notice: Notice) -> PlatformOrder | None: ...

    def updated(self, shop: ShopConfig, start: datetime, end: datetime) -> AsyncIterator[list[PlatformOrder]]: ...


class Platform(Protocol):
    name: str
    success_body: bytes

    def verify(self, apps: Sequence[AppConfig], headers: Mapping[str, str], body: bytes, now: datetime) -> PushBatch:
        """Authenticate and parse a push; raises PushRejected."""
        ...

    def api(self, app: AppConfig, session: aiohttp.ClientSession, timeout_s: float) -> PlatformApi: ...


async def call_json(
    session: aiohttp.ClientSession, method: str, url: str, what: str, timeout_s: float, **kwargs: Any
) -> Any:
    """One HTTP call whose answer is JSON (fractions as Decimal, big ints exact).

    429 and 5xx, timeouts and connection errors raise PlatformUnavailable; other non-200
    answers and unparseable bodies PlatformRefused. ``what`` (the API method's name) is the
    only thing an error says about the request."""
    try:
        async with session.request(method, url, timeout=aiohttp.ClientTimeout(total=timeout_s), **kwargs) as resp:
            body = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise PlatformUnavailable(f"{what}: {exc.__class__.__name__}") from None
    if status == 429 or status >= 500:
        raise PlatformUnavailable(f"{what}: HTTP {status}")
    if status != 200:
        raise PlatformRefused(f"{what}: HTTP {status}")
    try:
        return loads(body)
    except ValueError:
        raise PlatformRefused(f"{what}: answer is not JSON") from None


@dataclass
class Token:
    access_token: str
    refresh_token: str | None
    expires_at: float  # loop time


class TokenBox:
    """One shop's access token: created or refreshed by its platform module, one at a time
    (a lock, so a burst of calls after expiry refreshes once)."""

    def __init__(self) -> None:
        self.token: Token | None = None
        self.lock = asyncio.Lock()

    def valid(self, margin_s: float) -> str | None:
        t = self.token
        if t is not None and asyncio.get_running_loop().time() < t.expires_at - margin_s:
            return t.access_token
        return None
