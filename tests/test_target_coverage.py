"""`lockd.target.coverage`: the factored tag set is exactly the tags some target accepts."""

from __future__ import annotations

import time

from packaging.tags import Tag, parse_tag
from packaging.version import Version

from lockd.target import coverage
from lockd.target.platforms import PLATFORMS, Level
from lockd.target.python import FREE_THREADED_MIN, supported_minors
from lockd.target.target import python_tags


def _every_tag_listed() -> frozenset[Tag]:
    """The set as the definition states it, every tag listed: what the factors must equal."""
    tags: set[Tag] = set()
    for platform in PLATFORMS.values():
        newest: list[Level | None] = [levels.newest for levels in platform.levels]
        for level in newest or [None]:
            platform_tags = platform.platform_tags_at(level)
            for major, minor in supported_minors():
                python = Version(f"{major}.{minor}.0")
                tags.update(python_tags(python, False, platform_tags))
                if (major, minor) >= FREE_THREADED_MIN:
                    tags.update(python_tags(python, True, platform_tags))
    return frozenset(tags)


def test_factors_accept_exactly_the_listed_tags() -> None:
    listed = _every_tag_listed()
    factored = coverage._build()
    products = {Tag(i, a, p) for i, a in factored.pairs for p in factored.platforms}
    assert products | factored.exact == listed
    assert all(factored.accepts(tag) for tag in listed)


def test_wheels_no_target_installs_are_not_lockable() -> None:
    assert not coverage.lockable_anywhere(frozenset(parse_tag("cp27-cp27mu-manylinux1_x86_64")))
    assert not coverage.lockable_anywhere(frozenset(parse_tag("cp311-cp311-linux_ppc64le")))
    assert coverage.lockable_anywhere(frozenset(parse_tag("cp311-cp311-manylinux_2_17_x86_64")))
    assert coverage.lockable_anywhere(frozenset(parse_tag("py3-none-any")))
    assert coverage.lockable_anywhere(frozenset(parse_tag("cp39-abi3-macosx_11_0_arm64")))


def test_built_within_a_first_resolutions_budget() -> None:
    # It used to take 0.6 s of CPU inside the first resolution a process ran, which then timed out.
    started = time.perf_counter()
    coverage._build()
    assert time.perf_counter() - started < 0.1
