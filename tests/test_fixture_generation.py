"""Today's generation on the fixture index: the shape of each variant's torch 2.14 builds (labels, tags,
CUDA 12 / CUDA 13 / ROCm / XPU packaging), the platform-edge projects, and uv resolving all of them.

The uv results are the oracle lockd's differential tests will be held to once lockd supports these
targets. uv's ``--torch-backend`` always reads download.pytorch.org (no base URL can be set), so the
torch family is routed to the fixture's variant index by ``[tool.uv.sources]``, as ``tests/peers.py``
does; sources apply to direct requirements only, so the variant's Triton is named directly too.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement

from fixtures.build import load_snapshot, stray_numpy_version
from fixtures.generation import GENERATION_VARIANTS, INDEX_VARIANTS
from fixtures.index import PEP691_JSON, FixtureIndex

ROOT = Path(__file__).resolve().parent.parent
UV = ROOT / ".venv" / "bin" / "uv"
_FAMILY = ("torch", "torchvision", "torchaudio", "triton", "pytorch-triton-rocm", "pytorch-triton-xpu")
_TRITON = {"rocm6.4": "pytorch-triton-rocm", "rocm7.0": "pytorch-triton-rocm", "xpu": "pytorch-triton-xpu"}


def _metadata(index: FixtureIndex, variant: str, filename: str) -> list[Requirement]:
    text = httpx.get(f"{index.variant_url(variant)}{filename.replace('+', '%2B')}.metadata").text
    return [
        Requirement(line.removeprefix("Requires-Dist: "))
        for line in text.splitlines()
        if line.startswith("Requires-Dist: ")
    ]


def _page(index: FixtureIndex, variant: str, project: str) -> list[str]:
    text = httpx.get(index.variant_url(variant) + project + "/").text
    return re.findall(r">([^<]+\.(?:whl|tar\.gz))</a>", text)


# --- shape ---------------------------------------------------------------------------------------


def test_every_variant_index_serves_torch(fixture_index: FixtureIndex) -> None:
    assert set(GENERATION_VARIANTS) <= set(INDEX_VARIANTS)
    for variant in INDEX_VARIANTS:
        assert _page(fixture_index, variant, "torch"), variant
    with pytest.raises(ValueError, match="unknown variant"):
        fixture_index.variant_url("cu999")


def test_variant_builds_carry_labels_and_todays_tags(fixture_index: FixtureIndex) -> None:
    cu130 = _page(fixture_index, "cu130", "torch")
    assert {f for f in cu130 if f.startswith("torch-2.14.0+cu130-cp314-cp314t-")} == {
        "torch-2.14.0+cu130-cp314-cp314t-manylinux_2_28_x86_64.whl",
        "torch-2.14.0+cu130-cp314-cp314t-manylinux_2_28_aarch64.whl",
        "torch-2.14.0+cu130-cp314-cp314t-win_amd64.whl",
    }
    page = httpx.get(fixture_index.variant_url("cu130") + "torch/").text
    assert page.count("#sha256=") == len(cu130) == page.count("data-dist-info-metadata=")
    rocm = _page(fixture_index, "rocm6.4", "torch")
    assert rocm and all(
        re.fullmatch(r"torch-2\.14\.0\+rocm6\.4-cp3\d+-cp3\d+t?-manylinux_2_28_x86_64\.whl", f) for f in rocm
    )
    assert {f.rsplit("-", 1)[1] for f in _page(fixture_index, "xpu", "torch")} == {
        "manylinux_2_28_x86_64.whl",
        "win_amd64.whl",
    }
    cpu = _page(fixture_index, "cpu", "torch")
    assert "torch-2.14.0-cp312-cp312-macosx_14_0_arm64.whl" in cpu  # macOS builds carry no label
    assert (
        "torch-2.14.0+cpu-cp312-cp312-win_arm64.whl" in cpu
        and "torch-2.14.0+cpu-cp311-cp311-win_arm64.whl" not in cpu
    )
    assert "torch-2.5.1+cpu-cp311-cp311-linux_x86_64.whl" in cpu  # the 2024 generation stays
    assert {f.split("-")[1] for f in _page(fixture_index, "cu129", "torch")} == {"2.8.0+cu129"}
    assert f"numpy-{stray_numpy_version(load_snapshot())}-cp311" in " ".join(
        _page(fixture_index, "cu132", "numpy")
    )


def test_pypi_torch_2_14_as_really_published(fixture_index: FixtureIndex) -> None:
    page = httpx.get(fixture_index.pypi_url + "torch/", headers={"Accept": PEP691_JSON}).json()
    files = {f["filename"]: f for f in page["files"] if "-2.14.0-" in f["filename"]}
    assert len(files) == 24 and all(
        f["requires-python"] == ">=3.10" and not f["core-metadata"] for f in files.values()
    )
    free_threaded = "torch-2.14.0-cp314-cp314t-"
    assert {name.removeprefix(free_threaded) for name in files if name.startswith(free_threaded)} == {
        "manylinux_2_28_x86_64.whl",
        "manylinux_2_28_aarch64.whl",
        "macosx_14_0_arm64.whl",
        "win_amd64.whl",
    }
    wheel = fixture_index.content("torch-2.14.0-cp312-cp312-manylinux_2_28_x86_64.whl")
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        metadata = archive.read("torch-2.14.0.dist-info/METADATA").decode()
    assert (
        'Requires-Dist: cuda-toolkit[cublas,cudart,cufft,cufile,cupti,curand,cusolver,cusparse,nvjitlink,nvrtc,nvtx]==13.0.3; platform_system == "Linux"'
        in metadata
    )
    assert "-cu12" not in metadata
    toolkit = [
        f["filename"]
        for f in httpx.get(fixture_index.pypi_url + "cuda-toolkit/", headers={"Accept": PEP691_JSON}).json()[
            "files"
        ]
    ]
    assert "cuda_toolkit-13.0.3.0-py2.py3-none-any.whl" in toolkit  # == 13.0.3 under PEP 440, not as a string


def test_cuda13_builds_pull_unsuffixed_nvidia_through_cuda_toolkit(fixture_index: FixtureIndex) -> None:
    torch = _metadata(fixture_index, "cu130", "torch-2.14.0+cu130-cp312-cp312-manylinux_2_28_x86_64.whl")
    names = {r.name: r for r in torch}
    assert (
        names["cuda-toolkit"].extras >= {"cublas", "cudart", "nvjitlink"}
        and str(names["cuda-toolkit"].specifier) == "==13.0.2"
    )
    assert {"nvidia-cudnn-cu13", "nvidia-nccl-cu13", "cuda-bindings", "triton"} <= names.keys()
    assert not [n for n in names if n.endswith(("-cu12", "-cu11"))]
    toolkit = httpx.get(
        fixture_index.url + "/files/pypi/cuda-toolkit/cuda_toolkit-13.0.2-py2.py3-none-any.whl.metadata"
    ).text
    assert (
        "Requires-Dist: nvidia-cublas==13.1.0.3.*; (sys_platform == 'linux' or sys_platform == 'win32') and extra == 'cublas'"
        in toolkit
    )
    assert "-cu1" not in toolkit
    cu132 = {
        r.name: r
        for r in _metadata(
            fixture_index, "cu132", "torch-2.14.0+cu132-cp312-cp312-manylinux_2_28_aarch64.whl"
        )
    }
    assert str(cu132["cuda-toolkit"].specifier) == "==13.2.1"
    # The index mirrors the runtime packages with PyPI's very bytes.
    mirrored = fixture_index.file("nvidia_cublas-13.1.0.3-py3-none-manylinux_2_27_x86_64.whl", index="cu130")
    assert (
        mirrored.sha256
        == fixture_index.file("nvidia_cublas-13.1.0.3-py3-none-manylinux_2_27_x86_64.whl").sha256
    )


def test_cuda12_rocm_and_xpu_builds(fixture_index: FixtureIndex) -> None:
    cu126 = {
        r.name: r
        for r in _metadata(fixture_index, "cu126", "torch-2.14.0+cu126-cp312-cp312-manylinux_2_28_x86_64.whl")
    }
    assert (
        str(cu126["nvidia-cuda-runtime-cu12"].specifier) == "==12.6.77"
        and str(cu126["nvidia-cuda-runtime-cu12"].marker) == 'platform_system == "Linux"'
    )
    assert "cuda-toolkit" not in cu126
    cu129 = {
        r.name: r
        for r in _metadata(fixture_index, "cu129", "torch-2.8.0+cu129-cp39-cp39-manylinux_2_28_x86_64.whl")
    }
    assert (
        str(cu129["nvidia-cuda-runtime-cu12"].specifier) == "==12.9.79"
        and str(cu129["triton"].specifier) == "==3.4.0"
    )
    rocm = _metadata(fixture_index, "rocm7.0", "torch-2.14.0+rocm7.0-cp313-cp313-manylinux_2_28_x86_64.whl")
    assert [str(r) for r in rocm if "triton" in r.name] == [
        'pytorch-triton-rocm==3.8.0; platform_system == "Linux"'
    ]
    assert not [r for r in rocm if r.name.startswith(("nvidia-", "cuda-"))]
    assert _page(fixture_index, "rocm7.0", "pytorch-triton-rocm")[0].endswith("-linux_x86_64.whl")
    xpu = {r.name for r in _metadata(fixture_index, "xpu", "torch-2.14.0+xpu-cp312-cp312-win_amd64.whl")}
    assert {"intel-cmplr-lib-rt", "intel-sycl-rt", "pytorch-triton-xpu"} <= xpu and not [
        n for n in xpu if n.startswith(("nvidia-", "cuda-"))
    ]


def test_platform_edge_projects(fixture_index: FixtureIndex) -> None:
    def tags(project: str) -> set[str]:
        return {
            a.filename.split("-", 2)[2] for a in fixture_index.files(project) if a.filename.endswith(".whl")
        }

    assert tags("lockd-fx-glibc234") == {
        "cp311-abi3-manylinux_2_34_x86_64.whl",
        "cp311-abi3-manylinux_2_34_aarch64.whl",
    }
    assert tags("lockd-fx-musl") == {
        "py3-none-musllinux_1_2_x86_64.whl",
        "py3-none-musllinux_1_2_aarch64.whl",
    }
    free = tags("lockd-fx-freethreaded")
    for wanted in (
        "cp314-cp314t-musllinux_1_2_x86_64.whl",
        "cp315-cp315-win_arm64.whl",
        "cp313-cp313t-macosx_10_13_x86_64.whl",
    ):
        assert any(tag.endswith(wanted) for tag in free), wanted
    markupsafe = {a.filename for a in fixture_index.files("markupsafe")}
    assert (
        "markupsafe-3.0.4-cp314-cp314t-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl"
        in markupsafe
    )


# --- uv resolves it: the oracle ------------------------------------------------------------------


@pytest.fixture(scope="module")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uv-cache")


def _uv(
    index: FixtureIndex,
    tmp_path: Path,
    uv_cache: Path,
    requirements: list[str],
    *,
    python: str,
    platform: str,
    variant: str | None = None,
    macos: str = "13.0",
) -> tuple[int, dict[str, str], str]:
    """(exit status, pins, stderr) of ``uv pip compile`` for one target against the fixture."""
    work = tmp_path / f"uv-{len(list(tmp_path.glob('uv-*')))}"
    work.mkdir()
    if variant is None:
        source = "requirements.in"
        (work / source).write_text("\n".join(requirements) + "\n")
    else:
        source = "pyproject.toml"
        triton = _TRITON.get(variant, "triton")
        direct = [*requirements, f"{triton}; sys_platform == 'linux' and python_version < '3.15'"]
        (work / source).write_text(
            '[project]\nname = "oracle"\nversion = "0"\ndependencies = ['
            + ", ".join(f'"{line}"' for line in direct)
            + f']\n\n[[tool.uv.index]]\nname = "pytorch"\nurl = "{index.variant_url(variant)}"\nexplicit = true\n\n'
            + "[tool.uv.sources]\n"
            + "".join(f'{name} = {{ index = "pytorch" }}\n' for name in _FAMILY)
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(
        PIP_CONFIG_FILE="/dev/null",
        UV_NO_CONFIG="1",
        UV_PYTHON_DOWNLOADS="never",
        UV_CACHE_DIR=str(uv_cache),
        MACOSX_DEPLOYMENT_TARGET=macos,
    )
    done = subprocess.run(
        [
            str(UV),
            "pip",
            "compile",
            source,
            "--default-index",
            index.pypi_url,
            "--python-version",
            python,
            "--python-platform",
            platform,
            "--python",
            sys.executable,
            "--no-header",
            "--quiet",
            "--no-annotate",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", done.stdout, re.MULTILINE))
    return done.returncode, pins, done.stderr


@dataclass(frozen=True, slots=True, kw_only=True)
class VariantCase:
    variant: str
    torch: str
    runtime: dict[str, str]  # pins the variant's packaging must bring


VARIANT_CASES = (
    VariantCase(
        variant="cu130",
        torch="2.14.0+cu130",
        runtime={"cuda-toolkit": "13.0.2", "nvidia-cublas": "13.1.0.3", "nvidia-cudnn-cu13": "9.24.0.43"},
    ),
    VariantCase(
        variant="cu132",
        torch="2.14.0+cu132",
        runtime={"cuda-toolkit": "13.2.1", "nvidia-cuda-runtime": "13.2.75"},
    ),
    VariantCase(
        variant="cu128",
        torch="2.14.0+cu128",
        runtime={"nvidia-cuda-runtime-cu12": "12.8.90", "triton": "3.8.0"},
    ),
    VariantCase(
        variant="cu129",
        torch="2.8.0+cu129",
        runtime={"nvidia-cuda-runtime-cu12": "12.9.79", "triton": "3.4.0"},
    ),
    VariantCase(variant="rocm6.4", torch="2.14.0+rocm6.4", runtime={"pytorch-triton-rocm": "3.8.0"}),
    VariantCase(
        variant="xpu",
        torch="2.14.0+xpu",
        runtime={"intel-sycl-rt": "2025.3.1", "pytorch-triton-xpu": "3.8.0", "umf": "1.0.2"},
    ),
)


@pytest.mark.parametrize("case", VARIANT_CASES, ids=[c.variant for c in VARIANT_CASES])
def test_uv_locks_each_variant(
    fixture_index: FixtureIndex, tmp_path: Path, uv_cache: Path, case: VariantCase
) -> None:
    variant = case.variant
    status, pins, stderr = _uv(
        fixture_index,
        tmp_path,
        uv_cache,
        ["torch", "torchvision"],
        python="3.12",
        platform="x86_64-manylinux_2_28",
        variant=variant,
    )
    assert status == 0, stderr
    assert pins["torch"] == case.torch and pins["torchvision"].endswith("+" + variant)
    assert case.runtime.items() <= pins.items()
    suffixed = {name for name in pins if name.startswith("nvidia-") and name.endswith("-cu12")}
    unsuffixed = {
        name for name in pins if name.startswith("nvidia-") and not name.endswith(("-cu12", "-cu13"))
    }
    if variant.startswith("cu13"):
        assert unsuffixed and not suffixed
    elif variant.startswith("cu12"):
        assert suffixed and not unsuffixed and "cuda-toolkit" not in pins
    else:
        assert not [name for name in pins if name.startswith(("nvidia-", "cuda-"))]
    assert pins["numpy"] != stray_numpy_version(load_snapshot())  # numpy from PyPI, not the stray copy


def test_uv_locks_python_314(fixture_index: FixtureIndex, tmp_path: Path, uv_cache: Path) -> None:
    status, pins, stderr = _uv(
        fixture_index,
        tmp_path,
        uv_cache,
        ["torch", "torchvision"],
        python="3.14",
        platform="aarch64-manylinux_2_28",
        variant="cu130",
    )
    assert status == 0, stderr
    assert pins["torch"] == "2.14.0+cu130" and pins["triton"] == "3.8.0" and pins["cuda-bindings"] == "13.0.3"
    assert pins["markupsafe"] == "3.0.4" and pins["numpy"] == "2.5.5"  # their cp314 wheels
    # Without a variant: PyPI's own torch, CUDA 13 through cuda-toolkit 13.0.3 (file version 13.0.3.0).
    status, pins, stderr = _uv(
        fixture_index, tmp_path, uv_cache, ["torch"], python="3.14", platform="x86_64-manylinux_2_28"
    )
    assert status == 0, stderr
    assert (
        pins["torch"] == "2.14.0"
        and pins["cuda-toolkit"] == "13.0.3.0"
        and pins["nvidia-cublas"] == "13.1.1.3"
    )
    assert pins["nvidia-nvjitlink"] == "13.2.78"  # 13.0.3 asks for a range: the newest in it wins


def test_uv_locks_macos_14_wheels_only_for_macos_14(
    fixture_index: FixtureIndex, tmp_path: Path, uv_cache: Path
) -> None:
    status, pins, stderr = _uv(
        fixture_index,
        tmp_path,
        uv_cache,
        ["torch", "lockd-fx-macos14"],
        python="3.13",
        platform="aarch64-apple-darwin",
        variant="cpu",
        macos="14.0",
    )
    assert status == 0, stderr
    assert pins["torch"] == "2.14.0" and pins["lockd-fx-macos14"] == "1.0"
    status, pins, stderr = _uv(
        fixture_index,
        tmp_path,
        uv_cache,
        ["torch"],
        python="3.12",
        platform="aarch64-apple-darwin",
        variant="cpu",
        macos="13.0",
    )
    assert status == 0, stderr
    assert pins["torch"] == "2.5.1"  # 2.14's macOS wheels need 14.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformCase:
    platform: str  # uv's --python-platform name
    python: str
    requirements: tuple[str, ...]
    expected: dict[str, str]


PLATFORM_CASES = (
    PlatformCase(
        platform="x86_64-manylinux_2_34",
        python="3.12",
        requirements=("lockd-fx-glibc234",),
        expected={"lockd-fx-glibc234": "1.0"},
    ),
    PlatformCase(
        platform="x86_64-unknown-linux-musl",
        python="3.14",
        requirements=("lockd-fx-musl",),
        expected={"lockd-fx-musl": "1.0"},
    ),
    PlatformCase(
        platform="aarch64-pc-windows-msvc",
        python="3.13",
        requirements=("lockd-fx-winarm",),
        expected={"lockd-fx-winarm": "1.0"},
    ),
    PlatformCase(
        platform="x86_64-apple-darwin",
        python="3.13",
        requirements=("lockd-fx-macintel",),
        expected={"lockd-fx-macintel": "1.0"},
    ),
    PlatformCase(
        platform="x86_64-manylinux_2_28", python="3.15", requirements=("requests",), expected={"idna": "3.20"}
    ),
)


@pytest.mark.parametrize("case", PLATFORM_CASES, ids=[f"{c.platform}-{c.python}" for c in PLATFORM_CASES])
def test_uv_locks_todays_platforms(
    fixture_index: FixtureIndex, tmp_path: Path, uv_cache: Path, case: PlatformCase
) -> None:
    # The free-threaded, numpy-shaped project has a wheel for every one of these targets.
    requirements = [*case.requirements, "lockd-fx-freethreaded"]
    status, pins, stderr = _uv(
        fixture_index, tmp_path, uv_cache, requirements, python=case.python, platform=case.platform
    )
    assert status == 0, stderr
    assert case.expected.items() <= pins.items() and pins["lockd-fx-freethreaded"] == "2.0"


def test_uv_finds_no_wheel_below_the_glibc_a_project_needs(
    fixture_index: FixtureIndex, tmp_path: Path, uv_cache: Path
) -> None:
    status, _, stderr = _uv(
        fixture_index,
        tmp_path,
        uv_cache,
        ["lockd-fx-glibc234"],
        python="3.12",
        platform="x86_64-manylinux_2_28",
    )
    assert status != 0 and "manylinux_2_34_x86_64" in stderr
    status, pins, stderr = _uv(
        fixture_index,
        tmp_path,
        uv_cache,
        ["torch"],
        python="3.13",
        platform="aarch64-pc-windows-msvc",
        variant="cpu",
    )
    assert status == 0, stderr
    assert pins["torch"] == "2.14.0+cpu"  # torch's Windows-on-Arm builds are on the cpu index only
