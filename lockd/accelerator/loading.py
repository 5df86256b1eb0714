"""Reading the accelerator table: TOML (the shipped `variants.toml` or an operator's file).

An operator replaces the shipped table with a file of the same shape
(`LOCKD_ACCELERATORS_FILE`, read by `lockd.config` at start, installed by the entry points), to
add a variant the PyTorch index has started to publish or drop one a mirror does not carry.
Every mistake in a file is an `InvalidAcceleratorTable` that names the key. The TOML parser
and the package-data reader load when a table is read (`lockd.accelerator.registry` reads the
shipped one when first asked for), not when this module is imported.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from lockd.accelerator.table import (
    KINDS,
    OS_FAMILIES,
    Accelerator,
    AcceleratorKind,
    AcceleratorTable,
    CudaNaming,
    InvalidAcceleratorTable,
    KindInfo,
    OsFamily,
)

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["load_table", "parse_table", "shipped_table"]


def _strings(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidAcceleratorTable(f"{where} must be a list of strings")
    return cast("list[str]", value)


def _version_tuple(text: object, where: str) -> tuple[int, ...]:
    if not isinstance(text, str) or not re.fullmatch(r"\d+(\.\d+)+", text):
        raise InvalidAcceleratorTable(f'{where} must be a dotted version such as "12.8", not {text!r}')
    return tuple(int(part) for part in text.split("."))


def _kind_info(kind: AcceleratorKind, data: object) -> KindInfo:
    if not isinstance(data, Mapping):
        raise InvalidAcceleratorTable(f"kinds.{kind} must be a table")
    unknown = set(data) - {"title", "driver", "triton", "family"}
    if unknown:
        raise InvalidAcceleratorTable(f"kinds.{kind} has unknown keys: {', '.join(sorted(unknown))}")
    title, driver = data.get("title", kind.upper()), data.get("driver")
    if not isinstance(title, str) or (driver is not None and not isinstance(driver, str)):
        raise InvalidAcceleratorTable(f"kinds.{kind}: title and driver must be strings")
    return KindInfo(
        kind=kind,
        title=title,
        driver=driver,
        triton=frozenset(
            canonicalize_name(n) for n in _strings(data.get("triton", []), f"kinds.{kind}.triton")
        ),
        family=frozenset(
            canonicalize_name(n) for n in _strings(data.get("family", []), f"kinds.{kind}.family")
        ),
    )


def _cuda_naming(key: str, data: object) -> CudaNaming:
    if not key.isdigit() or not isinstance(data, Mapping) or not isinstance(data.get("suffix"), str):
        raise InvalidAcceleratorTable(
            f'cuda.{key} must be a CUDA major with a suffix, e.g. [cuda.12] suffix = "cu12"'
        )
    toolkit = data.get("toolkit")
    if toolkit is not None and not isinstance(toolkit, str):
        raise InvalidAcceleratorTable(f"cuda.{key}.toolkit must be a project name")
    return CudaNaming(
        major=int(key),
        suffix=str(data["suffix"]),
        unsuffixed=bool(data.get("unsuffixed", False)),
        toolkit=None if toolkit is None else canonicalize_name(toolkit),
    )


_VARIANT_KEYS = frozenset(
    {"name", "kind", "label", "index_path", "runtime", "platforms", "labelled", "min_driver"}
)


def _variant(number: int, data: object, kinds: Mapping[AcceleratorKind, KindInfo]) -> Accelerator:
    where = f"variants[{number}]"
    if not isinstance(data, Mapping):
        raise InvalidAcceleratorTable(f"{where} must be a table")
    unknown = set(data) - _VARIANT_KEYS
    if unknown:
        raise InvalidAcceleratorTable(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
    name, kind = data.get("name"), data.get("kind")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9.]*", name):
        raise InvalidAcceleratorTable(
            f"{where}.name must be a lowercase index path such as cu128, not {name!r}"
        )
    if kind not in kinds:
        raise InvalidAcceleratorTable(f"variant {name}: kind must be one of {', '.join(kinds)}, not {kind!r}")
    runtime = (
        None if data.get("runtime") is None else _version_tuple(data["runtime"], f"variant {name} runtime")
    )
    drivers = data.get("min_driver", {})
    if not isinstance(drivers, Mapping) or not set(drivers) <= set(OS_FAMILIES):
        raise InvalidAcceleratorTable(f"variant {name}: min_driver keys are {', '.join(OS_FAMILIES)}")
    min_driver: list[tuple[OsFamily, Version]] = []
    for family in OS_FAMILIES:
        if family in drivers:
            try:
                min_driver.append((family, Version(str(drivers[family]))))
            except InvalidVersion:
                raise InvalidAcceleratorTable(
                    f"variant {name}: min_driver.{family} is not a version"
                ) from None
    label, index_path = data.get("label", name), data.get("index_path", name)
    if not isinstance(label, str) or not isinstance(index_path, str):
        raise InvalidAcceleratorTable(f"variant {name}: label and index_path must be strings")
    kind_name = cast("AcceleratorKind", kind)
    return Accelerator(
        name=name,
        kind=kind_name,
        local_label=label,
        runtime=runtime,
        index_path=index_path,
        platforms=frozenset(_strings(data.get("platforms", []), f"variant {name} platforms")),
        labelled=frozenset(_strings(data.get("labelled", []), f"variant {name} labelled")),
        min_driver=tuple(min_driver),
        info=kinds[kind_name],
    )


def parse_table(data: Mapping[str, Any], *, source: str) -> AcceleratorTable:
    """The table from parsed TOML; `InvalidAcceleratorTable` says what is wrong and where."""
    try:
        unknown = set(data) - {"kinds", "cuda", "cuda_components", "variants"}
        if unknown:
            raise InvalidAcceleratorTable(f"unknown top-level keys: {', '.join(sorted(unknown))}")
        raw_kinds = data.get("kinds", {})
        kinds = {kind: _kind_info(kind, raw_kinds.get(kind, {})) for kind in KINDS}
        if set(raw_kinds) - set(KINDS):
            raise InvalidAcceleratorTable(
                f"kinds are {', '.join(KINDS)}; unknown: {', '.join(set(raw_kinds) - set(KINDS))}"
            )
        cuda = {
            naming.major: naming for naming in (_cuda_naming(k, v) for k, v in data.get("cuda", {}).items())
        }
        variants: dict[str, Accelerator] = {}
        for number, raw in enumerate(data.get("variants", [])):
            variant = _variant(number, raw, kinds)
            if variant.name in variants:
                raise InvalidAcceleratorTable(f"variant {variant.name} is listed twice")
            if not variant.labelled <= variant.platforms:
                raise InvalidAcceleratorTable(
                    f"variant {variant.name}: labelled names a platform without builds"
                )
            if variant.kind == "cuda" and (variant.cuda_major not in cuda):
                raise InvalidAcceleratorTable(
                    f"variant {variant.name}: no [cuda.{variant.cuda_major}] naming"
                )
            variants[variant.name] = variant
        if not variants:
            raise InvalidAcceleratorTable("the table lists no variants")
    except InvalidAcceleratorTable as exc:
        raise InvalidAcceleratorTable(f"{source}: {exc.message}", context={"source": source}) from None
    except (AttributeError, TypeError) as exc:
        raise InvalidAcceleratorTable(
            f"{source}: malformed table ({exc})", context={"source": source}
        ) from None
    components = frozenset(_strings(data.get("cuda_components", []), "cuda_components"))
    return AcceleratorTable(
        variants=variants, kinds=kinds, cuda=cuda, source=source, cuda_components=components
    )


def load_table(path: Path) -> AcceleratorTable:
    """An operator's table file; `InvalidAcceleratorTable` if it cannot be read or used."""
    import tomllib  # noqa: PLC0415

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidAcceleratorTable(f"{path}: {exc}", context={"source": str(path)}) from None
    return parse_table(data, source=str(path))


def shipped_table() -> AcceleratorTable:
    """The table shipped in the package (`lockd/accelerator/variants.toml`)."""
    import tomllib  # noqa: PLC0415

    # Beside this module, where pip installs it: importlib.resources (and the tempfile it loads)
    # cost `lockd lock` ~8 ms before its first request. It stays the way for a package that is
    # not files on disk (a zip import).
    try:
        with open(os.path.join(os.path.dirname(__file__), "variants.toml"), encoding="utf-8") as shipped:
            text = shipped.read()
    except OSError:
        from importlib import resources  # noqa: PLC0415

        text = resources.files("lockd.accelerator").joinpath("variants.toml").read_text(encoding="utf-8")
    return parse_table(tomllib.loads(text), source="lockd/accelerator/variants.toml")
