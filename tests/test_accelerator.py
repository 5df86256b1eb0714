"""`lockd.accelerator`: the variant table, runtime package naming, and one variant per lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from lockd.accelerator import (
    LABELLED_PROJECTS,
    TORCH_FAMILY,
    VARIANTS,
    InvalidAcceleratorTable,
    NoAcceleratorVariant,
    check_consistency,
    cuda_runtime_major,
    current_table,
    install_table,
    load_table,
    parse_driver,
    parse_variant,
    runtime_without_variant,
    select_variant,
    shipped_table,
)
from lockd.errors import CudaMismatch, InvalidTarget
from lockd.inputs import LockOptions
from lockd.lock import ROOT, Lock, LockedPackage, accelerator_runtime_of
from lockd.routing import plan_for
from lockd.target import PLATFORMS, Target
from tests.support import ROOT as CHECKOUT


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


# --- issue 14: the table as data, every kind checked, cuda=auto --------------------------------


def _pins(platform: str, cuda: str | None, *pins: tuple[str, str, tuple[str, ...]]) -> Lock:
    return _lock(platform, cuda, *pins)


@pytest.mark.parametrize(
    ("platform", "cuda", "pins"),
    [
        # CUDA 13: suffixed -cu13, unsuffixed components and the toolkit metapackage
        ("linux_x86_64", "cu130", [("torch", "2.14.0+cu130", (ROOT,)), ("nvidia-cublas", "13.0.0.19", ("torch",)),
                                   ("nvidia-nccl-cu13", "2.27.7", ("torch",)), ("cuda-toolkit", "13.0.2", ("torch",))]),
        ("linux_x86_64", "cu132", [("torch", "2.14.0+cu132", (ROOT,)), ("cuda-toolkit", "13.2.0", ("torch",))]),
        ("linux_x86_64", "rocm6.4", [("torch", "2.8.0+rocm6.4", (ROOT,)), ("pytorch-triton-rocm", "3.4.0", ("torch",))]),
        ("linux_x86_64", "rocm7.0", [("torch", "2.14.0+rocm7.0", (ROOT,)), ("numpy", "2.1.0", (ROOT,))]),
        ("windows_amd64", "xpu", [("torch", "2.14.0+xpu", (ROOT,)), ("pytorch-triton-xpu", "3.5.0", ("torch",))]),
        ("linux_aarch64", "cu128", [("torch", "2.8.0", (ROOT,)), ("triton", "3.4.0", ("torch",))]),
        # CUTLASS's DSL keeps a library per CUDA major side by side: not a CUDA runtime
        ("linux_x86_64", "cu130", [("torch", "2.14.0+cu130", (ROOT,)),
                                   ("nvidia-cutlass-dsl-libs-cu12", "4.8.0", ("nvidia-cutlass-dsl",))]),
        # a project outside the torch family may pull NVML bindings into any lock
        ("linux_x86_64", "rocm6.4", [("torch", "2.8.0+rocm6.4", (ROOT,)), ("nvidia-ml-py", "13.580.65", ("vllm",))]),
    ],
)  # fmt: skip
def test_consistent_locks_of_every_kind_pass(
    platform: str, cuda: str, pins: list[tuple[str, str, tuple[str, ...]]]
) -> None:
    check_consistency(_pins(platform, cuda, *pins))


@pytest.mark.parametrize(
    ("platform", "cuda", "pins", "expected"),
    [
        ("linux_x86_64", "cu130", [("torch", "2.14.0+cu130", (ROOT,)), ("nvidia-cublas-cu12", "12.8.4.1", ("torch",))],
         "nvidia-cublas-cu12 12.8.4.1 (expected -cu13 or unsuffixed nvidia-*, cuda-toolkit 13)"),
        ("linux_x86_64", "cu128", [("torch", "2.8.0+cu128", (ROOT,)), ("cuda-toolkit", "13.0.2", ("torch",))],
         "cuda-toolkit 13.0.2 (expected -cu12)"),
        ("linux_x86_64", "cu128", [("torch", "2.8.0+cu128", (ROOT,)), ("nvidia-cublas", "13.0.0.19", ("torch",))],
         "nvidia-cublas 13.0.0.19 (expected -cu12)"),
        ("linux_x86_64", "rocm6.4", [("torch", "2.8.0+rocm6.4", (ROOT,)), ("nvidia-nccl-cu12", "2.27.3", ("vllm",))],
         "nvidia-nccl-cu12 2.27.3 (expected no CUDA packages)"),
        ("linux_x86_64", "rocm6.4", [("torch", "2.8.0+rocm6.4", (ROOT,)), ("triton", "3.4.0", ("torch",))],
         "triton 3.4.0 (expected pytorch-triton-rocm for ROCm)"),
        ("linux_x86_64", "rocm6.4", [("torch", "2.8.0", (ROOT,))], "torch 2.8.0 (expected +rocm6.4)"),
        ("linux_x86_64", "xpu", [("torch", "2.8.0+cpu", (ROOT,))], "torch 2.8.0+cpu (expected +xpu)"),
        ("linux_x86_64", "cu128", [("torch", "2.8.0+cpu", (ROOT,))], "torch 2.8.0+cpu (expected +cu128)"),
        ("linux_x86_64", "cpu", [("torch", "2.8.0+cpu", (ROOT,)), ("triton", "3.4.0", ("torch",))],
         "triton 3.4.0 (expected no Triton for CPU)"),
    ],
)  # fmt: skip
def test_mixed_locks_of_every_kind_are_refused(
    platform: str, cuda: str, pins: list[tuple[str, str, tuple[str, ...]]], expected: str
) -> None:
    lock = _pins(platform, cuda, *pins)
    with pytest.raises(CudaMismatch) as info:
        check_consistency(lock)
    assert expected in info.value.message, info.value.message
    assert info.value.context["variant"] == cuda


@pytest.mark.parametrize(
    ("pins", "runtime"),
    [
        (
            [("torch", "2.5.1", (ROOT,)), ("nvidia-cublas-cu12", "12.4.5.8", ("torch",))],
            "CUDA 12 runtime from PyPI",
        ),
        ([("torch", "2.14.1", (ROOT,)), ("cuda-toolkit", "13.0.2", ("torch",))], "CUDA 13 runtime from PyPI"),
        (
            [("torch", "2.14.1", (ROOT,)), ("nvidia-cublas", "13.0.0.19", ("torch",))],
            "CUDA 13 runtime from PyPI",
        ),
        ([("torch", "2.5.1", (ROOT,)), ("numpy", "2.1.0", (ROOT,))], None),
        ([("nvidia-ml-py", "12.560.30", (ROOT,))], None),  # NVML bindings are no CUDA runtime
        (
            [("cuda-toolkit", "13.0.3", ("torch",)), ("nvidia-cutlass-dsl-libs-cu12", "4.8.0", ("vllm",))],
            "CUDA 13 runtime from PyPI",
        ),
        (
            [("nvidia-nccl-cu12", "2.21.5", ("torch",)), ("nvidia-nccl-cu13", "2.30.7", ("jax",))],
            "CUDA 12 and 13 runtimes from PyPI",
        ),
    ],
)
def test_a_lock_without_a_variant_says_which_runtime_it_pulls(
    pins: list[tuple[str, str, tuple[str, ...]]], runtime: str | None
) -> None:
    lock = _pins("linux_x86_64", None, *pins)
    assert runtime_without_variant(lock) == runtime == lock.accelerator_runtime
    assert replace(lock, packages=()).accelerator_runtime is None  # kept per lock, not carried over
    assert ("accelerator_runtime" in lock.to_json()) == (runtime is not None)
    assert Lock.from_json(lock.canonical_bytes()) == lock
    assert accelerator_runtime_of(lock.canonical_bytes()) == runtime
    assert runtime_without_variant(_pins("linux_x86_64", "cu124", *pins)) is None


def test_the_shipped_table_is_package_data_and_every_variant_is_complete() -> None:
    table = shipped_table()
    assert table == current_table() and list(table.variants) == list(VARIANTS)
    for variant in table.variants.values():
        assert variant.labelled <= variant.platforms
        assert variant.platforms <= set(PLATFORMS)
        if variant.kind in ("cuda", "rocm"):
            assert variant.minimum_driver("linux") is not None
        if variant.kind == "cuda":
            assert table.naming(variant.cuda_major) is not None
            assert variant.minimum_driver("windows") is not None
    assert table.naming(13) is not None and table.naming(13).toolkit == "cuda-toolkit"  # type: ignore[union-attr]


_FIRST_ASK_PROBE = """
import json, sys
import lockd.accelerator
imported = "tomllib" in sys.modules
variants = list(lockd.accelerator.VARIANTS)
print(json.dumps({"read_at_import": imported, "read_when_asked": "tomllib" in sys.modules, "variants": variants}))
"""


def test_the_shipped_table_is_read_when_first_asked_for_not_at_import() -> None:
    # `lockd lock` without --cuda asks the index for its first page before anything needs the table.
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LOCKD_")}, "PYTHONPATH": str(CHECKOUT)}
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_ASK_PROBE],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["read_at_import"] is False
    assert found["read_when_asked"] is True
    assert found["variants"] == list(shipped_table().variants)


def test_an_operator_table_replaces_the_shipped_one(tmp_path: Path) -> None:
    path = tmp_path / "accelerators.toml"
    path.write_text(
        '[cuda.13]\nsuffix = "cu13"\n\n'
        '[[variants]]\nname = "cpu"\nkind = "cpu"\nplatforms = ["linux_x86_64"]\n\n'
        '[[variants]]\nname = "cu134"\nkind = "cuda"\nruntime = "13.4"\nplatforms = ["linux_x86_64"]\n'
        'labelled = ["linux_x86_64"]\nmin_driver = { linux = "590.1" }\n'
    )
    table = load_table(path)
    try:
        install_table(table)
        assert list(VARIANTS) == ["cpu", "cu134"]
        assert Target.of("linux_x86_64", "3.12", "cu134").variant == table.variants["cu134"]
        with pytest.raises(InvalidTarget):
            parse_variant("cu128")
        assert PLATFORMS["linux_aarch64"].accelerators == frozenset()
    finally:
        install_table(None)
    assert "cu128" in VARIANTS


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[[variants]]\nname = "cu999"\nkind = "cuda"\nruntime = "99.9"\n', "no [cuda.99] naming"),
        ('[[variants]]\nname = "x"\nkind = "tpu"\n', "kind must be one of"),
        ('[[variants]]\nname = "cpu"\nkind = "cpu"\ncolour = "red"\n', "unknown keys: colour"),
        (
            '[[variants]]\nname = "cpu"\nkind = "cpu"\n[[variants]]\nname = "cpu"\nkind = "cpu"\n',
            "listed twice",
        ),
        (
            '[[variants]]\nname = "cpu"\nkind = "cpu"\nlabelled = ["linux_x86_64"]\n',
            "labelled names a platform",
        ),
        ("variants = 3\n", "malformed"),
        ("= nonsense", "Invalid"),
        ("", "lists no variants"),
    ],
)
def test_a_bad_table_file_says_what_is_wrong(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "accelerators.toml"
    path.write_text(text)
    with pytest.raises(InvalidAcceleratorTable) as info:
        load_table(path)
    assert words in info.value.message and str(path) in info.value.message


@pytest.mark.parametrize(
    ("text", "kind", "version"),
    [
        ("580.65.06", "cuda", "580.65.6"),
        ("535", "cuda", "535"),
        ("rocm6.4", "rocm", "6.4"),
        ("ROCm-7.0", "rocm", "7.0"),
    ],
)
def test_driver_spellings(text: str, kind: str, version: str) -> None:
    driver = parse_driver(text)
    assert (driver.kind, str(driver.version)) == (kind, version)


@pytest.mark.parametrize(
    ("driver", "platform", "offered", "chosen", "passed_over"),
    [
        ("580.65.06", "linux_x86_64", {"cu132", "cu130", "cu128"}, "cu132", []),
        ("580.65.06", "linux_x86_64", {"cu130", "cu128"}, "cu130", ["cu132"]),
        ("570.86", "linux_x86_64", {"cu132", "cu130", "cu128"}, "cu128", ["cu129"]),
        ("528.33", "windows_amd64", {"cu126", "cu118"}, "cu126", ["cu129", "cu128"]),
        ("rocm6.4", "linux_x86_64", {"rocm7.0", "rocm6.4", "rocm6.3"}, "rocm6.4", []),
        ("rocm7.2", "linux_x86_64", {"rocm6.3"}, "rocm6.3", ["rocm7.2", "rocm7.1", "rocm7.0", "rocm6.4"]),
    ],
)
def test_auto_picks_the_newest_variant_the_driver_runs_that_has_builds(
    driver: str, platform: str, offered: set[str], chosen: str, passed_over: list[str]
) -> None:
    spec = PLATFORMS[platform]
    selection = select_variant(
        parse_driver(driver),
        platform_name=platform,
        os_family=spec.os_family,
        offers=lambda v: None if v.name in offered else "no torch build",
    )
    assert selection.variant.name == chosen
    assert [name for name, _ in selection.passed_over] == passed_over
    assert chosen in selection.reason


def test_auto_with_an_old_driver_or_no_builds_says_what_each_side_allows() -> None:
    with pytest.raises(InvalidTarget) as old:
        select_variant(
            parse_driver("440.33"), platform_name="linux_x86_64", os_family="linux", offers=lambda v: None
        )
    assert "too old" in old.value.message and old.value.context["field"] == "driver"
    assert old.value.context["accepted"]["cu118"] == "450.80.2"
    with pytest.raises(NoAcceleratorVariant) as none:
        select_variant(
            parse_driver("530.30"),
            platform_name="linux_x86_64",
            os_family="linux",
            offers=lambda v: None if v.name == "cu130" else "no torch build",
        )
    assert none.value.status == 422
    assert none.value.context["driver_allows"][:2] == ["cu129", "cu128"]
    assert none.value.context["torch_offers"] == ["cu130"]
    with pytest.raises(InvalidTarget):
        select_variant(
            parse_driver("rocm6.4"), platform_name="linux_aarch64", os_family="linux", offers=lambda v: None
        )
