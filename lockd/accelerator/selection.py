"""`cuda=auto`: the newest variant a driver runs that has builds of what the request pins.

A driver is an NVIDIA driver version (`580.65.06`) or a ROCm version (`rocm6.4`). The variants
it may run are those of its kind, with builds for the target's platform, whose minimum driver
for the platform's OS family (from the accelerator table) is at most the given one; newest
runtime first. Whether a variant has builds of the requested torch-family pins is a question
about an index, so the caller answers it (`offers`); this module only decides and explains.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from lockd.accelerator.registry import current_table
from lockd.accelerator.table import Accelerator, AcceleratorKind, AcceleratorTable
from lockd.errors import InvalidTarget

__all__ = [
    "Driver",
    "NoAcceleratorVariant",
    "Selection",
    "check_driver",
    "parse_driver",
    "runnable_variants",
    "select_variant",
]

_ROCM = re.compile(r"^rocm[-_ ]?(\d+(?:\.\d+){0,2})$")
_NVIDIA = re.compile(r"^\d{2,4}(?:\.\d{1,3}){0,2}$")


class NoAcceleratorVariant(InvalidTarget):
    """`cuda=auto`: no variant the driver runs has builds of the requested torch family."""

    code = "no-accelerator-variant"
    title = "No accelerator variant fits"


@dataclass(frozen=True, slots=True, kw_only=True)
class Driver:
    """A host's GPU driver: NVIDIA's version, or the ROCm version of an AMD host."""

    kind: AcceleratorKind  # cuda or rocm
    version: Version

    def __str__(self) -> str:
        return f"rocm{self.version}" if self.kind == "rocm" else str(self.version)

    def describe(self) -> str:
        return f"ROCm {self.version}" if self.kind == "rocm" else f"NVIDIA driver {self.version}"


def parse_driver(text: str) -> Driver:
    """`580.65.06` (NVIDIA) or `rocm6.4` (AMD); anything else is an `InvalidTarget` on `driver`."""
    key = text.strip().lower()
    rocm = _ROCM.match(key)
    try:
        if rocm is not None:
            return Driver(kind="rocm", version=Version(rocm.group(1)))
        if _NVIDIA.match(key):
            return Driver(kind="cuda", version=Version(key))
    except InvalidVersion:
        pass
    raise InvalidTarget(
        f"invalid driver {text!r}",
        hint="give the NVIDIA driver version (nvidia-smi, e.g. 580.65.06) or the ROCm version (e.g. rocm6.4)",
        context={"field": "driver", "value": text[:100]},
    )


def runnable_variants(
    driver: Driver, *, platform_name: str, os_family: str, table: AcceleratorTable | None = None
) -> list[Accelerator]:
    """The variants of the driver's kind with builds for the platform that it runs, newest first."""
    table = table or current_table()
    found = []
    for variant in table.variants.values():
        minimum = variant.minimum_driver(os_family)
        runs = minimum is not None and minimum <= driver.version
        if variant.kind == driver.kind and platform_name in variant.platforms and runs:
            found.append(variant)
    return sorted(found, key=lambda v: v.runtime or (), reverse=True)


def _minimums(driver: Driver, platform_name: str, os_family: str, table: AcceleratorTable) -> dict[str, str]:
    return {
        v.name: str(v.minimum_driver(os_family))
        for v in table.variants.values()
        if v.kind == driver.kind and platform_name in v.platforms and v.minimum_driver(os_family) is not None
    }


def check_driver(variant: Accelerator, driver: Driver, *, platform_name: str, os_family: str) -> None:
    """A driver given with an explicit variant must run it: else `InvalidTarget` on `driver`."""
    minimum = variant.minimum_driver(os_family)
    if variant.kind != driver.kind:
        raise InvalidTarget(
            f"{driver.describe()} does not run {variant.kind_title} builds ({variant.name})",
            hint="an NVIDIA driver runs CUDA variants (cu…), a ROCm version ROCm variants (rocm…)",
            context={"field": "driver", "value": str(driver), "variant": variant.name},
        )
    if minimum is not None and driver.version < minimum:
        raise InvalidTarget(
            f"{variant.name} needs {driver.describe().rsplit(' ', 1)[0]} {minimum} or newer on {os_family};"
            f" the driver is {driver.version}",
            hint="upgrade the driver, or lock for an older variant (cuda=auto picks one)",
            context={
                "field": "driver",
                "value": str(driver),
                "variant": variant.name,
                "minimum": str(minimum),
            },
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """The variant `cuda=auto` picked, for which driver, and why."""

    variant: Accelerator
    driver: Driver
    passed_over: tuple[tuple[str, str], ...]  # newer runnable variants and why each was not taken

    @property
    def reason(self) -> str:
        why = (
            f"{self.variant.name} is the newest {self.variant.kind_title} variant {self.driver.describe()}"
            " runs that has builds of the requested torch family"
        )
        if self.passed_over:
            why += " (" + "; ".join(f"{name}: {reason}" for name, reason in self.passed_over) + ")"
        return why


def select_variant(
    driver: Driver,
    *,
    platform_name: str,
    os_family: str,
    offers: Callable[[Accelerator], str | None],
    table: AcceleratorTable | None = None,
) -> Selection:
    """The newest variant `driver` runs for which `offers` finds builds (it returns None then,
    else why not). Raises `InvalidTarget` when the driver runs none, `NoAcceleratorVariant` when
    none it runs has builds.
    """
    table = table or current_table()
    runnable = runnable_variants(driver, platform_name=platform_name, os_family=os_family, table=table)
    minimums = _minimums(driver, platform_name, os_family, table)
    if not runnable:
        raise InvalidTarget(
            f"{driver.describe()} is too old for every {table.kinds[driver.kind].title} variant on {platform_name}"
            if minimums
            else f"there is no {table.kinds[driver.kind].title} variant for {platform_name}",
            hint="minimum drivers: " + ", ".join(f"{n} {m}" for n, m in minimums.items())
            if minimums
            else None,
            context={"field": "driver", "value": str(driver), "accepted": minimums},
        )
    passed_over: list[tuple[str, str]] = []
    for variant in runnable:
        missing = offers(variant)
        if missing is None:
            return Selection(variant=variant, driver=driver, passed_over=tuple(passed_over))
        passed_over.append((variant.name, missing))
    offered = [
        v.name
        for v in table.variants.values()
        if v.kind == driver.kind and platform_name in v.platforms and v not in runnable and offers(v) is None
    ]
    raise NoAcceleratorVariant(
        f"no {table.kinds[driver.kind].title} variant that {driver.describe()} runs has builds of the requested"
        f" torch family for {platform_name}",
        hint=(
            f"the driver runs {', '.join(v.name for v in runnable)}; "
            + (
                f"the requested torch has builds for {', '.join(offered)}"
                if offered
                else "torch offers no other variant"
            )
        ),
        context={
            "field": "cuda",
            "value": "auto",
            "driver": str(driver),
            "driver_allows": [v.name for v in runnable],
            "torch_offers": offered,
            "passed_over": [{"variant": n, "reason": r} for n, r in passed_over],
        },
    )
