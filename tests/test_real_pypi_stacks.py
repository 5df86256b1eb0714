"""Stacks lockd used to refuse, on real PyPI, pin for pin with uv (issue 15's acceptance).

tensorflow[and-cuda] needs `promise` (an sdist with Metadata-Version 2.1 and egg-info) and,
on Python 3.9, backtracks over sdist-only versions; it must lock and agree with uv. Skipped
with a reason when PyPI is unreachable.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lockd.index import IndexClient
from lockd.inputs import LockRequest, parse_requirements
from lockd.resolver import resolve
from lockd.routing import plan_for
from lockd.target import target_from_spec
from tests.peers import UvIndexes, uv_compile

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def pypi(pypi_view: str) -> Iterator[IndexClient]:
    with IndexClient(timeout=30.0) as client:
        yield client


@pytest.mark.parametrize(
    ("platform", "python"), [("linux_x86_64", "3.11"), ("linux_aarch64", "3.9"), ("linux_x86_64", "3.13")]
)
def test_tensorflow_and_cuda_locks_as_uv_does(
    pypi: IndexClient, pypi_view: str, tmp_path: Path, platform: str, python: str
) -> None:
    requirements = "tensorflow[and-cuda]\n"
    target = target_from_spec({"platform": platform, "python": python})
    plan = plan_for(target, default_url=pypi_view)
    request = LockRequest(
        requirements=parse_requirements(requirements), constraints=(), target=target, plan=plan
    )
    lock = resolve(request, pypi)
    expected = uv_compile(requirements, target, UvIndexes(pypi_view), tmp_path)
    assert {name: str(version) for name, version in lock.pins.items()} == expected
    promise = lock.package("promise")
    if promise is not None:  # an sdist only: its dependencies came from its egg-info
        assert promise.metadata == "egg-info"
        assert any(w.kind == "sdist" and w.package == "promise" for w in lock.warnings)
