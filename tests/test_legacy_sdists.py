"""Locking what only legacy sdists describe, and saying so: egg-info, overrides, sdist and yank warnings."""

from __future__ import annotations

from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from fixtures.index import FixtureIndex
from fixtures.legacy_sdists import LEGACY_BUILD_MARKER, publish_legacy_sdist
from lockd.index import IndexClient
from lockd.inputs import LockOptions, LockRequest, parse_requirements
from lockd.lock import Lock
from lockd.metadata_overrides import MetadataOverride
from lockd.render.requirements_txt import render_requirements_txt
from lockd.resolver import resolve
from lockd.routing import plan_for
from lockd.target import Target


def _lock(index: FixtureIndex, text: str, options: LockOptions | None = None) -> Lock:
    target = Target.of("linux_x86_64", "3.11", None)
    request = LockRequest(
        requirements=parse_requirements(text),
        constraints=(),
        target=target,
        plan=plan_for(target, default_url=index.pypi_url, pytorch_base=index.pytorch_base),
        options=options or LockOptions(),
    )
    with IndexClient(timeout=10.0) as client:
        return resolve(request, client)


def test_an_sdist_with_egg_info_locks_and_says_where_its_dependencies_came_from(
    mutable_index: FixtureIndex,
) -> None:
    Path(LEGACY_BUILD_MARKER).unlink(missing_ok=True)
    publish_legacy_sdist(
        mutable_index,
        "lockd-fx-promise",
        "2.3",
        requires_txt="lockd-fx-plain>=1.0\n\n[test]\nlockd-fx-speedups\n",
    )
    lock = _lock(mutable_index, "lockd-fx-promise")
    assert {n: str(v) for n, v in lock.pins.items()} == {"lockd-fx-promise": "2.3", "lockd-fx-plain": "1.1"}
    promise = lock.package("lockd-fx-promise")
    plain = lock.package("lockd-fx-plain")
    assert promise is not None and promise.metadata == "egg-info"
    assert plain is not None and plain.metadata is None
    assert [(w.kind, w.package) for w in lock.warnings] == [("sdist", "lockd-fx-promise")]
    text = render_requirements_txt(lock)
    assert (
        "# warning: lockd-fx-promise 2.3 is locked as a source distribution (lockd_fx_promise-2.3.tar.gz): "
        "installing the lock builds it, so the image needs a compiler and its build requirements\n"
    ) in text
    assert "    # via -r requirements.in\n    # dependencies from the sdist's egg-info requires.txt\n" in text
    assert Lock.from_json(lock.canonical_bytes()) == lock
    assert lock.to_json()["warnings"][0]["kind"] == "sdist"
    assert not Path(LEGACY_BUILD_MARKER).exists(), "setup.py ran in the resolving process"


def test_an_operator_override_describes_an_sdist_nothing_else_does(mutable_index: FixtureIndex) -> None:
    publish_legacy_sdist(mutable_index, "lockd-fx-flash", "2.6.3", requires_txt=None, egg_info=False)
    override = MetadataOverride(
        name=canonicalize_name("lockd-fx-flash"),
        versions=SpecifierSet("==2.6.3"),
        requires_dist=("lockd-fx-plain==1.0",),
    )
    lock = _lock(mutable_index, "lockd-fx-flash", LockOptions(metadata_overrides=(override,)))
    assert {n: str(v) for n, v in lock.pins.items()} == {"lockd-fx-flash": "2.6.3", "lockd-fx-plain": "1.0"}
    flash = lock.package("lockd-fx-flash")
    assert flash is not None and flash.metadata == "override"
    assert "    # dependencies from the operator's metadata override\n" in render_requirements_txt(lock)
    assert lock.options.to_json()["metadata_overrides"] == [
        {
            "name": "lockd-fx-flash",
            "version": "==2.6.3",
            "requires_dist": ["lockd-fx-plain==1.0"],
            "requires_python": None,
        }
    ]
    assert LockOptions.from_json(lock.options.to_json()) == lock.options


def test_a_yanked_version_pinned_by_a_dependency_is_locked_with_a_warning(
    mutable_index: FixtureIndex,
) -> None:
    mutable_index.publish("lockd-fx-pinner", "1.0", requires_dist=("lockd-fx-yanked==1.1",))
    lock = _lock(mutable_index, "lockd-fx-pinner")
    assert str(lock.pins[canonicalize_name("lockd-fx-yanked")]) == "1.1"
    (warning,) = [w for w in lock.warnings if w.kind == "yanked"]
    assert warning.message == (
        "lockd-fx-yanked 1.1 is yanked (broken build, use 1.0); it is locked because lockd-fx-pinner "
        "pins it with ==, as pip allows"
    )
    assert f"# warning: {warning.message}\n" in render_requirements_txt(lock)
    assert Lock.from_json(lock.canonical_bytes()) == lock


def test_a_lock_without_warnings_keeps_its_json_shape(fixture_index: FixtureIndex) -> None:
    lock = _lock(fixture_index, "lockd-fx-plain")
    assert "warnings" not in lock.to_json()
    assert all("metadata" not in p for p in lock.to_json()["packages"])
    assert "only_binary" not in lock.options.to_json()
