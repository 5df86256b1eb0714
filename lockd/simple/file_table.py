"""A page's files column by column: what a finder judges them by, without a `DistFile` each.

A big page lists thousands of files, and a resolution reaches the files of a few of its
versions: pypi-200's 205 pages list 167,858 files, 2.5% of them of a version at or above the
one pinned. The table holds each distinct version, tag set and requires-python once and each
file's index into them, so a finder (`lockd.resolver.finder`) judges the few distinct
(requires-python, tags, kind) combinations and groups files by version with C-level passes
over the columns, and builds a file (`FileTable.file`) only for the releases it is asked for.

A page read back from its form (`lockd.simple.page_form`) comes as a table, its files built
when first read; a page parsed from its body has files, and its table is made from them
(`FileTable.of_files`). Either way one file is one object: `file(i)` and `files()[i]` agree.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Literal, TypeVar, cast

from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.version import Version

from lockd.simple.dist_file import DistFile

__all__ = ["KINDS", "KIND_INDEX", "FileTable", "distinct"]

Kind = Literal["wheel", "sdist"]
KINDS: tuple[Kind, Kind] = ("wheel", "sdist")  # a file's kind, by its index in the table
KIND_INDEX = {kind: i for i, kind in enumerate(KINDS)}
_T = TypeVar("_T")


class FileTable:
    """One item per file in each index column, in the page's order; values in distinct tables.

    `require_ix` holds None for a file without requires-python. Immutable once made, but for
    the files it builds and keeps (thread-safe: two threads asking for one file get one object).
    """

    __slots__ = (
        "_all",
        "_build_all",
        "_build_one",
        "_built",
        "_lock",
        "kinds",
        "require_ix",
        "requires",
        "tag_ix",
        "tag_sets",
        "version_ix",
        "versions",
        "yanks",
    )

    def __init__(
        self,
        *,
        versions: Sequence[Version],
        version_ix: Sequence[int],
        tag_sets: Sequence[frozenset[Tag]],
        tag_ix: Sequence[int],
        requires: Sequence[SpecifierSet | None],
        require_ix: Sequence[int | None],
        kinds: Sequence[int],
        yanks: Sequence[str | None],
        build_all: Callable[[], tuple[DistFile, ...]],
        build_one: Callable[[int], DistFile],
    ) -> None:
        self.versions = versions
        self.version_ix = version_ix
        self.tag_sets = tag_sets
        self.tag_ix = tag_ix
        self.requires = requires
        self.require_ix = require_ix
        self.kinds = kinds
        self.yanks = yanks
        self._build_all = build_all
        self._build_one = build_one
        self._all: tuple[DistFile, ...] | None = None
        self._built: dict[int, DistFile] = {}
        self._lock = threading.Lock()

    @classmethod
    def of_files(cls, files: tuple[DistFile, ...]) -> FileTable:
        """The table of files already built (a page parsed from its body)."""
        fields = tuple(zip(*map(_TABLE_FIELDS, files), strict=True)) if files else ((),) * 5
        versions, tags, requires, kinds, yanks = cast(_FileFields, fields)
        version_table, version_ix = distinct(versions)
        tag_table, tag_ix = distinct(tags)
        require_table, require_ix = distinct(requires)
        table = cls(
            versions=version_table,
            # A file always has a version and a tag set (empty for an sdist): no None among them.
            version_ix=cast(tuple[int, ...], version_ix),
            tag_sets=tag_table,
            tag_ix=cast(tuple[int, ...], tag_ix),
            requires=require_table,
            require_ix=require_ix,
            kinds=tuple(map(KIND_INDEX.__getitem__, kinds)),
            yanks=yanks,
            build_all=lambda: files,
            build_one=files.__getitem__,
        )
        table._all = files
        return table

    def __len__(self) -> int:
        return len(self.version_ix)

    @property
    def files_built(self) -> int:
        """How many of the files exist as objects (all, once `files` has been read)."""
        everything = self._all
        return len(everything) if everything is not None else len(self._built)

    def file(self, i: int) -> DistFile:
        """File `i`, built on first use; the same object `files()[i]` is."""
        everything = self._all
        if everything is not None:
            return everything[i]
        with self._lock:
            if self._all is not None:
                return self._all[i]
            built = self._built.get(i)
            if built is None:
                built = self._built[i] = self._build_one(i)
            return built

    def files(self) -> tuple[DistFile, ...]:
        """Every file, in the page's order, built once (those `file` built kept as they are)."""
        everything = self._all
        if everything is not None:
            return everything
        with self._lock:
            if self._all is None:
                made = self._build_all()
                if self._built:
                    merged = list(made)
                    for i, file in self._built.items():
                        merged[i] = file
                    made = tuple(merged)
                self._all = made
                self._built = {}
            return self._all


_TABLE_FIELDS = attrgetter("version", "tags", "requires_python", "kind", "yanked")
_FileFields = tuple[
    tuple[Version, ...],
    tuple[frozenset[Tag], ...],
    tuple[SpecifierSet | None, ...],
    tuple[Kind, ...],
    tuple[str | None, ...],
]


def distinct(values: Sequence[_T | None]) -> tuple[list[_T], tuple[int | None, ...]]:
    """Each distinct object in `values` (by identity, None left out) in order of first appearance,
    and each value's index in that table (None for None).

    By identity: parsers share one value among the files that have it, and hashing a
    `SpecifierSet` canonicalises every specifier in it.
    """
    by_id = dict(zip(map(id, values), values, strict=True))  # the first appearance keeps its place
    by_id.pop(id(None), None)
    index: dict[int, int | None] = {key: i for i, key in enumerate(by_id)}
    index[id(None)] = None
    return list(by_id.values()), tuple(map(index.__getitem__, map(id, values)))  # type: ignore[arg-type]
