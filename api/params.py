"""Query-string parameters, validated with pydantic; every failure is a 400 naming what is allowed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, ValidationError, field_validator

from api.errors import ApiError

TZ_PATTERN = re.compile(r"[+-](0\d|1[0-4]):[0-5]\d")  # always fullmatch: "$" would let "+08:00\n" by
# Contract §6: RFC 3339 with an offset; not Unix seconds, not a bare date (pydantic alone takes both).
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
RFC3339_FORM = "RFC 3339 with an offset, like 2020-02-29T10:00:00+08:00 or 2020-02-29T02:00:00Z"
DECIMAL = re.compile(r"[0-9]{1,18}")


def _rfc3339(value: Any) -> Any:
    if not isinstance(value, str) or not RFC3339.fullmatch(value):
        raise ValueError(f"expected {RFC3339_FORM}")
    return value


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
DEFAULT_TZ = "+08:00"
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2262, 1, 1, tzinfo=UTC)


class TimeParams(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    from_: Rfc3339 | None = None
    to: Rfc3339 | None = None
    tz: str = DEFAULT_TZ

    @field_validator("tz")
    @classmethod
    def _tz(cls, v: str) -> str:
        if not TZ_PATTERN.fullmatch(v):
            raise ValueError("tz must be an offset like +08:00 or -05:30 (at most ±14:59)")
        return v

    @property
    def offset_seconds(self) -> int:
        sign = -1 if self.tz[0] == "-" else 1
        hours, minutes = int(self.tz[1:3]), int(self.tz[4:6])
        return sign * (hours * 3600 + minutes * 60)

    @property
    def tzinfo(self) -> timezone:
        return timezone(timedelta(seconds=self.offset_seconds))

    def bounds(self) -> tuple[datetime, datetime]:
        """[from, to) in UTC, clamped to what ClickHouse's DateTime64 can hold."""
        lo = self.from_.astimezone(UTC) if self.from_ else EARLIEST
        hi = self.to.astimezone(UTC) if self.to else LATEST
        return min(max(lo, EARLIEST), LATEST), min(max(hi, EARLIEST), LATEST)

    def render(self, value: datetime | None) -> str | None:
        """An RFC 3339 string in the requested offset (stored times are UTC)."""
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(self.tzinfo).isoformat()


def _fail(exc: ValidationError) -> ApiError:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]).replace("from_", "from")
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return ApiError(400, "; ".join(parts))


def time_params(request: web.Request) -> TimeParams:
    q = request.query
    # An unencoded '+' in a query string arrives as a space ("+08:00" -> " 08:00").
    raw = {k: (v.replace(" ", "+") if v else v) for k, v in
           {"from_": q.get("from"), "to": q.get("to"), "tz": q.get("tz", DEFAULT_TZ)}.items()}  # fmt: skip
    try:
        params = TimeParams.model_validate({k: v for k, v in raw.items() if v is not None})
    except ValidationError as exc:
        raise _fail(exc) from None
    if params.from_ is not None and params.to is not None and params.from_ >= params.to:
        raise ApiError(400, "from must be earlier than to")
    return params


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    """An offset or limit: plain decimal digits only (``int()`` would also take " 5",
    "+5", "1_000" and other scripts' digits), within [lo, hi]; else a 400 naming it."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if not DECIMAL.fullmatch(raw) or not lo <= int(raw) <= hi:
        raise ApiError(400, f"{name}: expected a decimal integer from {lo} to {hi}")
    return int(raw)


def strict_time_params(request: web.Request) -> TimeParams:
    """``time_params`` accepting ``from``/``to`` only as RFC 3339 date-times with an
    offset (contract §6), not as the Unix seconds pydantic would also read."""
    for name in ("from", "to"):
        value = request.query.get(name)
        if value is not None and not RFC3339.fullmatch(value.replace(" ", "+")):
            raise ApiError(400, f"{name}: must be an RFC 3339 date-time with an offset, e.g. 2020-02-29T09:00:00+08:00")
    return time_params(request)
