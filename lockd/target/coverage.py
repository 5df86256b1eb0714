"""Which wheels any target lockd can lock for could install: the first filter on index pages.

Two thirds of the files on big PyPI pages (grpcio, numpy) are for Pythons or platforms outside
the table (cp27, ppc64le, win32): no lock can ever pin them, so `lockd.simple` drops them as
it parses. A wheel qualifies when one of its tags is one some target accepts: every platform at
the newest level of each of its level kinds (the newest level's tags include every older
one's), for every supported Python, with and without free threading.

That set has some 16,000 tags and took 0.6 s of CPU to list, paid by the first page a process
parsed (inside its first resolution's budget). It is a product, so it is kept as its factors:
the tags a CPython accepts are the same (interpreter, ABI) pairs on every platform it runs on,
plus a few platform-independent `any` tags.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from packaging.tags import Tag
from packaging.version import Version

from lockd.target.platforms import PLATFORMS, Level
from lockd.target.python import FREE_THREADED_MIN, supported_minors
from lockd.target.target import python_tags

__all__ = ["lockable_anywhere"]

# Stands in for a platform while the (interpreter, ABI) pairs are listed: a tag no wheel has.
_ANY_PLATFORM = "lockd-every-platform"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Coverage:
    """Every tag some target accepts, as (interpreter, ABI) pairs × platforms, plus exact tags."""

    pairs: frozenset[tuple[str, str]]
    platforms: frozenset[str]
    exact: frozenset[Tag]

    def accepts(self, tag: Tag) -> bool:
        if tag in self.exact:
            return True
        return tag.platform in self.platforms and (tag.interpreter, tag.abi) in self.pairs


_lock = threading.Lock()
_value: list[_Coverage] = []


def _build() -> _Coverage:
    platforms: set[str] = set()
    for platform in PLATFORMS.values():
        newest: list[Level | None] = [levels.newest for levels in platform.levels]
        for level in newest or [None]:
            platforms.update(platform.platform_tags_at(level))
    pairs: set[tuple[str, str]] = set()
    exact: set[Tag] = set()
    for major, minor in supported_minors():
        python = Version(f"{major}.{minor}.0")
        builds = [False, True] if (major, minor) >= FREE_THREADED_MIN else [False]
        for free_threaded in builds:
            for tag in python_tags(python, free_threaded, [_ANY_PLATFORM]):
                if tag.platform == _ANY_PLATFORM:
                    pairs.add((tag.interpreter, tag.abi))
                else:
                    exact.add(tag)  # `any`: the same on every platform
    return _Coverage(pairs=frozenset(pairs), platforms=frozenset(platforms), exact=frozenset(exact))


def _coverage() -> _Coverage:
    # Built once, under a lock: every fetch thread asks at once when the first pages arrive.
    if not _value:
        with _lock:
            if not _value:
                _value.append(_build())
    return _value[0]


def lockable_anywhere(tags: frozenset[Tag]) -> bool:
    """Whether a wheel with these tags installs on at least one target lockd can lock for."""
    coverage = _coverage()
    return any(coverage.accepts(tag) for tag in tags)
