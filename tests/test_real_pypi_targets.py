"""Today's targets against real PyPI: new Pythons on every platform agree with uv, and a lock
installs on a newer host without building.

Python 3.14, 3.15 and free-threaded 3.14t on each of the six platforms: lockd's pins equal
uv's (`--python-platform`, `MACOSX_DEPLOYMENT_TARGET`, a free-threaded interpreter for 3.14t)
or both refuse, and pip installs each lock for its target with `--require-hashes
--only-binary=:all:` (a dry run: the GPU wheels are gigabytes); the three read the same pages
through `pypi_view`. vllm's lock for Linux x86_64 / Python 3.11 at the default glibc 2.28
installs on this host (glibc 2.36) without building anything: llguidance's only Linux wheels
are `manylinux_2_31`, and the lock lists that wheel beside the sdist. Skipped with a reason when
PyPI is unreachable. The cases run four at a time (`outcomes`), each test judging its own.
"""

from __future__ import annotations

import json
import platform as host_platform
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.tags import sys_tags
from packaging.utils import parse_wheel_filename

from lockd.errors import LockdError
from lockd.index import IndexClient
from lockd.inputs import LockRequest, parse_requirements
from lockd.lock import Lock
from lockd.render import render
from lockd.resolver import resolve
from lockd.routing import plan_for
from lockd.target import PLATFORMS, Target
from tests.peers import PeerFailed, UvIndexes, clean_env, pip_dry_run_lock, uv_compile

pytestmark = pytest.mark.network

# A stack with compiled wheels on every platform; torch (from PyPI: no variant) where it has
# builds: torch dropped macOS x86_64 and has no Windows on ARM or Python 3.15 builds for every
# platform, and there both tools refuse, which the first test also checks.
STACK = "numpy\npandas\npyarrow\nscikit-learn\npydantic\nfastapi\n"
TORCH = "torch\n"
PYTHONS = ("3.14", "3.15", "3.14t")
TORCH_TARGETS = [
    ("linux_x86_64", "3.14"),
    ("linux_x86_64", "3.14t"),
    ("linux_aarch64", "3.14"),
    ("macos_arm64", "3.14t"),
    ("windows_amd64", "3.14"),
    ("macos_x86_64", "3.14"),
]


@dataclass(frozen=True, slots=True)
class Pypi:
    client: IndexClient
    url: str  # the module's `pypi_view`: lockd, uv and pip read the same pages


@pytest.fixture(scope="module")
def pypi(pypi_view: str) -> Iterator[Pypi]:
    with IndexClient(timeout=60.0) as client:
        yield Pypi(client, pypi_view)


@pytest.fixture(scope="module")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uv-cache")


