"""`lockd.accelerator`: the variant table, runtime package naming, and one variant per lock."""

from __future__ import annotations

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from lockd.accelerator import (
    LABELLED_PROJECTS,
    TORCH_FAMILY,
    VARIANTS,
    check_consistency,
    cuda_runtime_major,
    parse_variant,
)
from lockd.errors import CudaMismatch, InvalidTarget
from lockd.inputs import LockOptions
from lockd.lock import ROOT, Lock, LockedPackage
from lockd.routing import plan_for
from lockd.target import PLATFORMS, Target


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("cu124", "cu124"),
        ("12.4", "cu124"),
        ("CU121", "cu121"),
        ("cuda11.8", "cu118"),
        ("cpu", "cpu"),
        (" cu126 ", "cu126"),
    ],
)
def test_variant_spellings(text: str, name: str) -> None:
    variant = parse_variant(text)
    assert variant is not None and variant.name == name


@pytest.mark.parametrize("text", ["cu999", "rocm9.9", "12", "cuda", "cu12.4"])
def test_unknown_variants_are_invalid_targets(text: str) -> None:
    with pytest.raises(InvalidTarget) as info:
        parse_variant(text)
    assert info.value.message == f"unknown accelerator variant {text!r}"
    assert info.value.context == {"field": "cuda", "value": text}


def test_the_table_names_each_variant_as_its_index_path_and_label() -> None:
    assert list(VARIANTS) == [
        "cpu", "cu118", "cu121", "cu124", "cu126", "cu128", "cu129", "cu130", "cu132",
        "rocm6.0", "rocm6.1", "rocm6.2", "rocm6.2.4", "rocm6.3", "rocm6.4", "rocm7.0", "rocm7.1", "rocm7.2",
        "xpu",
    ]  # fmt: skip
    for name, variant in VARIANTS.items():
        assert variant.name == variant.local_label == variant.index_path == name
        if variant.kind in ("cpu", "xpu"):
            assert variant.runtime is None and variant.cuda_major is None
        elif variant.kind == "rocm":
            assert variant.runtime is not None and name == f"rocm{variant.runtime_text}"
            assert variant.cuda_major is None
        else:
            assert variant.kind == "cuda" and variant.runtime is not None
            assert name == f"cu{variant.runtime[0]}{variant.runtime[1]}"
            assert variant.cuda_major == variant.runtime[0]


def test_every_platform_labels_only_kinds_it_has() -> None:
    for platform in PLATFORMS.values():
        assert "cpu" in platform.accelerators
        assert platform.labelled_accelerators <= platform.accelerators
    assert PLATFORMS["macos_arm64"].accelerators == {"cpu"}
    assert {name for name, p in PLATFORMS.items() if p.labelled_accelerators} == {
        "linux_x86_64",
        "windows_amd64",
    }


def test_labelled_projects_are_torch_family() -> None:
    assert LABELLED_PROJECTS <= TORCH_FAMILY


@pytest.mark.parametrize(
    ("name", "major"),
    [
        ("nvidia-nccl-cu12", 12),
        ("nvidia-cudnn-cu11", 11),
        ("nvidia-cuda-runtime-cu13", 13),
        ("nvidia-nvtx", None),
        ("numpy", None),
    ],
)
def test_cuda_runtime_major(name: str, major: int | None) -> None:
    assert cuda_runtime_major(canonicalize_name(name)) == major


def _lock(platform: str, cuda: str | None, *pins: tuple[str, str, tuple[str, ...]]) -> Lock:
    target = Target.of(platform, "3.11", cuda)
    plan = plan_for(target)
    packages = [
        LockedPackage(
            name=canonicalize_name(name),
            version=Version(version),
            index=plan.index_for(canonicalize_name(name)),
            files=(),
            dependencies=(),
            via=via,
        )
        for name, version, via in pins
    ]
    return Lock.build(
        input_digest="0" * 64,
        target=target,
        plan=plan,
        requirements=[],
        constraints=[],
        options=LockOptions(),
        packages=packages,
    )


@pytest.mark.parametrize(
    ("platform", "cuda", "torch"),
    [
        ("linux_x86_64", "cu124", "2.5.1+cu124"),
        ("windows_amd64", "cu124", "2.5.1+cu124"),
        ("linux_aarch64", "cu124", "2.5.1"),  # aarch64 CUDA builds may go unlabelled
        ("linux_aarch64", "cu124", "2.5.1+cu124"),
        ("linux_x86_64", "cpu", "2.5.1"),
        ("linux_x86_64", "cpu", "2.5.1+cpu"),
        ("macos_arm64", "cpu", "2.5.1"),
        ("linux_x86_64", None, "2.5.1"),
        ("linux_x86_64", None, "2.5.1+cu121"),  # without a variant nothing is checked
    ],
)
def test_consistent_locks_pass(platform: str, cuda: str | None, torch: str) -> None:
    check_consistency(_lock(platform, cuda, ("torch", torch, (ROOT,))))


@pytest.mark.parametrize(
    ("platform", "cuda", "pins", "expected"),
    [
        ("linux_x86_64", "cu124", [("torch", "2.5.1", (ROOT,))], "torch 2.5.1 (expected +cu124)"),
        (
            "windows_amd64",
            "cu124",
            [("torchaudio", "2.5.1+cu121", (ROOT,))],
            "torchaudio 2.5.1+cu121 (expected +cu124)",
        ),
        ("linux_aarch64", "cu124", [("torch", "2.5.1+cpu", (ROOT,))], "torch 2.5.1+cpu (expected +cu124)"),
        (
            "macos_arm64",
            "cpu",
            [("torchvision", "0.20.1+cu124", (ROOT,))],
            "torchvision 0.20.1+cu124 (expected +cpu)",
        ),
        (
            "linux_x86_64",
            "cu124",
            [("torch", "2.5.1+cu124", (ROOT,)), ("nvidia-nccl-cu11", "2.21.5", ("torch",))],
            "nvidia-nccl-cu11 2.21.5 (expected -cu12)",
        ),
        (
            "linux_x86_64",
            "cpu",
            [("torch", "2.5.1+cpu", (ROOT,)), ("nvidia-nccl-cu12", "2.21.5", ("torch",))],
            "nvidia-nccl-cu12 2.21.5 (expected no CUDA packages)",
        ),
    ],
)
def test_mixed_locks_are_rejected(
    platform: str, cuda: str, pins: list[tuple[str, str, tuple[str, ...]]], expected: str
) -> None:
    lock = _lock(platform, cuda, *pins)
    with pytest.raises(CudaMismatch) as info:
        check_consistency(lock)
    assert info.value.code == "cuda-mismatch"
    assert info.value.message == f"the lock for {lock.target.describe()} mixes CUDA builds: {expected}"
    assert info.value.context["variant"] == cuda


def test_a_cpu_lock_may_hold_cuda_runtimes_that_no_torch_pulled() -> None:
    check_consistency(_lock("linux_x86_64", "cpu", ("nvidia-nccl-cu12", "2.21.5", (ROOT,))))
