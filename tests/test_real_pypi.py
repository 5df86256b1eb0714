"""The public benchmark cases against real PyPI: lockd's pins equal uv's for the same target.

The PyTorch index is not reachable here, so cases with `cuda` read the torch family from the
fixture index (both tools get the same URL). Skipped with a reason when PyPI is unreachable.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fixtures.served_index import WatchedIndex
from lockd.index import IndexClient
from lockd.inputs import LockRequest, parse_requirements
from lockd.resolver import resolve
from lockd.routing import DEFAULT_INDEX_URL, plan_for
from lockd.target import target_from_spec
from tests.peers import UvIndexes, pip_download_lock, uv_compile

pytestmark = pytest.mark.network

CASES_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "bench" / "cases"
CASES = (
    sorted(p.name for p in CASES_DIR.iterdir() if (p / "requirements.in").is_file())
    if CASES_DIR.is_dir()
    else []
)
# uv applies [tool.uv.sources] to direct dependencies only; these cases reach torch-family
# projects transitively (timm → torchvision, lightning → torch), so the uv side names them.
UV_DIRECT = {"vision-train": "torch\ntorchvision\n"}
# pip download of the whole lock is cheap only where the lock is small and has no CUDA wheels.
DOWNLOAD_CHECK = {"api-service"}


def _pypi_reachable() -> str | None:
    try:
        response = httpx.get(DEFAULT_INDEX_URL + "pip/", timeout=5.0, follow_redirects=True)
    except httpx.HTTPError as exc:
        return f"https://pypi.org/simple/ is unreachable ({type(exc).__name__})"
    if response.status_code != 200:
        return f"https://pypi.org/simple/ answered {response.status_code}"
    return None


@pytest.fixture(scope="module")
def pypi() -> Iterator[IndexClient]:
    reason = _pypi_reachable()
    if reason is not None:
        pytest.skip(reason)
    with IndexClient(timeout=30.0) as client:
        yield client


@pytest.mark.skipif(not CASES, reason=f"no benchmark cases at {CASES_DIR}")
@pytest.mark.parametrize("case", CASES)
def test_bench_case_matches_uv(
    case: str, pypi: IndexClient, fixture_index: WatchedIndex, tmp_path: Path
) -> None:
    folder = CASES_DIR / case
    requirements = (folder / "requirements.in").read_text()
    target = target_from_spec(tomllib.loads((folder / "target.toml").read_text()))
    plan = plan_for(target, pytorch_base=fixture_index.pytorch_base)
    lock = resolve(
        LockRequest(requirements=parse_requirements(requirements), constraints=(), target=target, plan=plan),
        pypi,
    )
    variant_url = plan.accelerator_url
    expected = uv_compile(
        requirements + "\n" + UV_DIRECT.get(case, ""),
        target,
        UvIndexes(DEFAULT_INDEX_URL, variant_url),
        tmp_path,
    )
    assert {name: str(version) for name, version in lock.pins.items()} == expected
    for package in lock.packages:
        assert package.files and all(len(f.sha256) == 64 for f in package.files)
    if case in DOWNLOAD_CHECK:
        downloaded = pip_download_lock(lock, tmp_path)
        assert len(downloaded) == len(lock.packages)
