"""Money without floats: yuan strings and fen integers, converted exactly.

抖店 and 快手 give fen as integers (PLATFORMS.md §1, §2); 拼多多 and 淘宝 give yuan
strings (``"100.00"``). A float on the way (``float("0.29") * 100 == 28.999…``) loses a fen
now and then, so neither function ever builds one: JSON numbers with a fraction are parsed
as ``Decimal`` (:func:`loads`) and everything else is integer arithmetic on digits.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

MAX_FEN = 10**12  # contract §2: 0 ≤ money ≤ 10^12
_YUAN = re.compile(r"^(?P<int>\d{1,11})(?:\.(?P<frac>\d{1,2}))?$")
_DIGITS = re.compile(r"^\d{1,13}$")
_DECODER = json.JSONDecoder(parse_float=Decimal)


class MoneyError(ValueError):
    """An amount that is not exact, negative, or beyond contract §2's range."""


def loads(text: str | bytes) -> Any:
    """``json.loads`` whose fractional numbers are ``Decimal`` (never float) and whose
    integers stay exact whatever their size (order ids beyond 2^53). One decoder for all:
    ``json.loads`` with a hook builds a new one each call (~2% of a push's CPU)."""
    if isinstance(text, bytes):  # as json.loads does: UTF-8 (with or without BOM), -16 or -32
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    return _DECODER.decode(text)


def _checked(value: int) -> int:
    if not 0 <= value <= MAX_FEN:
        raise MoneyError(f"{value} fen is outside [0, 10^12]")
    return value


def yuan_to_fen(value: str | Decimal | int) -> int:
    """``"12.3"`` → 1230, ``"0.07"`` → 7, ``12`` → 1200; more than two decimals, a sign,
    an exponent or a blank raise :class:`MoneyError` (a third decimal is not money)."""
    if isinstance(value, bool):
        raise MoneyError("a boolean is not an amount")
    if isinstance(value, int):
        return _checked(value * 100)
    text = format(value, "f") if isinstance(value, Decimal) else value.strip()
    m = _YUAN.match(text)
    if m is None:
        # "12.300" from a Decimal is exact: drop zeros past the second decimal only
        whole, dot, frac = text.partition(".")
        if dot and len(frac) > 2 and set(frac[2:]) == {"0"}:
            return yuan_to_fen(f"{whole}.{frac[:2]}")
        raise MoneyError(f"{value!r} is not a yuan amount with at most two decimals")
    frac = (m["frac"] or "").ljust(2, "0")
    return _checked(int(m["int"]) * 100 + int(frac))


def fen(value: Any) -> int:
    """A fen amount given as an integer or a string of digits (some gateways quote
    numbers); a float, a fraction or a negative raises :class:`MoneyError`."""
    if isinstance(value, bool):
        raise MoneyError("a boolean is not an amount")
    if isinstance(value, int):
        return _checked(value)
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return _checked(int(value))
    if isinstance(value, str) and _DIGITS.match(value.strip()):
        return _checked(int(value.strip()))
    raise MoneyError(f"{value!r} is not a whole number of fen")


def fen_to_yuan(value: int) -> str:
    """1230 → ``"12.30"`` (for fakes and messages; never parsed back through a float)."""
    _checked(value)
    return f"{value // 100}.{value % 100:02d}"


def ident(value: Any) -> str:
    """An id as an exact string: JSON integers beyond 2^53 arrive as Python ints (exact),
    strings stay strings; a float means precision was already lost, so it is refused."""
    if isinstance(value, bool) or value is None or isinstance(value, float | Decimal):
        raise ValueError(f"{value!r} is not an id")
    text = str(value).strip()
    if not text:
        raise ValueError("empty id")
    return text
