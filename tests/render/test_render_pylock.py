"""`render_pylock_toml`: PEP 751 files that `packaging.pylock` accepts and selects from correctly."""

from __future__ import annotations

import tomllib
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st
from packaging.markers import Environment, Marker
from packaging.pylock import PackageDirectory, Pylock
from packaging.specifiers import SpecifierSet

from lockd.lock import Lock
from lockd.render.conda_lock import best_file
from lockd.render.pylock import _string, render_pylock_toml
from lockd.target import PLATFORMS, Target


def _load(lock: Lock) -> dict[str, Any]:
    return tomllib.loads(render_pylock_toml(lock))


def test_packaging_validates_it_and_every_file_round_trips(sample_lock: tuple[str, Lock]) -> None:
    _, lock = sample_lock
    pylock = Pylock.from_dict(_load(lock))
    pylock.validate()
    assert str(pylock.lock_version) == "1.0"
    assert pylock.created_by == "lockd"
    assert [p.name for p in pylock.packages] == [p.name for p in lock.packages]
    for parsed, locked in zip(pylock.packages, lock.packages, strict=True):
        assert parsed.version == locked.version
        assert parsed.index == locked.index
        assert parsed.marker is None  # the lock is for one target: no per-package markers
        if locked.requires_python:
            assert parsed.requires_python == SpecifierSet(locked.requires_python)
        assert [d["name"] for d in parsed.dependencies or []] == list(locked.dependencies)
        wheels = [(w.name, w.url, w.size, dict(w.hashes)) for w in parsed.wheels or []]
        # best first for the target's minimum level (issue 14), not the lock's filename order
        assert wheels == [
            (f.filename, f.url, f.size, {"sha256": f.sha256})
            for f in locked.files_best_first(lock.target)
            if f.kind == "wheel"
        ]
        sdists = [f for f in locked.files if f.kind == "sdist"]
        if sdists:
            assert parsed.sdist is not None
            assert (parsed.sdist.name, parsed.sdist.url, parsed.sdist.size, dict(parsed.sdist.hashes)) == (
                sdists[0].filename,
                sdists[0].url,
                sdists[0].size,
                {"sha256": sdists[0].sha256},
            )
        else:
            assert parsed.sdist is None


def test_an_installer_on_the_target_selects_every_package_and_the_best_wheel(
    sample_lock: tuple[str, Lock],
) -> None:
    _, lock = sample_lock
    pylock = Pylock.from_dict(_load(lock))
    # Every PEP 508 variable, so the plain dict is a complete packaging `Environment`.
    env = cast(Environment, lock.target.marker_environment)
    chosen = {
        package.name: choice
        for package, choice in pylock.select(environment=env, tags=list(lock.target.tags))
    }
    assert sorted(chosen) == [p.name for p in lock.packages]
    for locked in lock.packages:
        expected = best_file(locked, lock.target)
        assert expected is not None
        choice = chosen[locked.name]
        assert not isinstance(choice, PackageDirectory)  # a lock holds no local directories
        assert choice.url == expected.url


def test_environment_marker_holds_on_the_target_and_nowhere_else(sample_lock: tuple[str, Lock]) -> None:
    _, lock = sample_lock
    data = _load(lock)
    (marker_text,) = data["environments"]
    marker = Marker(marker_text)
    assert marker.evaluate(dict(lock.target.marker_environment))
    assert lock.target.python in SpecifierSet(data["requires-python"])
    for name in PLATFORMS:
        for python in ("3.9", "3.13"):
            other = Target.of(name, python)
            same = name == lock.target.platform.name and other.python_version == lock.target.python_version
            assert marker.evaluate(dict(other.marker_environment)) is same


def test_the_cuda_variant_and_indexes_are_recorded_under_tool_lockd(sample_lock: tuple[str, Lock]) -> None:
    _, lock = sample_lock
    tool = _load(lock)["tool"]["lockd"]
    assert tool["input-digest"] == f"sha256:{lock.input_digest}"
    assert tool["platform"] == lock.target.platform.name
    assert tool["python"] == str(lock.target.python)
    assert tool.get("cuda") == lock.target.variant_name
    assert tool["default-index"] == lock.plan.default_url
    assert tool.get("accelerator-index") == lock.plan.accelerator_url
    assert tool.get("requirements", []) == list(lock.requirements)
    assert tool.get("constraints", []) == list(lock.constraints)


@given(st.text())
def test_any_string_survives_toml_quoting(value: str) -> None:
    assert tomllib.loads(f"key = {_string(value)}\n") == {"key": value}
