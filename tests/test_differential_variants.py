"""Today's PyTorch variants on the fixture index: lockd's pins against uv's, one variant per lock.

The fixture's torch 2.14 generation has cu126/cu128/cu130/cu132, ROCm 6.4 and 7.0 and XPU
indexes beside cpu (cu129 only holds torch 2.8), with CUDA 13 packaging (`cuda-toolkit[...]`,
unsuffixed `nvidia-*`, `nvidia-*-cu13`), ROCm's `pytorch-triton-rocm`, XPU's Intel runtime, and
macOS wheels only for macOS 14. uv's `--torch-backend` always reads download.pytorch.org, so the
torch family reaches uv through an explicit index for the variant (as `tests.peers` routes it);
uv applies index sources to direct requirements only, so the variant's Triton is named there.
Each lock passes the consistency check (resolve runs it); a lock mixing two variants' runtimes
is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from fixtures.served_index import WatchedIndex
from lockd.accelerator import check_consistency
from lockd.errors import CudaMismatch, NoMatchingDistribution
from lockd.index import IndexClient
from lockd.inputs import LockOptions, LockRequest, parse_requirements
from lockd.intake import build_request
from lockd.lock import Lock, LockedPackage
from lockd.resolver import resolve, variant_offers
from lockd.routing import IndexPlan, plan_for
from lockd.target import Target
from tests.peers import UvIndexes, pip_download_lock, uv_compile

TORCH = "torch==2.14.*\ntorchvision\n"
# (case id, target, the variant's Triton uv must be told to take from the variant index)
CASES = [
    ("cu130", Target.of("linux_x86_64", "3.12", "cu130"), "triton"),
    ("cu132", Target.of("linux_x86_64", "3.13", "cu132"), "triton"),
    ("cu128", Target.of("linux_x86_64", "3.12", "cu128"), "triton"),
    ("cu128-aarch64", Target.of("linux_aarch64", "3.12", "cu128"), "triton"),
    ("cu126-windows", Target.of("windows_amd64", "3.11", "cu126"), "triton"),
    ("cu130-3.14t", Target.of("linux_x86_64", "3.14t", "cu130"), "triton"),
    ("rocm6.4", Target.of("linux_x86_64", "3.12", "rocm6.4"), "pytorch-triton-rocm"),
    ("rocm7.0", Target.of("linux_x86_64", "3.14", "rocm7.0"), "pytorch-triton-rocm"),
    ("xpu-linux", Target.of("linux_x86_64", "3.12", "xpu"), "pytorch-triton-xpu"),
    ("xpu-windows", Target.of("windows_amd64", "3.12", "xpu"), "pytorch-triton-xpu"),
    ("cpu-windows-arm64", Target.of("windows_arm64", "3.12", "cpu"), "triton"),
    ("cpu-macos-14", Target.of("macos_arm64", "3.13", "cpu", macos="14.0"), "triton"),
]


@pytest.fixture(scope="module")
def client() -> Iterator[IndexClient]:
    with IndexClient(timeout=20.0) as instance:
        yield instance


@pytest.fixture(scope="module")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uv-cache")


def _resolve(index: WatchedIndex, client: IndexClient, requirements: str, target: Target) -> Lock:
    request = LockRequest(
        requirements=parse_requirements(requirements),
        constraints=(),
        target=target,
        plan=plan_for(target, default_url=index.pypi_url, pytorch_base=index.pytorch_base),
        options=LockOptions(),
    )
    return resolve(request, client)


@pytest.mark.parametrize(("case", "target", "triton"), CASES, ids=[c[0] for c in CASES])
def test_variant_locks_equal_uv(  # noqa: PLR0917 - pytest passes fixtures by position
    fixture_index: WatchedIndex,
    client: IndexClient,
    case: str,
    target: Target,
    triton: str,
    tmp_path: Path,
    uv_cache: Path,
) -> None:
    lock = _resolve(fixture_index, client, TORCH, target)
    assert target.variant is not None
    torch = lock.pins[canonicalize_name("torch")]
    assert torch.public == "2.14.0"
    assert torch.local in (target.variant.local_label, None)
    indexes = UvIndexes(fixture_index.pypi_url, fixture_index.variant_url(target.variant.name))
    direct = f"{triton}; sys_platform == 'linux' and python_version < '3.15'"
    expected = uv_compile(TORCH + direct, target, indexes, tmp_path, uv_cache=uv_cache)
    assert {name: str(version) for name, version in lock.pins.items()} == expected
    assert pip_download_lock(lock, tmp_path)


def test_macos_wheels_for_14_need_the_minimum_raised(
    fixture_index: WatchedIndex, client: IndexClient
) -> None:
    # torch 2.14's macOS wheels are macosx_14_0_arm64: a macOS 13 target cannot have them
    with pytest.raises(NoMatchingDistribution) as refused:
        _resolve(fixture_index, client, "torch==2.14.*", Target.of("macos_arm64", "3.13", "cpu"))
    assert "macos_arm64" in refused.value.message
    lock = _resolve(
        fixture_index, client, "torch==2.14.*", Target.of("macos_arm64", "3.13", "cpu", macos="14")
    )
    assert lock.pins[canonicalize_name("torch")] == Version("2.14.0")


def _swap(lock: Lock, name: str, new_name: str, version: str) -> Lock:
    packages = [
        dataclasses.replace(p, name=canonicalize_name(new_name), version=Version(version))
        if p.name == name
        else p
        for p in lock.packages
    ]
    return dataclasses.replace(lock, packages=tuple(packages))


def _add(lock: Lock, name: str, version: str) -> Lock:
    extra = LockedPackage(
        name=canonicalize_name(name),
        version=Version(version),
        index=lock.plan.default_url,
        files=(),
        dependencies=(),
        via=("torch",),
    )
    return dataclasses.replace(lock, packages=(*lock.packages, extra))


def test_a_cu130_and_a_rocm_lock_pass_and_mixed_ones_are_refused(
    fixture_index: WatchedIndex, client: IndexClient
) -> None:
    cu130 = _resolve(fixture_index, client, TORCH, Target.of("linux_x86_64", "3.12", "cu130"))
    rocm = _resolve(fixture_index, client, TORCH, Target.of("linux_x86_64", "3.12", "rocm6.4"))
    check_consistency(cu130)
    check_consistency(rocm)
    names = set(cu130.pins)
    assert "cuda-toolkit" in names and any(n.endswith("-cu13") for n in names)
    assert not any(n.startswith("nvidia-") for n in rocm.pins)
    mixed = [
        (_add(cu130, "nvidia-cublas-cu12", "12.8.4.1"), "nvidia-cublas-cu12 12.8.4.1 (expected -cu13"),
        (_swap(cu130, canonicalize_name("torch"), "torch", "2.14.0+cu128"), "(expected +cu130)"),
        (_add(rocm, "nvidia-nccl-cu13", "2.27.7"), "(expected no CUDA packages)"),
        (_add(rocm, "triton", "3.8.0"), "(expected pytorch-triton-rocm for ROCm)"),
        (_swap(rocm, canonicalize_name("torch"), "torch", "2.14.0"), "(expected +rocm6.4)"),
    ]
    for lock, expected in mixed:
        with pytest.raises(CudaMismatch) as refused:
            check_consistency(lock)
        assert expected in refused.value.message, refused.value.message


@pytest.mark.parametrize(
    ("platform_name", "driver", "chosen", "passed_over"),
    [
        ("linux_x86_64", "580.65.06", "cu132", []),
        ("linux_x86_64", "570.86.10", "cu128", ["cu129"]),  # cu129 holds torch 2.8 only
        ("windows_amd64", "576.02", "cu128", ["cu129"]),
        ("linux_aarch64", "580.82.07", "cu132", []),
        ("linux_x86_64", "rocm7.2", "rocm7.0", ["rocm7.2", "rocm7.1"]),  # no index for those here
        ("linux_x86_64", "rocm6.4", "rocm6.4", []),
    ],
)
def test_cuda_auto_picks_what_the_driver_runs_and_the_index_has(  # noqa: PLR0917 - pytest passes fixtures by position
    fixture_index: WatchedIndex,
    client: IndexClient,
    platform_name: str,
    driver: str,
    chosen: str,
    passed_over: list[str],
) -> None:
    def index_plan(target: Target) -> IndexPlan:
        return plan_for(target, default_url=fixture_index.pypi_url, pytorch_base=fixture_index.pytorch_base)

    request = build_request(
        requirements=TORCH,
        target={"platform": platform_name, "python": "3.12", "cuda": "auto", "driver": driver},
        index_plan=index_plan,
        offers=variant_offers(client, index_plan),
    )
    assert request.target.variant_name == chosen
    assert request.selection is not None
    assert [name for name, _ in request.selection.passed_over] == passed_over
    lock = resolve(request, client)
    assert lock.pins[canonicalize_name("torch")].public == "2.14.0"
    assert lock.target.driver is not None and lock.to_json()["target"]["driver"] == str(lock.target.driver)
