"""Which wheels any target lockd can lock for could install: the first filter on index pages.

Two thirds of the files on big PyPI pages (grpcio, numpy) are for Pythons or platforms outside
the table (cp27, ppc64le, win32): no lock can ever pin them, so `lockd.simple` drops them as
it parses. The tag set is every platform at the newest level of each of its level kinds (the
newest level's tags include every older one's), for every supported Python, with and without
free threading.
"""

from __future__ import annotations

import threading

from packaging.tags import Tag
from packaging.version import Version

from lockd.target.platforms import PLATFORMS, Level
from lockd.target.python import FREE_THREADED_MIN, supported_minors
from lockd.target.target import python_tags

__all__ = ["lockable_anywhere"]

_lock = threading.Lock()
_value: list[frozenset[Tag]] = []


def _every_target_tag() -> frozenset[Tag]:
    # Built once, under a lock: every fetch thread asks at once when the first pages arrive.
    if not _value:
        with _lock:
            if not _value:
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
                _value.append(frozenset(tags))
    return _value[0]


def lockable_anywhere(tags: frozenset[Tag]) -> bool:
    """Whether a wheel with these tags installs on at least one target lockd can lock for."""
    return not tags.isdisjoint(_every_target_tag())
