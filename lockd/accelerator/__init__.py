"""Accelerator policy: the PyTorch index's variants as data, `cuda=auto`, and one variant per lock.

PyTorch publishes one index per accelerator variant (`<base>/cpu/`, `<base>/cu128/`,
`<base>/rocm6.4/`, `<base>/xpu/`); on some platforms the builds there carry the variant as a
PEP 440 local version label (`2.8.0+cu128`), and CUDA builds pull NVIDIA's runtime wheels from
PyPI (`nvidia-*-cu12`; for CUDA 13 also unsuffixed `nvidia-*` and `cuda-toolkit`). Everything
lockd knows about that lives in this package:

- `table`: the values (`Accelerator`, `AcceleratorTable`), the torch family and its labelled
  projects; `loading`: the table from `variants.toml` (shipped) or an operator's file
  (`LOCKD_ACCELERATORS_FILE`); `registry`: the table in use, `VARIANTS`, `parse_variant`;
- `selection`: `cuda=auto` with `driver=`: the newest variant the driver runs that has builds;
- `consistency`: `check_consistency` (a lock holds one variant's builds) and
  `runtime_without_variant` (what a lock without a variant pulls from PyPI).

It sits below `lockd.target` (a target holds an `Accelerator`).
"""

from __future__ import annotations

from packaging.utils import canonicalize_name

from lockd.accelerator.consistency import LockedBuilds, check_consistency, runtime_without_variant
from lockd.accelerator.loading import load_table, parse_table, shipped_table
from lockd.accelerator.registry import VARIANTS, current_table, install_table, parse_variant
from lockd.accelerator.selection import (
    Driver,
    NoAcceleratorVariant,
    Selection,
    check_driver,
    parse_driver,
    runnable_variants,
    select_variant,
)
from lockd.accelerator.table import (
    KINDS,
    LABELLED_PROJECTS,
    OS_FAMILIES,
    TORCH_FAMILY,
    Accelerator,
    AcceleratorKind,
    AcceleratorTable,
    CudaNaming,
    InvalidAcceleratorTable,
    KindInfo,
    OsFamily,
)

__all__ = [
    "KINDS",
    "LABELLED_PROJECTS",
    "OS_FAMILIES",
    "TORCH_FAMILY",
    "VARIANTS",
    "Accelerator",
    "AcceleratorKind",
    "AcceleratorTable",
    "CudaNaming",
    "Driver",
    "InvalidAcceleratorTable",
    "KindInfo",
    "LockedBuilds",
    "NoAcceleratorVariant",
    "OsFamily",
    "Selection",
    "check_consistency",
    "check_driver",
    "cuda_runtime_major",
    "current_table",
    "install_table",
    "load_table",
    "parse_driver",
    "parse_table",
    "parse_variant",
    "runnable_variants",
    "runtime_without_variant",
    "select_variant",
    "shipped_table",
]


def cuda_runtime_major(name: str) -> int | None:
    """The CUDA major a suffixed NVIDIA runtime package is built for (`nvidia-nccl-cu12` → 12)."""
    return current_table().suffixed_major(canonicalize_name(name))
