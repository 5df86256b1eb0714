"""uv resolving today's generation on the fixture index: every variant's packaging, Python 3.14 and
3.15, glibc 2.34, musl, Windows on Arm, macOS 14 and Intel macOS.

The uv results are the oracle lockd's differential tests will be held to once lockd supports these
targets. uv's ``--torch-backend`` always reads download.pytorch.org (no base URL can be set), so the
torch family is routed to the fixture's variant index by ``[tool.uv.sources]``, as ``tests/peers.py``
does; sources apply to direct requirements only, so the variant's Triton is named directly too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.build import load_snapshot, stray_numpy_version
from fixtures.index import FixtureIndex

ROOT = Path(__file__).resolve().parent.parent
UV = ROOT / ".venv" / "bin" / "uv"
_FAMILY = ("torch", "torchvision", "torchaudio", "triton", "pytorch-triton-rocm", "pytorch-triton-xpu")
_TRITON = {"rocm6.4": "pytorch-triton-rocm", "rocm7.0": "pytorch-triton-rocm", "xpu": "pytorch-triton-xpu"}


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
