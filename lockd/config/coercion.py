"""One setting's value from its `LOCKD_*` text (or a value given in code): type and bounds.

The types settings use are few (str, int, float, bool, Path, a Literal of strings, and any of
them or None), so they are converted here rather than by pydantic, whose import costs `lockd
lock` more start-up than everything it resolves with. Acceptance and the messages follow
pydantic's lax mode, which these settings were validated with before: `1_000` and `1.0` are
an int, `yes`/`off` a bool, `inf` a float, and a bad value reads "Input should be …".
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

__all__ = ["Bounds", "check_number", "coerce"]

_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
_DIGITS = frozenset("0123456789_")


@dataclass(frozen=True, slots=True, kw_only=True)
class Bounds:
    """Inclusive or exclusive limits of a number setting."""

    gt: float | None = None
    ge: float | None = None
    le: float | None = None

    def check(self, value: float) -> None:
        # NaN compares false with everything, so it fails any bound, as in pydantic.
        if self.gt is not None and not value > self.gt:
            raise ValueError(f"Input should be greater than {_number(self.gt)}")
        if self.ge is not None and not value >= self.ge:
            raise ValueError(f"Input should be greater than or equal to {_number(self.ge)}")
        if self.le is not None and not value <= self.le:
            raise ValueError(f"Input should be less than or equal to {_number(self.le)}")


def _number(limit: float) -> str:
    return str(int(limit)) if float(limit).is_integer() else str(limit)


def coerce(value: object, annotation: Any) -> object:
    """`value` as `annotation` (an evaluated type hint), or `ValueError` with the user's message."""
    if get_origin(annotation) in (Union, types.UnionType):
        options = get_args(annotation)
        if value is None and type(None) in options:
            return None
        (annotation,) = [option for option in options if option is not type(None)]
    if get_origin(annotation) is Literal:
        return _literal(value, get_args(annotation))
    converters = {str: _str, int: _int, float: _float, bool: _bool, Path: _path}
    return converters[annotation](value)


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("Input should be a valid string")
    return value


def _ascii_integer(text: str) -> bool:
    digits = text.removeprefix("+").removeprefix("-")
    return bool(digits) and digits[0] != "_" and digits[-1] != "_" and set(digits) <= _DIGITS


def _int(value: object) -> int:
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("Input should be a valid integer, got a number with a fractional part")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        whole, dot, fraction = text.partition(".")
        if _ascii_integer(whole) and (not dot or set(fraction) <= {"0"}):
            return int(whole)
        raise ValueError("Input should be a valid integer, unable to parse string as an integer")
    raise ValueError("Input should be a valid integer")


def _float(value: object) -> float:
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            if not text.isascii():
                raise ValueError
            return float(text)
        except ValueError:
            raise ValueError("Input should be a valid number, unable to parse string as a number") from None
    raise ValueError("Input should be a valid number")


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError("Input should be a valid boolean, unable to interpret input")


def _path(value: object) -> Path:
    if isinstance(value, str | Path):
        return Path(value)
    raise ValueError("Input is not a valid path for <class 'pathlib.Path'>")


def _literal(value: object, allowed: tuple[str, ...]) -> str:
    if isinstance(value, str) and value in allowed:
        return value
    quoted = [repr(choice) for choice in allowed]
    raise ValueError("Input should be " + ", ".join(quoted[:-1]) + " or " + quoted[-1])


def check_number(value: object, bounds: Bounds | None) -> None:
    """The bounds of a number setting (None passes: an unset optional setting has no bounds)."""
    if bounds is not None and isinstance(value, int | float):
        bounds.check(value)
