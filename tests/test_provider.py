"""The provider rules a version out and backtracks, as pip and uv do, instead of aborting.

The peer resolver suite's one real bug: when a dependency's newest version needs a project the
index does not have (404), or has only an sdist without static metadata, lockd stopped. Such a
version is now ruled out with its reason and the next one tried.
"""

from __future__ import annotations

from pathlib import Path

from fixtures.index import FixtureIndex
from fixtures.synthetic import SDIST_BUILD_MARKER
from lockd.index import IndexClient
from lockd.inputs import LockOptions, LockRequest, parse_requirements
from lockd.lock import Lock
from lockd.resolver import resolve
from lockd.routing import plan_for
from lockd.target import Target


def _lock(index: FixtureIndex, text: str, *, only_binary: bool = False) -> Lock:
    target = Target.of("linux_x86_64", "3.11", None)
    request = LockRequest(
        requirements=parse_requirements(text),
        constraints=(),
        target=target,
        plan=plan_for(target, default_url=index.pypi_url, pytorch_base=index.pytorch_base),
        options=LockOptions(only_binary=only_binary),
    )
    with IndexClient(timeout=10.0) as client:
        return resolve(request, client)


def _pins(lock: Lock) -> dict[str, str]:
    return {name: str(version) for name, version in lock.pins.items()}


def test_a_version_that_needs_a_missing_project_is_ruled_out(mutable_index: FixtureIndex) -> None:
    mutable_index.publish("lockd-fx-app", "1.0", requires_dist=("lockd-fx-plain",))
    mutable_index.publish("lockd-fx-app", "2.0", requires_dist=("lockd-fx-nowhere>=1",))
    mutable_index.publish("lockd-fx-top", "1.0", requires_dist=("lockd-fx-app",))
    assert _pins(_lock(mutable_index, "lockd-fx-top")) == {
        "lockd-fx-top": "1.0",
        "lockd-fx-app": "1.0",
        "lockd-fx-plain": "1.1",
    }


def test_a_version_whose_metadata_needs_a_build_is_ruled_out(mutable_index: FixtureIndex) -> None:
    Path(SDIST_BUILD_MARKER).unlink(missing_ok=True)
    mutable_index.publish("lockd-fx-legacy", "1.0", requires_dist=("lockd-fx-plain",))
    mutable_index.publish("lockd-fx-legacy", "2.0", wheel_tags=(), sdist=True)
    mutable_index.publish(
        "lockd-fx-user", "1.0", requires_dist=("lockd-fx-legacy", "lockd-fx-sdist-dynamic<2")
    )
    mutable_index.publish("lockd-fx-user", "2.0", requires_dist=("lockd-fx-legacy",))
    lock = _lock(mutable_index, "lockd-fx-user")
    assert _pins(lock) == {"lockd-fx-user": "2.0", "lockd-fx-legacy": "1.0", "lockd-fx-plain": "1.1"}
    # The sdist of lockd-fx-legacy 2.0 was read, never built.
    assert not Path(SDIST_BUILD_MARKER).exists()


def test_the_dynamic_sdist_is_ruled_out_for_an_older_version_with_wheels(mutable_index: FixtureIndex) -> None:
    Path(SDIST_BUILD_MARKER).unlink(missing_ok=True)
    mutable_index.publish("lockd-fx-sdist-dynamic", "0.9", requires_dist=("lockd-fx-plain==1.0",))
    lock = _lock(mutable_index, "lockd-fx-sdist-dynamic")
    assert _pins(lock) == {"lockd-fx-sdist-dynamic": "0.9", "lockd-fx-plain": "1.0"}
    assert not Path(SDIST_BUILD_MARKER).exists()


def test_only_binary_takes_an_older_version_with_wheels(mutable_index: FixtureIndex) -> None:
    mutable_index.publish("lockd-fx-sdist-static", "0.9", requires_dist=("lockd-fx-plain==1.0",))
    assert _pins(_lock(mutable_index, "lockd-fx-sdist-static"))["lockd-fx-sdist-static"] == "1.0"
    binary = _lock(mutable_index, "lockd-fx-sdist-static", only_binary=True)
    assert _pins(binary) == {"lockd-fx-sdist-static": "0.9", "lockd-fx-plain": "1.0"}
    assert all(f.kind == "wheel" for p in binary.packages for f in p.files)
    assert binary.options.to_json()["only_binary"] is True
