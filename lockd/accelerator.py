"""Accelerator policy: the PyTorch index's variants, the torch family, and one variant per lock.

PyTorch publishes one index per accelerator variant (`<base>/cpu/`, `<base>/cu124/`); on some
platforms the builds there carry the variant as a PEP 440 local version label (`2.5.1+cu124`),
and CUDA builds pull NVIDIA's runtime wheels (`nvidia-*-cu12`). Everything lockd knows about
that lives here: the variant table (`VARIANTS`, one `Accelerator` each), the projects routed to
the variant index (`TORCH_FAMILY`), which of them are labelled, how runtime packages are named,
and `check_consistency`, which rejects a lock that mixes builds of different variants. Which
platforms label which kinds of build is a field of `lockd.target.Platform`.

This module sits below `lockd.target` (a target holds an `Accelerator`), so the check reads a
lock through the `LockedBuilds` protocol rather than importing `lockd.lock`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from lockd.errors import CudaMismatch, InvalidTarget

__all__ = [
    "LABELLED_PROJECTS",
    "TORCH_FAMILY",
    "VARIANTS",
    "Accelerator",
    "AcceleratorKind",
    "LockedBuilds",
    "check_consistency",
    "cuda_runtime_major",
    "parse_variant",
]

AcceleratorKind = Literal["cpu", "cuda", "rocm", "xpu"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Accelerator:
    """One variant of the PyTorch index, named as its index path is (`cpu`, `cu124`)."""

    name: str
    kind: AcceleratorKind
    local_label: str  # the PEP 440 local label of this variant's builds where they carry one
    runtime: tuple[int, int] | None  # the CUDA (or ROCm) version the builds link; None for cpu

    @property
    def kind_title(self) -> str:
        """The kind as people write it: CPU, CUDA, ROCm, XPU."""
        return _KIND_TITLES[self.kind]

    @property
    def cuda_major(self) -> int | None:
        """The CUDA major of the `nvidia-*-cuNN` runtime packages this variant's builds need."""
        if self.kind != "cuda" or self.runtime is None:
            return None
        return self.runtime[0]


_KIND_TITLES: Mapping[AcceleratorKind, str] = {"cpu": "CPU", "cuda": "CUDA", "rocm": "ROCm", "xpu": "XPU"}


def _cuda(major: int, minor: int) -> Accelerator:
    name = f"cu{major}{minor}"
    return Accelerator(name=name, kind="cuda", local_label=name, runtime=(major, minor))


VARIANTS: Mapping[str, Accelerator] = {
    v.name: v
    for v in (
        Accelerator(name="cpu", kind="cpu", local_label="cpu", runtime=None),
        _cuda(11, 8),
        _cuda(12, 1),
        _cuda(12, 4),
        _cuda(12, 6),
        _cuda(12, 8),
        _cuda(13, 0),
    )
}

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

_CUDA_RUNTIME_PACKAGE = re.compile(r"^nvidia-.+-cu(\d+)$")
_CUDA_DOTTED = re.compile(r"^(?:cuda)?[-_ ]?(\d{1,2})\.(\d)$")


def parse_variant(text: str | None) -> Accelerator | None:
    """`cu124`, `CU124`, `12.4` and `cuda12.4` name the same variant; empty or None means none."""
    if text is None or text.strip() == "" or text.strip().lower() == "none":
        return None
    key = text.strip().lower()
    dotted = _CUDA_DOTTED.match(key)
    if dotted:
        key = f"cu{dotted.group(1)}{dotted.group(2)}"
    variant = VARIANTS.get(key)
    if variant is None:
        raise InvalidTarget(
            f"unknown accelerator variant {text!r}",
            hint="use one of: " + ", ".join(VARIANTS),
            context={"field": "cuda", "value": text},
        )
    return variant


def cuda_runtime_major(name: NormalizedName) -> int | None:
    """The CUDA major an NVIDIA runtime package is built for (`nvidia-nccl-cu12` → 12), else None."""
    match = _CUDA_RUNTIME_PACKAGE.match(name)
    return None if match is None else int(match.group(1))


# -- what the check reads of a lock (lockd.lock.Lock satisfies it) ----------------------------


class _Platform(Protocol):
    @property
    def labelled_accelerators(self) -> frozenset[AcceleratorKind]: ...


class _Target(Protocol):
    @property
    def platform(self) -> _Platform: ...

    @property
    def variant(self) -> Accelerator | None: ...

    def describe(self) -> str: ...


class _Routing(Protocol):
    @property
    def family(self) -> frozenset[NormalizedName]: ...

    def is_accelerated(self, name: NormalizedName) -> bool: ...


class _Pin(Protocol):
    @property
    def name(self) -> NormalizedName: ...

    @property
    def version(self) -> Version: ...

    @property
    def via(self) -> tuple[str, ...]: ...


class LockedBuilds(Protocol):
    """The parts of a lock the consistency check reads: its target, routing and pins."""

    @property
    def target(self) -> _Target: ...

    @property
    def plan(self) -> _Routing: ...

    @property
    def packages(self) -> Sequence[_Pin]: ...


def check_consistency(lock: LockedBuilds) -> None:
    """A lock for an accelerator variant holds only that variant's builds, or raises `CudaMismatch`.

    Labelled-project pins from the accelerator index carry the variant's local label where the
    platform labels that kind of build (CUDA on Linux x86_64 and Windows; cpu builds, and
    every build for macOS and aarch64, may carry none); every `nvidia-*-cuNN` pin matches the
    variant's CUDA major, and a cpu lock pulls none through the torch family.
    """
    variant = lock.target.variant
    if variant is None:
        return
    problems: list[dict[str, str]] = []
    unlabelled_ok = variant.kind not in lock.target.platform.labelled_accelerators
    for package in lock.packages:
        if lock.plan.is_accelerated(package.name) and package.name in LABELLED_PROJECTS:
            label = package.version.local
            if (label is not None and label != variant.local_label) or (label is None and not unlabelled_ok):
                problems.append(
                    {
                        "package": package.name,
                        "version": str(package.version),
                        "expected": f"+{variant.local_label}",
                    }
                )
        major = cuda_runtime_major(package.name)
        if major is None:
            continue
        from_family = any(canonicalize_name(v) in lock.plan.family for v in package.via)
        if (variant.cuda_major is None and from_family) or (
            variant.cuda_major is not None and major != variant.cuda_major
        ):
            expected = "no CUDA packages" if variant.cuda_major is None else f"-cu{variant.cuda_major}"
            problems.append({"package": package.name, "version": str(package.version), "expected": expected})
    if problems:
        listed = ", ".join(f"{p['package']} {p['version']} (expected {p['expected']})" for p in problems)
        raise CudaMismatch(
            f"the lock for {lock.target.describe()} mixes CUDA builds: {listed}",
            hint=f"pin torch-family packages that exist for {variant.name} on the PyTorch index",
            context={"variant": variant.name, "problems": problems},
        )
