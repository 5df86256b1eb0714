"""Explanations of failed resolutions, by their exact wording: who asked, the extra, the tags, the third package.

The four cases where lockd's explanation was worse than uv's in the peer resolver suite: a
missing name the user never typed (say who asked, from the request line down), an extras
conflict (name the extras), no wheel for the target (name the tags that exist) and a range
ruled out by a third package (name it).
"""

from __future__ import annotations

import pytest

from fixtures.index import FixtureIndex
from lockd.errors import NoMatchingDistribution, ResolutionImpossible, SdistNeedsBuild, UnknownProject
from lockd.index import IndexClient
from lockd.resolver import resolve
from tests.support import linux_request


def test_a_missing_name_says_who_asked_from_the_request_line_down(mutable_index: FixtureIndex) -> None:
    mutable_index.publish("lockd-fx-app", "1.0", requires_dist=("lockd-fx-nowhere>=1",))
    mutable_index.publish("lockd-fx-top", "1.0", requires_dist=("lockd-fx-app",))
    with IndexClient(timeout=10.0) as client, pytest.raises(UnknownProject) as raised:
        resolve(linux_request(mutable_index, "lockd-fx-plain\nlockd-fx-top"), client)
    assert raised.value.message == (
        f"lockd-fx-nowhere is not on the index {mutable_index.pypi_url}: "
        "requirements.in line 2 asks for lockd-fx-top → lockd-fx-top 1.0 requires lockd-fx-app "
        "→ lockd-fx-app 1.0 requires lockd-fx-nowhere>=1"
    )
    assert raised.value.hint == (
        "nothing in the request names lockd-fx-nowhere, lockd-fx-app asks for it: pin a version that "
        "does not, or have lockd-fx-nowhere published on that index"
    )


def test_a_missing_name_in_the_request_names_its_line(fixture_index: FixtureIndex) -> None:
    with IndexClient(timeout=10.0) as client, pytest.raises(UnknownProject) as raised:
        resolve(linux_request(fixture_index, "lockd-fx-plain\nlockd-fx-nope>=1"), client)
    assert raised.value.message == (
        f"lockd-fx-nope is not on the index {fixture_index.pypi_url} "
        "(requirements.in line 2 asks for lockd-fx-nope>=1)"
    )


def test_an_extras_conflict_names_the_extras(mutable_index: FixtureIndex) -> None:
    mutable_index.publish(
        "lockd-fx-twoways",
        "1.0",
        requires_dist=('lockd-fx-conflict-b<2; extra == "old"', 'lockd-fx-conflict-b>=2; extra == "new"'),
    )
    with IndexClient(timeout=10.0) as client, pytest.raises(ResolutionImpossible) as raised:
        resolve(linux_request(mutable_index, "lockd-fx-twoways[new,old]"), client)
    assert raised.value.message == (
        "the extras [new] and [old] of lockd-fx-twoways 1.0 cannot be installed together: "
        "lockd-fx-twoways[new] 1.0 requires lockd-fx-conflict-b>=2, "
        "but lockd-fx-twoways[old] 1.0 requires lockd-fx-conflict-b<2"
    )


def test_an_extra_against_a_request_line_names_the_extra(mutable_index: FixtureIndex) -> None:
    mutable_index.publish("lockd-fx-twoways", "1.0", requires_dist=('lockd-fx-conflict-b<2; extra == "old"',))
    with IndexClient(timeout=10.0) as client, pytest.raises(ResolutionImpossible) as raised:
        resolve(linux_request(mutable_index, "lockd-fx-twoways[old]\nlockd-fx-conflict-b>=2"), client)
    assert raised.value.message == (
        "lockd-fx-twoways[old] 1.0 requires lockd-fx-conflict-b<2, "
        "but requirements.in line 2 asks for lockd-fx-conflict-b>=2"
    )


def test_no_wheel_for_the_target_names_the_tags_that_exist(fixture_index: FixtureIndex) -> None:
    with IndexClient(timeout=10.0) as client, pytest.raises(NoMatchingDistribution) as raised:
        resolve(linux_request(fixture_index, "lockd-fx-plain\nlockd-fx-winonly"), client)
    assert raised.value.message == (
        "lockd-fx-winonly 1.0 has no file for linux_x86_64, Python 3.11.0: its wheels are for "
        "cp310-cp310-win_amd64, cp311-cp311-win_amd64, cp312-cp312-win_amd64, cp313-cp313-win_amd64, "
        "cp39-cp39-win_amd64, and no sdist (requirements.in line 2 asks for lockd-fx-winonly)"
    )


def test_only_binary_says_the_sdist_was_ruled_out(fixture_index: FixtureIndex) -> None:
    with IndexClient(timeout=10.0) as client, pytest.raises(NoMatchingDistribution) as raised:
        resolve(linux_request(fixture_index, "lockd-fx-sdist-static", only_binary=True), client)
    assert raised.value.message == (
        "lockd-fx-sdist-static 1.0 has only an sdist, and the request asks for wheels only "
        "(requirements.in line 1 asks for lockd-fx-sdist-static)"
    )


def test_a_third_package_that_rules_out_a_range_is_named(mutable_index: FixtureIndex) -> None:
    # uv's scenario `dependency-excludes-range-of-compatible-versions`: every version of `a` that
    # would take a `b` in the requested range is ruled out by `c`, which the conflict never shows.
    publish = mutable_index.publish
    publish("lockd-fx-ra", "1.0", requires_dist=("lockd-fx-rb==1.0",))
    for minor in ("2.0", "2.1"):
        publish("lockd-fx-ra", minor, requires_dist=("lockd-fx-rb==2.0",))
    publish("lockd-fx-ra", "3.0", requires_dist=("lockd-fx-rb==3.0",))
    for version in ("1.0", "2.0", "3.0"):
        publish("lockd-fx-rb", version)
    publish("lockd-fx-rc", "1.0", requires_dist=("lockd-fx-ra<2",))
    publish("lockd-fx-rc", "2.0", requires_dist=("lockd-fx-ra>=3",))
    text = "lockd-fx-ra\nlockd-fx-rb>=2,<3\nlockd-fx-rc"
    with IndexClient(timeout=10.0) as client, pytest.raises(ResolutionImpossible) as raised:
        resolve(linux_request(mutable_index, text), client)
    assert raised.value.message == (
        "lockd-fx-ra 1.0 requires lockd-fx-rb==1.0, but requirements.in line 2 asks for lockd-fx-rb<3,>=2; "
        "lockd-fx-rc 1.0 (requires lockd-fx-ra<2) and lockd-fx-rc 2.0 (requires lockd-fx-ra>=3) "
        "rule out lockd-fx-ra 2.1, 2.0"
    )


def test_an_sdist_needing_a_build_names_the_chain(mutable_index: FixtureIndex) -> None:
    mutable_index.publish("lockd-fx-legacy", "1.0", wheel_tags=(), sdist=True)
    mutable_index.publish("lockd-fx-user", "1.0", requires_dist=("lockd-fx-legacy",))
    with IndexClient(timeout=10.0) as client, pytest.raises(SdistNeedsBuild) as raised:
        resolve(linux_request(mutable_index, "lockd-fx-user"), client)
    assert raised.value.message == (
        "lockd-fx-legacy 1.0 is only available as a source distribution whose dependencies are known "
        "only after a build: its PKG-INFO is Metadata-Version 2.1 (static metadata needs ≥ 2.2) "
        "(requirements.in line 1 asks for lockd-fx-user → lockd-fx-user 1.0 requires lockd-fx-legacy)"
    )
