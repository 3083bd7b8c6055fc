"""Start-up errors an operator can act on: one line naming the env var, the file and the field.

A bad setting must not reach the operator as a 40-line traceback that names neither the
variable nor the file: ``livesales`` prints ``ConfigError.line`` on stderr and exits 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

ENV_PREFIX = "LIVESALES_"
# Values never echoed back: they may carry passwords (DSNs) or tokens.
_SECRET_HINTS = ("dsn", "token", "password", "secret")


class ConfigError(Exception):
    """A setting or settings file the service cannot start with."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")
        self.where = where
        self.what = what

    @property
    def line(self) -> str:
        return f"livesales: {self.where}: {self.what}"


def location(loc: tuple[int | str, ...]) -> str:
    """``("tokens", 2, "scope")`` -> ``tokens[2].scope``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def message(err: Any) -> str:
    """A pydantic error message without pydantic's ``Value error, `` prefix."""
    return str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")


def from_settings_error(exc: ValidationError) -> ConfigError:
    """The first invalid ``LIVESALES_*`` variable of a Settings validation error."""
    err = exc.errors(include_url=False)[0]
    field = str(err["loc"][0]) if err["loc"] else "?"
    var = f"{ENV_PREFIX}{field.upper()}"
    if len(err["loc"]) > 1:  # inside a JSON setting (LIVESALES_TUNING): name the key too
        var += "." + location(err["loc"][1:])
    value = err.get("input")
    if isinstance(value, str | int | float) and not any(h in field.lower() for h in _SECRET_HINTS):
        shown = str(value)
        where = f"{var}={shown[:80]!r}" if not shown.isprintable() or len(shown) > 80 else f"{var}={shown}"
    else:
        where = var
    return ConfigError(where, message(err))


def read_json_file(where: str, path: Path | str) -> Any:
    """A settings file's JSON document, or a ConfigError at ``where`` (``VAR=path``) saying
    why it cannot be read: the common start of every file a setting names."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(where, f"cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(where, f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
