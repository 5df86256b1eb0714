"""The accelerator table: every PyTorch index variant lockd knows, read from data.

The table ships as `variants.toml` beside this module; an operator's file of the same shape
replaces it (`LOCKD_ACCELERATORS_FILE`, read by `lockd.config` and installed once by the entry
points with `install_table`). Each `Accelerator` says where its index is, how its builds are
labelled (PEP 440 local versions), which runtime they link, which platforms have builds and
the oldest driver they run on; `CudaNaming` says how each CUDA major's runtime packages are
named. Nothing here does I/O beyond reading the table file.
"""

from __future__ import annotations

import re
import threading
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from lockd.errors import InvalidTarget, LockdError

__all__ = [
    "KINDS",
    "LABELLED_PROJECTS",
    "TORCH_FAMILY",
    "VARIANTS",
    "Accelerator",
    "AcceleratorKind",
    "AcceleratorTable",
    "CudaNaming",
    "InvalidAcceleratorTable",
    "KindInfo",
    "OsFamily",
    "current_table",
    "install_table",
    "load_table",
    "parse_table",
    "parse_variant",
    "shipped_table",
]

AcceleratorKind = Literal["cpu", "cuda", "rocm", "xpu"]
KINDS: tuple[AcceleratorKind, ...] = ("cpu", "cuda", "rocm", "xpu")
OsFamily = Literal["linux", "macos", "windows"]
_OS_FAMILIES: tuple[OsFamily, ...] = ("linux", "macos", "windows")

TORCH_FAMILY: frozenset[NormalizedName] = frozenset(
    canonicalize_name(name)
    for name in (
        "torch",
        "torchvision",
        "torchaudio",
        "triton",
        "pytorch-triton",
        "pytorch-triton-rocm",
        "xformers",
        "torchtext",
        "torchdata",
        "fbgemm-gpu",
    )
)

# The projects whose builds on the PyTorch index carry the variant's local label (+cu124).
LABELLED_PROJECTS: frozenset[NormalizedName] = frozenset(
    canonicalize_name(name) for name in ("torch", "torchvision", "torchaudio")
)


class InvalidAcceleratorTable(LockdError):
    """The accelerator table file is not what lockd can use; `lockd.config` reports it at start."""

    code = "invalid-accelerator-table"
    status = 500
    title = "Invalid accelerator table"


@dataclass(frozen=True, slots=True, kw_only=True)
class KindInfo:
    """What a kind of accelerator means: its name in words, its driver, its Triton builds."""

    kind: AcceleratorKind
    title: str  # CPU, CUDA, ROCm, XPU
    driver: str | None  # what `driver=` names for this kind; None: no `cuda=auto` for it
    triton: frozenset[NormalizedName]  # the kind's own Triton builds
    family: frozenset[NormalizedName]  # routed to the variant index besides the torch family


@dataclass(frozen=True, slots=True, kw_only=True)
class CudaNaming:
    """How one CUDA major's runtime packages are named on PyPI."""

    major: int
    suffix: str  # nvidia-<component>-<suffix>
    unsuffixed: bool  # torch's builds also pull unsuffixed nvidia-<component> packages
    toolkit: NormalizedName | None  # the metapackage versioned by the CUDA release

    def describe(self) -> str:
        """`-cu12`, or `-cu13 or unsuffixed nvidia-*, cuda-toolkit 13`."""
        parts = [f"-{self.suffix}"]
        if self.unsuffixed:
            parts.append("unsuffixed nvidia-*")
        if self.toolkit is not None:
            parts.append(f"{self.toolkit} {self.major}")
        return parts[0] if len(parts) == 1 else f"{parts[0]} or " + ", ".join(parts[1:])


