"""Query-string parameters, validated with pydantic; every failure is a 400 naming what is allowed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError, field_validator

from api.errors import ApiError

TZ_PATTERN = re.compile(r"^[+-](0\d|1[0-4]):[0-5]\d$")
DEFAULT_TZ = "+08:00"
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2262, 1, 1, tzinfo=UTC)


class TimeParams(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    from_: AwareDatetime | None = None
    to: AwareDatetime | None = None
    tz: str = DEFAULT_TZ

    @field_validator("tz")
    @classmethod
    def _tz(cls, v: str) -> str:
        if not TZ_PATTERN.match(v):
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


RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


def strict_time_params(request: web.Request) -> TimeParams:
    """``time_params`` accepting ``from``/``to`` only as RFC 3339 date-times with an
    offset (contract §6), not as the Unix seconds pydantic would also read."""
    for name in ("from", "to"):
        value = request.query.get(name)
        if value is not None and not RFC3339.match(value.replace(" ", "+")):
            raise ApiError(400, f"{name}: must be an RFC 3339 date-time with an offset, e.g. 2020-02-29T09:00:00+08:00")
    return time_params(request)