def _lock(pypi: Pypi, requirements: str, target: Target) -> Lock:
    plan = plan_for(target, default_url=pypi.url)
    request = LockRequest(
        requirements=parse_requirements(requirements), constraints=(), target=target, plan=plan
    )
    return resolve(request, pypi.client)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What lockd, uv and pip made of one case; each test judges its own (vllm's has no uv)."""

    lock: Lock | None
    refused: LockdError | None  # lockd found no version that installs
    uv: dict[str, str] | None
    uv_failed: PeerFailed | None
    chosen: list[str] | None  # what pip would install from the lock; None where the pins differ


def _outcome(pypi: Pypi, requirements: str, target: Target, tmp_path: Path, uv_cache: Path) -> Outcome:
    try:
        lock, refused = _lock(pypi, requirements, target), None
    except LockdError as exc:
        lock, refused = None, exc
    try:
        uv, uv_failed = (
            uv_compile(requirements, target, UvIndexes(pypi.url), tmp_path, uv_cache=uv_cache),
            None,
        )
    except PeerFailed as exc:
        uv, uv_failed = None, exc
    agreed = lock is not None and uv == {name: str(version) for name, version in lock.pins.items()}
    chosen = pip_dry_run_lock(lock, tmp_path) if agreed and lock is not None else None
    return Outcome(lock=lock, refused=refused, uv=uv, uv_failed=uv_failed, chosen=chosen)


Case = tuple[str, str, str]  # requirements, platform, Python
VLLM: Case = ("vllm\n", "linux_x86_64", "3.11")


def _case(item: pytest.Item) -> Case | None:
    """The case a collected test of this module checks, from its parameters; None for any other test."""
    if not isinstance(item, pytest.Function) or item.module is not sys.modules[__name__]:
        return None
    params = item.callspec.params if hasattr(item, "callspec") else {}
    if item.originalname == "test_new_pythons_agree_with_uv_on_every_platform":
        return STACK, str(params["platform_name"]), str(params["python"])
    if item.originalname == "test_a_vllm_lock_installs_on_a_newer_glibc_without_building":
        return VLLM if _INSTALLS_HERE else None
    if item.originalname == "test_torch_from_pypi_for_new_pythons_agrees_with_uv":
        return TORCH, str(params["platform_name"]), str(params["python"])
    return None


# Each case waits on the network most of its time (pip reads every wheel's METADATA by range
# requests, one after another: 4-12 s a case, against 1-2 s of lockd and uv): run one after the
# other, the module took 308 s of a CI run. The selected cases start together when the module's
# first case asks, a few at a time, and each test then judges its own case's outcome.
_AT_ONCE = 4


@pytest.fixture(scope="module")
def outcomes(
    request: pytest.FixtureRequest, pypi: Pypi, uv_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[Case, Future[Outcome]]]:
    cases = dict.fromkeys(case for item in request.session.items if (case := _case(item)) is not None)
    # The longest first: vllm's (46 s alone), then torch's, whose wheels are the biggest for pip
    # to read (aarch64 took 44 s alone), then the stack's.
    cases = dict.fromkeys(sorted(cases, key=lambda case: (case != VLLM, case[0] == STACK)))
    with ThreadPoolExecutor(max_workers=_AT_ONCE, thread_name_prefix="peer-case") as pool:
        futures = {
            case: pool.submit(_vllm_outcome, pypi, tmp_path_factory.mktemp("vllm"))
            if case == VLLM
            else pool.submit(
                _outcome,
                pypi,
                case[0],
                Target.of(case[1], case[2]),
                tmp_path_factory.mktemp("case"),
                uv_cache,
            )
            for case in cases
        }
        try:
            yield futures
        finally:
            for future in futures.values():
                future.cancel()


def _agrees_with_uv(outcomes: dict[Case, Future[Outcome]], case: Case) -> None:
    outcome = outcomes[case].result()
    if outcome.refused is not None:
        # Where lockd finds no version that installs, uv must find none either.
        assert outcome.uv_failed is not None, (
            f"lockd refused ({outcome.refused.message}) but uv locked {outcome.uv}"
        )
        assert "has no file for" in outcome.refused.message, outcome.refused.message
        return
    if outcome.uv_failed is not None:
        raise outcome.uv_failed
    assert outcome.lock is not None
    assert {name: str(version) for name, version in outcome.lock.pins.items()} == outcome.uv
    assert outcome.chosen and all(name.endswith(".whl") for name in outcome.chosen)


@pytest.mark.parametrize("python", PYTHONS)
@pytest.mark.parametrize("platform_name", list(PLATFORMS))
def test_new_pythons_agree_with_uv_on_every_platform(
    outcomes: dict[Case, Future[Outcome]], platform_name: str, python: str
) -> None:
    _agrees_with_uv(outcomes, (STACK, platform_name, python))


@pytest.mark.parametrize(("platform_name", "python"), TORCH_TARGETS)
def test_torch_from_pypi_for_new_pythons_agrees_with_uv(
    outcomes: dict[Case, Future[Outcome]], platform_name: str, python: str
) -> None:
    _agrees_with_uv(outcomes, (TORCH, platform_name, python))


def _glibc() -> tuple[int, int] | None:
    found = host_platform.libc_ver()
    if found[0] != "glibc":
        return None
    major, minor = found[1].split(".")[:2]
    return int(major), int(minor)


_INSTALLS_HERE = (
    sys.platform == "linux" and host_platform.machine() == "x86_64" and sys.version_info[:2] == (3, 11)
) and (_glibc() or (0, 0)) >= (2, 31)


def _vllm_outcome(pypi: Pypi, tmp_path: Path) -> Outcome:
    """vllm's lock for this host's target, and the URLs pip would install from it (as `chosen`)."""
    try:
        lock = _lock(pypi, VLLM[0], Target.of(VLLM[1], VLLM[2]))
    except LockdError as exc:
        return Outcome(lock=None, refused=exc, uv=None, uv_failed=None, chosen=None)
    requirements = tmp_path / "requirements.txt"
    requirements.write_bytes(render(lock, "requirements.txt"))
    report = tmp_path / "report.json"
    # fast-deps reads each wheel's METADATA by HTTP range requests (PyPI here serves no PEP 658
    # files): without it the dry run downloads the 4 GB of wheels it would install.
    command = [
        sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--require-hashes",
        "--only-binary=:all:", "--use-feature=fast-deps", "--no-cache-dir", "--quiet",
        "--report", str(report), "-r", str(requirements),
    ]  # fmt: skip
    result = subprocess.run(
        command, env=clean_env(tmp_path), capture_output=True, text=True, timeout=1500, check=False
    )
    if result.returncode != 0:
        raise PeerFailed(f"pip install --dry-run of vllm's lock failed:\n{result.stderr[-4000:]}")
    installed = json.loads(report.read_text())["install"]
    urls = [str(item["download_info"]["url"]) for item in installed]
    return Outcome(lock=lock, refused=None, uv=None, uv_failed=None, chosen=urls)


@pytest.mark.slow
@pytest.mark.skipif(
    not _INSTALLS_HERE, reason="installs on a Linux x86_64 CPython 3.11 host with glibc 2.31 or newer"
)
def test_a_vllm_lock_installs_on_a_newer_glibc_without_building(
    outcomes: dict[Case, Future[Outcome]],
) -> None:
    outcome = outcomes[VLLM].result()
    assert outcome.refused is None, outcome.refused.message
    lock, urls = outcome.lock, outcome.chosen
    assert lock is not None and urls is not None
    llguidance = lock.package("llguidance")
    assert llguidance is not None
    kinds = {f.kind for f in llguidance.files}
    assert kinds == {"sdist", "wheel"}, [f.filename for f in llguidance.files]
    # every pin has a wheel this host installs: no build, whatever pip picks
    host = set(sys_tags())
    for package in lock.packages:
        wheels = [f for f in package.files if f.kind == "wheel"]
        assert any(set(parse_wheel_filename(f.filename)[3]) & host for f in wheels), package.name
    assert len(urls) == len(lock.packages)
    assert all(url.endswith(".whl") for url in urls)
    assert any("llguidance" in url and "manylinux_2_31" in url for url in urls)
