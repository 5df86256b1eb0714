"""lockd's pins against uv's (every target) and pip-compile's (host target) on the fixture index.

Each lock lockd writes here is also checked by pip: installed with `--require-hashes --no-deps`
into a fresh venv for the host target, or downloaded with `--only-binary=:all: --platform …`
for the others. Where the tools legitimately differ, the case says by which rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.served_index import ServedIndex, WatchedIndex
from lockd.index import IndexClient
from lockd.inputs import LockOptions, LockRequest, parse_requirements
from lockd.lock import Lock
from lockd.resolver import resolve
from lockd.routing import plan_for
from lockd.target import Target
from tests.peers import UvIndexes, pip_compile, pip_download_lock, pip_install_lock, uv_compile

HOST = Target.of("linux_x86_64", "3.11.7")  # the interpreter pip-compile runs on
TARGETS = {
    "linux-x86_64-cu124": Target.of("linux_x86_64", "3.11", "cu124"),
    "linux-aarch64-cpu": Target.of("linux_aarch64", "3.12", "cpu"),
    "macos-arm64-cpu": Target.of("macos_arm64", "3.11", "cpu"),
}


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    requirements: str
    constraints: str = ""
    prereleases: bool = False
    torch: bool = False  # involves the torch family: no pip-compile comparison (it cannot route)
    # uv applies [tool.uv.sources] to direct dependencies only: a torch-family project reached
    # transitively would come from the default index. lockd routes every family member, so the
    # uv side names those projects directly (which adds no pin: they are in the lock anyway).
    uv_direct: str = ""


CASES = (
    Case("torch-stack", "torch==2.5.1\ntorchvision\nfastapi", torch=True),
    Case("torchaudio-numpy", "torchaudio==2.5.1\nnumpy<2", torch=True, uv_direct="torch"),
    Case("extras", "lockd-fx-extras[all]\nrequests"),
    Case("markers", "lockd-fx-markers\nlockd-fx-pyreq"),
    Case("yanked", "lockd-fx-yanked\nlockd-fx-plain"),
    Case("yanked-pinned", "lockd-fx-yanked==1.1"),
    Case("prereleases", "lockd-fx-pre>=1.1rc1\nlockd-fx-preonly"),
    Case("prereleases-allowed", "lockd-fx-pre", prereleases=True),
    Case("constraints", "lockd-fx-extras[fast]", constraints="lockd-fx-plain==1.0\nidna==3.7"),
    Case("web", "fastapi\nuvicorn[standard]\npydantic>=2"),
    Case("sdist-static", "lockd-fx-sdist-static"),
    # Requires-Python in the metadata only, a backjump, a name pinned with == later (fixtures/synthetic.py).
    Case(
        "order",
        "lockd-fx-metapy\nlockd-fx-order-a\nlockd-fx-order-b\nlockd-fx-order-d\nlockd-fx-order-e\nlockd-fx-order-g\nlockd-fx-order-x",
    ),
)


def _resolve(index: ServedIndex, client: IndexClient, case: Case, target: Target) -> Lock:
    request = LockRequest(
        requirements=parse_requirements(case.requirements),
        constraints=parse_requirements(case.constraints, source="constraints.txt"),
        target=target,
        plan=plan_for(target, default_url=index.pypi_url, pytorch_base=index.pytorch_base),
        options=LockOptions(prereleases=case.prereleases),
    )
    return resolve(request, client)


@pytest.fixture(scope="module")
def client() -> Iterator[IndexClient]:
    with IndexClient(timeout=20.0) as instance:
        yield instance


@pytest.fixture(scope="module")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uv cache for the module: uv builds the routing pyproject once, not once per case."""
    return tmp_path_factory.mktemp("uv-cache")


def _lockd_pins(lock: Lock) -> dict[str, str]:
    return {name: str(version) for name, version in lock.pins.items()}


