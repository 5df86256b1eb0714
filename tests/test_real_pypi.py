"""The public benchmark cases against real PyPI: lockd's pins equal uv's for the same target.

The PyTorch index is not reachable here, so cases with `cuda` read the torch family from the
fixture index (both tools get the same URL). Both read PyPI's pages through the same
`pypi_view`; skipped with a reason when PyPI is unreachable.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.served_index import WatchedIndex
from lockd.index import IndexClient
from lockd.inputs import LockRequest, parse_requirements
from lockd.resolver import resolve
from lockd.routing import plan_for
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


@pytest.fixture(scope="module")
def pypi(pypi_view: str) -> Iterator[IndexClient]:
    with IndexClient(timeout=30.0) as client:
        yield client


@pytest.mark.skipif(not CASES, reason=f"no benchmark cases at {CASES_DIR}")
@pytest.mark.parametrize("case", CASES)
def test_bench_case_matches_uv(
    case: str, pypi: IndexClient, pypi_view: str, fixture_index: WatchedIndex, tmp_path: Path
) -> None:
    folder = CASES_DIR / case
    requirements = (folder / "requirements.in").read_text()
    target = target_from_spec(tomllib.loads((folder / "target.toml").read_text()))
    plan = plan_for(target, default_url=pypi_view, pytorch_base=fixture_index.pytorch_base)
    lock = resolve(
        LockRequest(requirements=parse_requirements(requirements), constraints=(), target=target, plan=plan),
        pypi,
    )
    variant_url = plan.accelerator_url
    expected = uv_compile(
        requirements + "\n" + UV_DIRECT.get(case, ""),
        target,
        UvIndexes(pypi_view, variant_url),
        tmp_path,
    )
    assert {name: str(version) for name, version in lock.pins.items()} == expected
    for package in lock.packages:
        assert package.files and all(len(f.sha256) == 64 for f in package.files)
    if case in DOWNLOAD_CHECK:
        downloaded = pip_download_lock(lock, tmp_path)
        assert len(downloaded) == len(lock.packages)
