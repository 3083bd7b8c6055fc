"""The robots of ``LIVESALES_NOTIFY_FILE`` (contract §8), read once at start into frozen values.

A robot file is edited by hand by whoever runs the service. A typo there must stop the
start with one line naming the file and the field (ground.config_errors), not surface an
hour later as posts that silently never arrive: so every field is checked here, a
duplicate robot name is refused (the notifications table is keyed by it), and a secret on
a kind that has no signing is refused rather than ignored (its owner believes it is used).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from api.auth import SCOPE_FORMS, Scope, ScopeText
from ground.config_errors import ConfigError, location, message, read_json_file

NOTIFY_FILE_ENV = "LIVESALES_NOTIFY_FILE"
PUBLIC_URL_ENV = "LIVESALES_PUBLIC_URL"
KINDS = ("dingtalk", "wecom", "feishu")
ALERT_RULES = ("silence", "refund_spike", "pace_drop")
STATUS_RULES = ("live_started", "live_ended")
RULES = (*ALERT_RULES, *STATUS_RULES)
SIGNED_KINDS = frozenset({"dingtalk", "feishu"})


@dataclass(frozen=True)
class RobotConfig:
    """One robot: where to post, how to sign, which channels and which transitions."""

    name: str
    kind: Literal["dingtalk", "wecom", "feishu"]
    url: str
    secret: str | None
    scope: Scope
    rules: frozenset[str]

    def wants(self, rule: str, district: str, township: str) -> bool:
        """Whether a transition of ``rule`` of a channel placed at (district, township) is
        this robot's: a channel without a place (known from stream stats only) is seen
        by an unscoped robot alone, as by an unscoped token."""
        if rule not in self.rules:
            return False
        s = self.scope
        if s.is_all:
            return True
        return district == s.district and (s.township is None or township == s.township)

    def __repr__(self) -> str:  # the URL and secret carry credentials: never in a log line
        return f"RobotConfig(name={self.name!r}, kind={self.kind!r}, rules={sorted(self.rules)!r})"


class _Robot(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
    kind: Literal["dingtalk", "wecom", "feishu"]
    url: str = Field(min_length=1, max_length=2000)
    secret: str | None = Field(default=None, min_length=1, max_length=500)
    scope: ScopeText = "all"
    rules: list[Literal["silence", "refund_spike", "pace_drop", "live_started", "live_ended"]] = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        u = urlparse(v)
        if u.scheme not in ("http", "https") or not u.netloc:
            raise ValueError("expected an http(s):// webhook URL")
        return v


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    robots: list[_Robot]


def _why(err: dict[str, object]) -> str:
    loc = err["loc"]
    last = loc[-1] if isinstance(loc, tuple) and loc else None
    if last == "scope":
        return SCOPE_FORMS
    if last == "kind":
        return f"expected one of {', '.join(KINDS)}"
    if isinstance(loc, tuple) and len(loc) >= 2 and loc[-2] == "rules" and isinstance(last, int):
        return f"expected one of {', '.join(RULES)}"
    if err["type"] == "extra_forbidden":
        return "unknown field"
    return message(err)


def parse_robots(doc: object, where: str) -> tuple[RobotConfig, ...]:
    """The robots of a parsed notify document; ConfigError(where, "<field>: <why>")."""
    try:
        robots = _File.model_validate(doc).robots
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        field = location(tuple(err["loc"])) or "(top level)"
        raise ConfigError(where, f"{field}: {_why(dict(err))}") from None
    first: dict[str, int] = {}
    out = []
    for i, r in enumerate(robots):
        if r.name in first:
            other = first[r.name]
            raise ConfigError(where, f"robots[{i}].name: {r.name!r} is also robots[{other}]'s; names are unique")
        first[r.name] = i
        if r.secret is not None and r.kind not in SIGNED_KINDS:
            raise ConfigError(where, f"robots[{i}].secret: {r.kind} robots are not signed (the key is in the URL)")
        out.append(RobotConfig(r.name, r.kind, r.url, r.secret, Scope.parse(r.scope), frozenset(r.rules)))
    return tuple(out)


def load_robots(path: Path | str) -> tuple[RobotConfig, ...]:
    """The robots of the file at ``path`` (LIVESALES_NOTIFY_FILE), or a ConfigError whose
    ``line`` names the variable, the file and the field. An empty list is allowed: the
    file may be deployed before any group has a robot."""
    where = f"{NOTIFY_FILE_ENV}={path}"
    return parse_robots(read_json_file(where, path), where)


def check_public_url(url: str) -> str:
    """LIVESALES_PUBLIC_URL without its trailing slash; ConfigError unless http(s)."""
    u = urlparse(url)
    if u.scheme not in ("http", "https") or not u.netloc or u.query or u.fragment:
        raise ConfigError(f"{PUBLIC_URL_ENV}={url[:80]}", "expected the dashboard's http(s):// address")
    return url.rstrip("/")
