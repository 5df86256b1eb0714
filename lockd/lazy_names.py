"""A package's names loaded from its modules on first use (PEP 562), not when the package is imported.

Every `lockd.<package>.<module>` import runs the package's `__init__` first: a package that
imported its modules there made every import of one module load them all (the settings loaded
the index client; `lockd lock`'s first request waited for the page parsers).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str, module_of: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The `__getattr__` and `__dir__` of `package`, whose name N lives in `package.module_of[N]`.

    `namespace` is the package's `globals()`: a name, once loaded, is put there, so later lookups
    never reach `__getattr__` again.
    """

    def get(name: str) -> object:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def names() -> list[str]:
        return sorted({*namespace, *namespace.get("__all__", ())})

    return get, names
