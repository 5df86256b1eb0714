"""The accelerator table in use, and `cuda=` values read against it.

The shipped table is in use until an entry point installs the operator's (`install_table`,
once, at start). `VARIANTS` is a live view of the table in use, so every user derives from
the one table. The shipped table is read when it is first asked for, not at import: `lockd
lock` without `--cuda` asks the index for its first page before anything reads the table, and
reading it (TOML, package data, every variant checked) was a tenth of that start-up.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator, Mapping

from lockd.accelerator.loading import shipped_table
from lockd.accelerator.table import Accelerator, AcceleratorTable
from lockd.errors import InvalidTarget

__all__ = ["VARIANTS", "current_table", "install_table", "parse_variant"]

_CUDA_DOTTED = re.compile(r"^(?:cuda)?[-_ ]?(\d{1,2})\.(\d)$")

_installed: list[AcceleratorTable] = []  # empty: the shipped one, read when first asked for
_install_lock = threading.Lock()


@functools.cache
def _shipped() -> AcceleratorTable:
    return shipped_table()


def current_table() -> AcceleratorTable:
    """The table in use: the operator's if one was installed, else the shipped one."""
    try:
        return _installed[-1]
    except IndexError:  # nothing installed yet, or `install_table(None)` just ran
        pass
    with _install_lock:
        if not _installed:
            _installed.append(_shipped())
        return _installed[-1]


def install_table(table: AcceleratorTable | None) -> None:
    """Use `table` from now on (None: the shipped one). Entry points call it once, at start."""
    with _install_lock:
        _installed[:] = [] if table is None else [table]


class _CurrentVariants(Mapping[str, Accelerator]):
    """`VARIANTS`: the variants of the table in use, by name, in table order."""

    def __getitem__(self, name: str) -> Accelerator:
        return current_table().variants[name]

    def __iter__(self) -> Iterator[str]:
        return iter(current_table().variants)

    def __len__(self) -> int:
        return len(current_table().variants)


VARIANTS: Mapping[str, Accelerator] = _CurrentVariants()


def parse_variant(text: str | None) -> Accelerator | None:
    """`cu124`, `CU124`, `12.4` and `cuda12.4` name the same variant; empty or None means none."""
    if text is None or text.strip() == "" or text.strip().lower() == "none":
        return None
    key = text.strip().lower()
    dotted = _CUDA_DOTTED.match(key)
    if dotted:
        key = f"cu{dotted.group(1)}{dotted.group(2)}"
    variant = current_table().variants.get(key)
    if variant is None:
        raise InvalidTarget(
            f"unknown accelerator variant {text!r}",
            hint="use one of: " + ", ".join(VARIANTS) + ", or auto with driver=",
            context={"field": "cuda", "value": text},
        )
    return variant
