"""A page's releases on one target: which files install, grouped by version, built when read.

A finder (`lockd.resolver.finder`) gives each file of a page a verdict from the page's columns
(`lockd.simple.file_table`): the target installs it, only a machine at a newer libc / macOS
level does, or neither. `Releases` groups those verdicts by version with C-level passes (files
sorted by their version's index in the page's table, then bisected) and builds a version's
`Release`, and so its files, only when it is first read: pypi-200's pages list 167,858 files,
and a resolution reads a few thousand. Equal versions written apart ("1.0", "1.0.0") are one
release, as pip sees them.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from itertools import compress, repeat
from operator import attrgetter, is_
from typing import Any

import msgspec
from packaging.version import Version

from lockd.simple import DistFile, ProjectPage

__all__ = ["INSTALLS", "NEWER", "SKIP", "VERSION_ORDER", "Release", "Releases"]

# A file's verdict: the target does not take it, installs it, or only a machine at a newer
# level does.
SKIP, INSTALLS, NEWER = 0, 1, 2

# Versions sorted by the key their comparisons use (packaging's `Version._key`), compared in C:
# sorting a page's 21,000 versions by `__lt__`, a Python call per comparison, was a quarter of
# building a finder. Without that key, by `__lt__` itself.
VERSION_ORDER: Callable[[Version], Any] | None = (
    attrgetter("_key") if isinstance(getattr(Version, "_key", None), property) else None
)


class Release(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """Files of one version that install on the target, split by yank state.

    A msgspec struct, built in C: a finder made one per version of its page (21,000 for
    bench/cases/pypi-200's pages) before they were built when read (`Releases.get`).
    """

    version: Version
    files: tuple[DistFile, ...]  # not yanked, best first
    yanked: tuple[DistFile, ...]  # yanked, best first
    newer: tuple[DistFile, ...] = ()  # wheels only a machine at a newer level installs, not yanked
    newer_yanked: tuple[DistFile, ...] = ()


class Releases:
    """The releases of `page` whose files have the verdicts `per_file` (one per file, in the
    page's order). Immutable once made, but for the releases it builds and keeps.

    `file_order` and `newer_order` sort a release's files and its newer machines' wheels best
    first; both break ties by file name, so the order never depends on the page's.
    """

    def __init__(
        self,
        page: ProjectPage,
        per_file: list[int],
        *,
        file_order: Callable[[DistFile], Any],
        newer_order: Callable[[DistFile], Any],
    ) -> None:
        self._table = table = page.table
        self._file_order = file_order
        self._newer_order = newer_order
        every = range(len(per_file))
        installs = list(compress(every, map(INSTALLS.__eq__, per_file)))
        newer = list(compress(every, map(NEWER.__eq__, per_file)))
        version_ix = table.version_ix
        # A stable sort: a version's files stay in the page's order.
        self._installs = sorted(installs, key=version_ix.__getitem__)
        self._install_keys = list(map(version_ix.__getitem__, self._installs))
        self._newer = sorted(newer, key=version_ix.__getitem__)
        self._newer_keys = list(map(version_ix.__getitem__, self._newer))
        versions = table.versions
        first = list(dict.fromkeys(map(version_ix.__getitem__, installs)))  # first appearance first
        # Each version by the index of its first appearance; most pages write no version twice.
        self._ix: dict[Version, int] = dict(zip(map(versions.__getitem__, first), first, strict=True))
        self._merged: dict[Version, list[int]] = {}
        if len(self._ix) != len(first):
            for i in first:
                self._merged.setdefault(versions[i], []).append(i)
        self._newer_ix: dict[Version, list[int]] = {}
        for i in dict.fromkeys(self._newer_keys):
            self._newer_ix.setdefault(versions[i], []).append(i)
        unyanked = set(map(version_ix.__getitem__, compress(installs, map(is_, map(table.yanks.__getitem__, installs), repeat(None)))))  # fmt: skip
        self.newest_first: list[Version] = sorted(self._ix, key=VERSION_ORDER, reverse=True)
        # Versions with a file not yanked, newest first; those with yanked files only.
        self.usable_first: list[Version] = self.newest_first
        self.yanked_only: list[Version] = []
        self.with_files: set[Version] = set()  # filled only when some version has yanked files only
        if len(unyanked) != len(first):
            self.with_files = set(map(versions.__getitem__, unyanked))
            self.usable_first = [v for v in self.newest_first if v in self.with_files]
            self.yanked_only = [v for v in self.newest_first if v not in self.with_files]
        self._built: dict[Version, Release] = {}

    @property
    def versions(self) -> tuple[Version, ...]:
        """The versions with a file that installs, in the page's order."""
        return tuple(self._ix)

    def get(self, version: Version) -> Release | None:
        """`version`'s release (None: no file of it installs), built once."""
        known = self._built.get(version)
        if known is None:
            first = self._ix.get(version)
            if first is None:
                return None
            indexes = self._merged.get(version, [first]) if self._merged else [first]
            # setdefault: two threads building the same release agree on one of them.
            known = self._built.setdefault(version, self._release(version, indexes))
        return known

    def _release(self, version: Version, indexes: list[int]) -> Release:
        table = self._table
        files = [table.file(i) for i in _files_at(self._installs, self._install_keys, indexes)]
        later_at = self._newer_ix.get(version)
        later = (
            [table.file(i) for i in _files_at(self._newer, self._newer_keys, later_at)] if later_at else []
        )
        if len(files) == 1 and not later:  # most versions of a big page: no sorting, no splits
            one = (files[0],)
            if files[0].yanked is None:
                return Release(version=version, files=one, yanked=())
            return Release(version=version, files=(), yanked=one)
        ordered = files if len(files) == 1 else sorted(files, key=self._file_order)
        later = sorted(later, key=self._newer_order)
        return Release(
            version=version,
            files=tuple(f for f in ordered if f.yanked is None),
            yanked=tuple(f for f in ordered if f.yanked is not None),
            newer=tuple(f for f in later if f.yanked is None),
            newer_yanked=tuple(f for f in later if f.yanked is not None),
        )


def _files_at(files: list[int], keys: list[int], indexes: list[int]) -> list[int]:
    """The files (indexes, `files` sorted by `keys`) of each version index in `indexes`."""
    found: list[int] = []
    for i in indexes:
        found += files[bisect_left(keys, i) : bisect_right(keys, i)]
    return found
