"""The accelerator table as values: every PyTorch index variant lockd knows, and its kind.

Each `Accelerator` says where its index is, how its builds are labelled (PEP 440 local
versions), which runtime they link, which platforms have builds and the oldest driver they run
on; `KindInfo` what a kind's driver and Triton builds are; `CudaNaming` how each CUDA major's
runtime packages are named. The values are read from data by `lockd.accelerator.loading`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from lockd.errors import LockdError

__all__ = [
    "KINDS",
    "LABELLED_PROJECTS",
    "OS_FAMILIES",
    "TORCH_FAMILY",
    "Accelerator",
    "AcceleratorKind",
    "AcceleratorTable",
    "CudaNaming",
    "InvalidAcceleratorTable",
    "KindInfo",
    "OsFamily",
]

AcceleratorKind = Literal["cpu", "cuda", "rocm", "xpu"]
KINDS: tuple[AcceleratorKind, ...] = ("cpu", "cuda", "rocm", "xpu")
OsFamily = Literal["linux", "macos", "windows"]
OS_FAMILIES: tuple[OsFamily, ...] = ("linux", "macos", "windows")

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
    # The CUDA runtime components NVIDIA publishes as nvidia-<component>[-cuNN]; empty: any.
    # Other nvidia-* projects (nvidia-ml-py, nvidia-cutlass-dsl-libs-cu12) are no runtime.
    cuda_components: frozenset[str] = frozenset()

    def _component(self, component: str) -> bool:
        return not self.cuda_components or component in self.cuda_components

    def naming(self, major: int | None) -> CudaNaming | None:
        return None if major is None else self.cuda.get(major)

    def suffixed_major(self, name: NormalizedName) -> int | None:
        """The CUDA major of a suffixed runtime package (`nvidia-nccl-cu12` → 12), else None."""
        match = _SUFFIXED.match(name)
        if match is None or not self._component(match.group(1)):
            return None
        for naming in self.cuda.values():
            if naming.suffix == match.group(2):
                return naming.major
        return int(match.group(3))

    def toolkit_major(self, name: NormalizedName, version: Version) -> int | None:
        """The CUDA major of a toolkit metapackage pin (`cuda-toolkit 13.0.2` → 13), else None."""
        if any(naming.toolkit == name for naming in self.cuda.values()):
            return version.major
        return None

    def is_unsuffixed_runtime(self, name: NormalizedName) -> bool:
        """`nvidia-cublas`: a CUDA runtime component without a CUDA-major suffix."""
        return name.startswith("nvidia-") and _SUFFIXED.match(name) is None and self._component(name[7:])

    def triton_kind(self, name: NormalizedName) -> AcceleratorKind | None:
        """The kind whose Triton build this project is, else None."""
        for kind, info in self.kinds.items():
            if name in info.triton:
                return kind
        return None

    def family_for(self, kind: AcceleratorKind) -> frozenset[NormalizedName]:
        info = self.kinds.get(kind)
        return frozenset() if info is None else info.family


_SUFFIXED = re.compile(r"^nvidia-(.+)-(cu(\d+))$")