@dataclass(frozen=True, slots=True, kw_only=True)
class Accelerator:
    """One variant of the PyTorch index, named as its index path is (`cpu`, `cu124`, `rocm6.4`)."""

    name: str
    kind: AcceleratorKind
    local_label: str  # the PEP 440 local label of this variant's builds where they carry one
    runtime: tuple[int, ...] | None  # the CUDA / ROCm version the builds link; None for cpu, xpu
    index_path: str = ""  # under the PyTorch base; the name unless the table says otherwise
    platforms: frozenset[str] = frozenset()  # the lockd platforms with builds of this variant
    labelled: frozenset[str] = frozenset()  # where its builds always carry the local label
    min_driver: tuple[tuple[OsFamily, Version], ...] = ()  # per OS family, the oldest driver
    info: KindInfo | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.index_path:
            object.__setattr__(self, "index_path", self.name)

    @property
    def kind_title(self) -> str:
        """The kind as people write it: CPU, CUDA, ROCm, XPU."""
        return self.info.title if self.info is not None else self.kind.upper()

    @property
    def cuda_major(self) -> int | None:
        """The CUDA major whose runtime packages this variant's builds need."""
        if self.kind != "cuda" or self.runtime is None:
            return None
        return self.runtime[0]

    @property
    def runtime_text(self) -> str | None:
        """`12.8`, `6.2.4`; None where the builds link no runtime lockd tracks."""
        return None if self.runtime is None else ".".join(str(part) for part in self.runtime)

    def minimum_driver(self, os_family: str) -> Version | None:
        """The oldest driver this variant's builds run on under `os_family`; None: not known."""
        for family, version in self.min_driver:
            if family == os_family:
                return version
        return None

    def describe(self) -> str:
        """`cu128 (CUDA 12.8)`, `cpu`."""
        runtime = self.runtime_text
        return self.name if runtime is None else f"{self.name} ({self.kind_title} {runtime})"


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceleratorTable:
    """The variants, their kinds and CUDA's package naming, as one value."""

    variants: Mapping[str, Accelerator]
    kinds: Mapping[AcceleratorKind, KindInfo]
    cuda: Mapping[int, CudaNaming]
    source: str  # where it was read from, for messages

    def naming(self, major: int | None) -> CudaNaming | None:
        return None if major is None else self.cuda.get(major)

    def suffixed_major(self, name: NormalizedName) -> int | None:
        """The CUDA major of a suffixed runtime package (`nvidia-nccl-cu12` → 12), else None."""
        match = _SUFFIXED.match(name)
        if match is None:
            return None
        for naming in self.cuda.values():
            if naming.suffix == match.group(1):
                return naming.major
        return int(match.group(2)) if match.group(2) else None

    def toolkit_major(self, name: NormalizedName, version: Version) -> int | None:
        """The CUDA major of a toolkit metapackage pin (`cuda-toolkit 13.0.2` → 13), else None."""
        if any(naming.toolkit == name for naming in self.cuda.values()):
            return version.major
        return None

    @staticmethod
    def is_unsuffixed_runtime(name: NormalizedName) -> bool:
        """`nvidia-cublas`: an NVIDIA component without a CUDA-major suffix."""
        return name.startswith("nvidia-") and _SUFFIXED.match(name) is None

    def triton_kind(self, name: NormalizedName) -> AcceleratorKind | None:
        """The kind whose Triton build this project is, else None."""
        for kind, info in self.kinds.items():
            if name in info.triton:
                return kind
        return None

    def family_for(self, kind: AcceleratorKind) -> frozenset[NormalizedName]:
        info = self.kinds.get(kind)
        return frozenset() if info is None else info.family


_SUFFIXED = re.compile(r"^nvidia-.+-(cu(\d+))$")
_CUDA_DOTTED = re.compile(r"^(?:cuda)?[-_ ]?(\d{1,2})\.(\d)$")


# -- reading the table -------------------------------------------------------------------------


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
    if not isinstance(drivers, Mapping) or not set(drivers) <= set(_OS_FAMILIES):
        raise InvalidAcceleratorTable(f"variant {name}: min_driver keys are {', '.join(_OS_FAMILIES)}")
    min_driver: list[tuple[OsFamily, Version]] = []
    for family in _OS_FAMILIES:
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
        unknown = set(data) - {"kinds", "cuda", "variants"}
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
    return AcceleratorTable(variants=variants, kinds=kinds, cuda=cuda, source=source)


def load_table(path: Path) -> AcceleratorTable:
    """An operator's table file; `InvalidAcceleratorTable` if it cannot be read or used."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidAcceleratorTable(f"{path}: {exc}", context={"source": str(path)}) from None
    return parse_table(data, source=str(path))


def shipped_table() -> AcceleratorTable:
    """The table shipped in the package (`lockd/accelerator/variants.toml`)."""
    text = resources.files("lockd.accelerator").joinpath("variants.toml").read_text(encoding="utf-8")
    return parse_table(tomllib.loads(text), source="lockd/accelerator/variants.toml")


# -- the table in use --------------------------------------------------------------------------

_SHIPPED = shipped_table()
_installed: list[AcceleratorTable] = [_SHIPPED]
_install_lock = threading.Lock()


def current_table() -> AcceleratorTable:
    """The table in use: the operator's if one was installed, else the shipped one."""
    return _installed[-1]


def install_table(table: AcceleratorTable | None) -> None:
    """Use `table` from now on (None: the shipped one). Entry points call it once, at start."""
    with _install_lock:
        _installed[:] = [table or _SHIPPED]


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
