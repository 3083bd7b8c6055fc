"""Bearer tokens, their scopes, and a per-token rate limit.

Tokens come from ``LIVESALES_API_TOKENS_FILE``; without it every call but the health
endpoints and the dashboard's static files is refused. Tokens are compared in constant
time against every known token (no early exit), so timing reveals nothing.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from aiohttp import web
from pydantic import AfterValidator, BaseModel, Field, StrictBool, ValidationError

from api.errors import ApiError
from ground.config_errors import ConfigError, location, message, read_json_file

TOKENS_ENV = "LIVESALES_API_TOKENS_FILE"
SCOPE_FORMS = 'expected "all", "district:<区县>" or "township:<区县>/<乡镇>"'


@dataclass(frozen=True)
class Scope:
    """What a token may see: everything, one district, or one township of a district."""

    district: str | None = None
    township: str | None = None

    @classmethod
    def parse(cls, text: str) -> Scope:
        if text == "all":
            return cls()
        kind, _, value = text.partition(":")
        if kind == "district" and value:
            return cls(district=value)
        if kind == "township":
            district, _, township = value.partition("/")
            if district and township:
                return cls(district=district, township=township)
        raise ValueError(f"{SCOPE_FORMS}, got {text!r}")

    @property
    def is_all(self) -> bool:
        return self.district is None


def _parsable(text: str) -> str:
    Scope.parse(text)
    return text


ScopeText = Annotated[str, AfterValidator(_parsable)]
"""A scope as a configuration file writes it, refused unless ``Scope.parse`` takes it
(the tokens file here, the robots file of notify.config)."""


class TokenEntry(BaseModel):
    token: str = Field(min_length=8)
    name: str
    scope: ScopeText = "all"
    ingest: StrictBool = False  # "yes" or 1 is refused: a typo must not grant ingest


class TokensFile(BaseModel):
    tokens: list[TokenEntry]


def read_tokens_file(path: Path) -> list[TokenEntry]:
    """The file's entries, or a ConfigError naming the env var, the file and the field.

    Refused as well as malformed: an empty list (an API nobody can call) and a token
    listed twice (which scope would it have?)."""
    where = f"{TOKENS_ENV}={path}"
    doc = read_json_file(where, path)
    try:
        entries = TokensFile.model_validate(doc).tokens
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        field = location(err["loc"]) or "(top level)"
        what = message(err)
        if err["loc"][-1:] == ("scope",):
            what = SCOPE_FORMS
        elif err["loc"][-1:] == ("ingest",):
            what = "expected true or false (a JSON boolean)"
        raise ConfigError(where, f"{field}: {what}") from None
    if not entries:
        raise ConfigError(where, "tokens: empty list: nobody could call the API; list at least one token")
    first: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if entry.token in first:
            raise ConfigError(where, f"tokens[{i}].token: same token as tokens[{first[entry.token]}]; list each once")
        first[entry.token] = i
    return entries


@dataclass(frozen=True)
class Principal:
    name: str
    scope: Scope
    ingest: bool


class TokenStore:
    def __init__(self, entries: list[TokenEntry]) -> None:
        self._entries = [(e.token.encode(), Principal(e.name, Scope.parse(e.scope), e.ingest)) for e in entries]

    @classmethod
    def load(cls, path: Path | None) -> TokenStore:
        if path is None:
            return cls([])
        return cls(read_tokens_file(path))

    def authenticate(self, presented: str) -> Principal | None:
        candidate = presented.encode()
        found: Principal | None = None
        for token, principal in self._entries:
            if hmac.compare_digest(token, candidate):
                found = principal
        return found


@dataclass
class RateLimiter:
    """A token bucket per principal: ``rate`` requests/s sustained, ``burst`` at once."""

    rate: float
    burst: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def check(self, key: str) -> float:
        """0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        return 0.0


TOKENS: web.AppKey[TokenStore] = web.AppKey("tokens", TokenStore)
LIMITER: web.AppKey[RateLimiter] = web.AppKey("limiter", RateLimiter)


def principal_of(request: web.Request) -> Principal:
    """The caller, or a 401/429 ApiError. Every /v1 handler starts with this."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing bearer token: send 'Authorization: Bearer <token>'",
                       headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    principal = request.app[TOKENS].authenticate(token.strip())
    if principal is None:
        raise ApiError(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
    wait = request.app[LIMITER].check(principal.name)
    if wait > 0:
        raise ApiError(429, "rate limit exceeded; slow down", headers={"Retry-After": str(max(1, round(wait + 0.5)))})
    return principal