@pytest.mark.parametrize("target_name", list(TARGETS))
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_pins_equal_uv(  # noqa: PLR0917 - pytest passes fixtures by position
    fixture_index: WatchedIndex,
    client: IndexClient,
    case: Case,
    target_name: str,
    tmp_path: Path,
    uv_cache: Path,
) -> None:
    target = TARGETS[target_name]
    lock = _resolve(fixture_index, client, case, target)
    variant_url = fixture_index.variant_url(target.variant_name or "cpu") if case.torch else None
    indexes = UvIndexes(fixture_index.pypi_url, variant_url)
    expected = uv_compile(
        case.requirements + "\n" + case.uv_direct,
        target,
        indexes,
        tmp_path,
        constraints=case.constraints,
        prereleases=case.prereleases,
    )
    assert _lockd_pins(lock) == expected
    downloaded = pip_download_lock(lock, tmp_path)
    wheels = [p for p in lock.packages if any(f.kind == "wheel" for f in p.files)]
    assert len(downloaded) == len(wheels)


@pytest.mark.parametrize(
    "case", [c for c in CASES if not c.torch], ids=[c.name for c in CASES if not c.torch]
)
def test_pins_equal_pip_compile_on_the_host(
    fixture_index: WatchedIndex, client: IndexClient, case: Case, tmp_path: Path
) -> None:
    lock = _resolve(fixture_index, client, case, HOST)
    expected = pip_compile(
        case.requirements,
        fixture_index.pypi_url,
        tmp_path,
        constraints=case.constraints,
        prereleases=case.prereleases,
    )
    assert _lockd_pins(lock) == expected


def test_host_locks_install_with_require_hashes(
    fixture_index: WatchedIndex, client: IndexClient, tmp_path: Path
) -> None:
    # One venv per lock is slow, so the host install check covers the sets that differ most in
    # what they install (wheels with extras and markers, an sdist, a pinned yanked version).
    for case in (CASES[2], CASES[5], CASES[9], CASES[10]):
        lock = _resolve(fixture_index, client, case, HOST)
        work = tmp_path / case.name
        work.mkdir()
        pip_install_lock(lock, work)


def test_where_pip_and_uv_part_lockd_follows_pip(
    fixture_index: WatchedIndex, client: IndexClient, tmp_path: Path
) -> None:
    """Both answers are valid; lockd's is pip's, by resolvelib's rule, which differs from uv's.

    util is reached early (app → data → util) and sdk late (app2 → mid → sdk); sdk 2.0 needs
    util<2, sdk 1.0 takes any util. resolvelib pins util to 2.0 first, and when pinning sdk 2.0
    narrows util's criterion, util's pin no longer satisfies it and is made again (1.0): an earlier
    pin gives way to a later, newer choice. uv's PubGrub keeps its earlier decision (util 2.0) and
    picks the newest sdk compatible with it (1.0). Real PyPI showed the same split on the bench's
    pypi-100 stack when python-dateutil 4.0 came out: pip and lockd keep boto3 1.44 with
    python-dateutil 2.9; uv takes python-dateutil 4.0 and walks botocore back to 0.76 (boto3 0.0.3).
    And on pypi-300 when cryptography 51 came out: msal 1.39 needs cryptography<51, so pip and
    lockd re-pin cryptography to 50.0.2 and keep azure-identity 1.27; uv keeps cryptography 51.0.1
    and walks msal back to 1.5.1 and azure-identity to 1.4.1.
    """
    case = Case("revise", "lockd-fx-revise-app\nlockd-fx-revise-app2")
    lock = _resolve(fixture_index, client, case, HOST)
    pins = _lockd_pins(lock)
    assert pins == pip_compile(case.requirements, fixture_index.pypi_url, tmp_path)
    assert (pins["lockd-fx-revise-sdk"], pins["lockd-fx-revise-util"]) == ("2.0", "1.0")
    uv = uv_compile(case.requirements, HOST, UvIndexes(fixture_index.pypi_url, None), tmp_path)
    # If uv ever agrees, this case belongs in CASES with the others.
    parting = ("lockd-fx-revise-sdk", "lockd-fx-revise-util")
    assert {n: v for n, v in uv.items() if n not in parting} == {
        n: v for n, v in pins.items() if n not in parting
    }
    assert (uv["lockd-fx-revise-sdk"], uv["lockd-fx-revise-util"]) == ("1.0", "2.0")
