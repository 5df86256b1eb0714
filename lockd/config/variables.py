"""How `LOCKD_*` variables become the fields of the settings: which variable a field is read
from, the field's type, limits and default, and the way one value goes (`checks.BEFORE`, its
type by `coercion`, its limits, `checks.AFTER`).

`settings` declares the fields and what derives from them; this module knows no one setting,
only the dataclass it is given.
"""

from __future__ import annotations

import functools
import os
import typing
from dataclasses import field, fields
from typing import Any, TypeVar

from lockd.config.checks import AFTER, BEFORE
from lockd.config.coercion import Bounds, check_number, coerce

__all__ = ["FieldSpec", "bounded", "checked", "environment", "field_specs"]

_PREFIX = "lockd_"
_T = TypeVar("_T")

FieldSpec = tuple[Any, Bounds | None, Any]  # evaluated type, limits, default


def bounded(default: _T, *, gt: float | None = None, ge: float | None = None, le: float | None = None) -> _T:
    """A number setting's default and limits."""
    return field(default=default, metadata={"bounds": Bounds(gt=gt, ge=ge, le=le)})


def environment() -> dict[str, str]:
    """`LOCKD_*` variables by field name; names are matched without case, empty values are unset."""
    found = {}
    for key, value in os.environ.items():
        lowered = key.lower()
        if lowered.startswith(_PREFIX) and value:
            found[lowered.removeprefix(_PREFIX)] = value
    return found


@functools.cache
def field_specs(settings: Any) -> dict[str, FieldSpec]:
    """Each public field's spec, in declaration order (errors list in it); `settings` is a dataclass."""
    hints = typing.get_type_hints(settings)
    return {
        spec.name: (hints[spec.name], spec.metadata.get("bounds"), spec.default)
        for spec in fields(settings)
        if not spec.name.startswith("_")
    }


def checked(name: str, value: object, annotation: Any, bounds: Bounds | None) -> object:
    """`value` for field `name`, of its type and within its limits; `ValueError` says what to write."""
    before, after = BEFORE.get(name), AFTER.get(name)
    if before is not None:
        value = before(value)
    value = coerce(value, annotation)
    check_number(value, bounds)
    if after is not None:
        try:
            value = after(value)
        except ValueError as exc:
            raise ValueError(f"Value error, {exc}") from None
    return value
