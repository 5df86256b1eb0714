"""Hand-built `Lock` values shared by the renderer tests and their golden files.

Each lock is a case a real resolution produces: a CUDA lock reading two indexes with local
versions, a constraint and several parents; a host lock with an sdist-only project,
pip/setuptools pins and a non-default index; a Windows lock with several wheels per pin.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from lockd.inputs import LockOptions
from lockd.lock import ROOT, Lock, LockedFile, LockedPackage
from lockd.routing import plan_for
from lockd.target import Target

PYPI = "https://pypi.org/simple/"
FILES = "https://files.pythonhosted.org/packages"
TORCH = "https://download.pytorch.org/whl"


def fake_sha(filename: str) -> str:
    return hashlib.sha256(filename.encode()).hexdigest()


def url_of(base: str, filename: str) -> str:
    # the PyTorch index percent-encodes the `+` of local versions in its links
    return f"{base}/{filename.replace('+', '%2B')}"


def wheel(filename: str, base: str = FILES, size: int | None = 1000) -> LockedFile:
    return LockedFile(filename, url_of(base, filename), fake_sha(filename), size, "wheel")


def sdist(filename: str, base: str = FILES, size: int | None = 500) -> LockedFile:
    return LockedFile(filename, url_of(base, filename), fake_sha(filename), size, "sdist")


def package(
    name: str,
    version: str,
    files: list[LockedFile],
    *,
    via: list[str],
    deps: list[str] = (),  # type: ignore[assignment]
    index: str = PYPI,
    requires_python: str | None = None,
) -> LockedPackage:
    return LockedPackage(
        name=canonicalize_name(name),
        version=Version(version),
        index=index,
        files=tuple(files),
        dependencies=tuple(canonicalize_name(d) for d in deps),
        via=tuple(via),
        requires_python=requires_python,
    )


def cuda_lock() -> Lock:
    target = Target.of("linux_x86_64", "3.11", "cu124")
    plan = plan_for(target)
    cu124 = f"{TORCH}/cu124/"
    packages = [
        # deliberately unsorted, with unsorted files: Lock.build must order them
        package(
            "torchvision",
            "0.20.1+cu124",
            [wheel("torchvision-0.20.1+cu124-cp311-cp311-linux_x86_64.whl", f"{TORCH}/cu124")],
            via=[ROOT],
            deps=["torch", "numpy", "pillow"],
            index=cu124,
            requires_python=">=3.8",
        ),
        package(
            "torch",
            "2.5.1+cu124",
            [wheel("torch-2.5.1+cu124-cp311-cp311-linux_x86_64.whl", f"{TORCH}/cu124", 908_000_000)],
            via=["torchvision", ROOT],
            deps=["filelock", "typing-extensions", "nvidia-cuda-runtime-cu12", "triton"],
            index=cu124,
            requires_python=">=3.8.0",
        ),
        package(
            "triton",
            "3.1.0",
            [wheel("triton-3.1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", f"{TORCH}")],
            via=["torch"],
            deps=["filelock"],
            index=cu124,
        ),
        package(
            "nvidia-cuda-runtime-cu12",
            "12.4.127",
            [wheel("nvidia_cuda_runtime_cu12-12.4.127-py3-none-manylinux2014_x86_64.whl")],
            via=["torch"],
            requires_python=">=3",
        ),
        package(
            "numpy",
            "2.1.3",
            [
                wheel("numpy-2.1.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
                wheel("numpy-2.1.3-cp311-cp311-musllinux_1_2_x86_64.whl"),
            ],
            via=["-c constraints", "torchvision"],
            requires_python=">=3.10",
        ),
        package(
            "pillow",
            "11.0.0",
            [wheel("pillow-11.0.0-cp311-cp311-manylinux_2_28_x86_64.whl")],
            via=["torchvision"],
            requires_python=">=3.9",
        ),
        package(
            "filelock",
            "3.16.1",
            [wheel("filelock-3.16.1-py3-none-any.whl"), sdist("filelock-3.16.1.tar.gz")],
            via=["torch", "triton"],
            requires_python=">=3.8",
        ),
        package(
            "typing-extensions",
            "4.12.2",
            [wheel("typing_extensions-4.12.2-py3-none-any.whl")],
            via=["torch"],
            requires_python=">=3.8",
        ),
    ]
    return Lock.build(
        input_digest=fake_sha("cuda-lock-input"),
        target=target,
        plan=plan,
        requirements=["torchvision==0.20.1", "torch==2.5.1"],
        constraints=["numpy<2.2"],
        options=LockOptions(),
        packages=packages,
    )


def host_lock() -> Lock:
    target = Target.of("macos_arm64", "3.12.4")
    plan = plan_for(target, default_url="https://mirror.example.org/pypi/simple")
    mirror = "https://mirror.example.org/pypi/files"
    packages = [
        package(
            "docopt",
            "0.6.2",
            [sdist("docopt-0.6.2.tar.gz", mirror, None)],
            via=[ROOT],
            index=plan.default_url,
        ),
        package(
            "pip",
            "24.3.1",
            [wheel("pip-24.3.1-py3-none-any.whl", mirror)],
            via=[ROOT],
            index=plan.default_url,
            requires_python=">=3.8",
        ),
        package(
            "setuptools",
            "75.6.0",
            [wheel("setuptools-75.6.0-py3-none-any.whl", mirror)],
            via=["fancy-plugin"],
            index=plan.default_url,
            requires_python=">=3.9",
        ),
        package(
            "fancy-plugin",
            "1.0.0rc1",
            [
                wheel("fancy_plugin-1.0.0rc1-cp312-cp312-macosx_11_0_arm64.whl", mirror),
                wheel("fancy_plugin-1.0.0rc1-cp312-abi3-macosx_10_9_universal2.whl", mirror),
                wheel("fancy_plugin-1.0.0rc1-py3-none-any.whl", mirror),
            ],
            via=[ROOT, "docopt"],
            deps=["setuptools"],
            index=plan.default_url,
            requires_python=">=3.9, !=3.10.*",
        ),
    ]
    return Lock.build(
        input_digest=fake_sha("host-lock-input"),
        target=target,
        plan=plan,
        requirements=["docopt", "fancy-plugin>=1.0.0rc1", "pip==24.3.1"],
        constraints=[],
        options=LockOptions(prereleases=True, as_of=datetime(2024, 12, 1, tzinfo=UTC)),
        packages=packages,
    )


def windows_lock() -> Lock:
    target = Target.of("windows_amd64", "3.9", "cpu")
    plan = plan_for(target)
    cpu = f"{TORCH}/cpu/"
    packages = [
        package(
            "torch",
            "2.4.1+cpu",
            [
                wheel("torch-2.4.1+cpu-cp39-cp39-win_amd64.whl", f"{TORCH}/cpu"),
            ],
            via=[ROOT],
            deps=["sympy"],
            index=cpu,
        ),
        package(
            "sympy",
            "1.13.3",
            [wheel("sympy-1.13.3-py3-none-any.whl"), sdist("sympy-1.13.3.tar.gz")],
            via=["torch"],
            deps=["mpmath"],
        ),
        package(
            "mpmath",
            "1.3.0",
            [wheel("mpmath-1.3.0-py3-none-any.whl")],
            via=["sympy"],
        ),
        package(
            "pyyaml",
            "6.0.2",
            [
                wheel("PyYAML-6.0.2-cp39-cp39-win_amd64.whl"),
            ],
            via=[ROOT],
        ),
    ]
    return Lock.build(
        input_digest=fake_sha("windows-lock-input"),
        target=target,
        plan=plan,
        requirements=["pyyaml", "torch"],
        constraints=[],
        options=LockOptions(),
        packages=packages,
    )


SAMPLES = {"cuda": cuda_lock, "host": host_lock, "windows": windows_lock}


@pytest.fixture(params=sorted(SAMPLES))
def sample_lock(request: pytest.FixtureRequest) -> tuple[str, Lock]:
    name: str = request.param
    return name, SAMPLES[name]()


GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def check_golden(name: str, text: str) -> None:
    """Compare with tests/golden/<name> byte for byte.

    Regenerate after an intended format change with
    `LOCKD_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/render -q`, then read the diff.
    """
    path = GOLDEN / name
    data = text.encode("utf-8")
    if os.environ.get("LOCKD_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return
    assert path.exists(), f"{path} missing: run with LOCKD_UPDATE_GOLDEN=1 to create it"
    expected = path.read_bytes()
    if data != expected:
        diff = difflib.unified_diff(
            expected.decode("utf-8").splitlines(), text.splitlines(), "golden", "rendered", lineterm=""
        )
        pytest.fail(f"{name} differs from its golden file:\n" + "\n".join(diff))


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    return check_golden
