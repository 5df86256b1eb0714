"""One variant per lock: the consistency check, and what a lock without a variant pulls.

`check_consistency` rejects a lock that mixes builds of different variants, reading the
accelerator table for every kind: labelled torch-family pins carry the variant's label; CUDA
runtime packages match the variant's CUDA major by the table's naming (CUDA 11/12
`nvidia-*-cuNN`; CUDA 13 also unsuffixed `nvidia-*` and `cuda-toolkit`); a ROCm or XPU lock
holds no CUDA runtime at all and a CPU lock none through the torch family; and no torch-family
build pulls another kind's Triton. `runtime_without_variant` names the accelerator runtime a
lock without a variant pulls from the default index (PyPI's torch is a CUDA build on Linux).

This module sits below `lockd.target` and `lockd.lock`, so it reads a lock through the
`LockedBuilds` protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from lockd.accelerator.registry import current_table
from lockd.accelerator.table import LABELLED_PROJECTS, TORCH_FAMILY, Accelerator, AcceleratorTable
from lockd.errors import CudaMismatch

__all__ = ["LockedBuilds", "check_consistency", "runtime_without_variant"]


class _Platform(Protocol):
    @property
    def name(self) -> str: ...


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


def _from_family(package: _Pin, family: frozenset[NormalizedName]) -> bool:
    return any(canonicalize_name(parent) in family for parent in package.via)


def _label_problem(lock: LockedBuilds, variant: Accelerator, package: _Pin) -> str | None:
    if not (lock.plan.is_accelerated(package.name) and package.name in LABELLED_PROJECTS):
        return None
    label = package.version.local
    unlabelled_ok = lock.target.platform.name not in variant.labelled
    if (label is not None and label != variant.local_label) or (label is None and not unlabelled_ok):
        return f"+{variant.local_label}"
    return None


def _runtime_problem(
    table: AcceleratorTable, variant: Accelerator, package: _Pin, from_family: bool
) -> str | None:
    """What the variant expects instead of this package, if it is a runtime of another build."""
    name = package.name
    major = table.suffixed_major(name)
    if major is None:
        major = table.toolkit_major(name, package.version)
    unsuffixed = major is None and table.is_unsuffixed_runtime(name) and from_family
    if major is None and not unsuffixed:
        return None
    if variant.kind == "cpu":
        return "no CUDA packages" if from_family else None
    if variant.kind != "cuda":
        return "no CUDA packages"
    naming = table.naming(variant.cuda_major)
    expected = naming.describe() if naming is not None else f"-cu{variant.cuda_major}"
    if unsuffixed:
        return None if naming is not None and naming.unsuffixed else expected
    return None if major == variant.cuda_major else expected


def _triton_problem(
    table: AcceleratorTable, variant: Accelerator, package: _Pin, from_family: bool
) -> str | None:
    kind = table.triton_kind(package.name)
    if kind is None or kind == variant.kind or not from_family:
        return None
    own = sorted(table.kinds[variant.kind].triton)
    return f"{' or '.join(own)} for {variant.kind_title}" if own else f"no Triton for {variant.kind_title}"


def check_consistency(lock: LockedBuilds, table: AcceleratorTable | None = None) -> None:
    """A lock for an accelerator variant holds only that variant's builds, or raises `CudaMismatch`.

    Labelled-project pins from the accelerator index carry the variant's local label where
    the table says its builds are labelled on the platform (elsewhere they may carry none);
    runtime packages and Triton builds belong to the variant's kind and CUDA major.
    """
    variant = lock.target.variant
    if variant is None:
        return
    table = table or current_table()
    problems: list[dict[str, str]] = []
    for package in lock.packages:
        from_family = _from_family(package, lock.plan.family)
        for expected in (
            _label_problem(lock, variant, package),
            _runtime_problem(table, variant, package, from_family),
            _triton_problem(table, variant, package, from_family),
        ):
            if expected is not None:
                problems.append(
                    {"package": package.name, "version": str(package.version), "expected": expected}
                )
    if problems:
        listed = ", ".join(f"{p['package']} {p['version']} (expected {p['expected']})" for p in problems)
        builds = "CUDA" if variant.kind in ("cpu", "cuda") else "accelerator"
        raise CudaMismatch(
            f"the lock for {lock.target.describe()} mixes {builds} builds: {listed}",
            hint=f"pin torch-family packages that exist for {variant.name} on the PyTorch index",
            context={"variant": variant.name, "problems": problems},
        )


def runtime_without_variant(lock: LockedBuilds, table: AcceleratorTable | None = None) -> str | None:
    """`CUDA 12 runtime from PyPI`: the runtime a lock without a variant pulls; None for none.

    Without a variant the torch family comes from the default index, whose Linux torch builds
    are CUDA builds: such a lock is not a CPU lock, and the people reading it must know.
    """
    if lock.target.variant is not None:
        return None
    table = table or current_table()
    # Without a variant nothing is routed, so the plan names no family: torch's is meant.
    family = lock.plan.family or TORCH_FAMILY
    majors: set[int] = set()
    for package in lock.packages:
        major = table.suffixed_major(package.name)
        if major is None:
            major = table.toolkit_major(package.name, package.version)
        if major is None and table.is_unsuffixed_runtime(package.name) and _from_family(package, family):
            major = max((n.major for n in table.cuda.values() if n.unsuffixed), default=None)
        if major is not None:
            majors.add(major)
    if not majors:
        return None
    if len(majors) == 1:
        return f"CUDA {majors.pop()} runtime from PyPI"
    return "CUDA " + " and ".join(str(m) for m in sorted(majors)) + " runtimes from PyPI"
