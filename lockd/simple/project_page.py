"""`ProjectPage`: a project's files on one index, as lockd keeps them.

A page parsed from its body holds its files; a page read back from its form holds a
`FileTable` and builds its files when first read, since a resolution judges most of a big
page's files by the table's columns and reads a few (`lockd.simple.file_table`).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, NoReturn

from packaging.utils import NormalizedName
from packaging.version import Version

from lockd.simple.dist_file import DistFile
from lockd.simple.file_table import FileTable

__all__ = ["ProjectPage"]


class ProjectPage:
    """A project's files that some lockable target can install (wheels), or build from (sdists).

    Wheels that install on no target in `lockd.target`'s table are not kept as files: their
    versions are listed in `foreign_versions`, so an error can still say why they do not fit.

    A value, compared and hashed by name, index URL, files and foreign versions, and immutable:
    a page made from a table fills in its files once, and `derived` is not part of the value.
    """

    __slots__ = ("_files", "_table", "derived", "foreign_versions", "index_url", "name")

    name: NormalizedName
    index_url: str
    foreign_versions: frozenset[Version]
    # What is derived from the page for one target (`lockd.resolver.finder.Finder.of`), kept
    # with the page so it lives exactly as long as the page's cache entry.
    derived: dict[Hashable, object]
    _files: tuple[DistFile, ...] | None  # None until a page made from a table reads its files
    _table: FileTable | None  # None until a page made from files is first read as columns

    def __init__(
        self,
        name: NormalizedName,
        index_url: str,
        files: tuple[DistFile, ...],
        foreign_versions: frozenset[Version] = frozenset(),
    ) -> None:
        _set = object.__setattr__
        _set(self, "name", name)
        _set(self, "index_url", index_url)
        _set(self, "foreign_versions", foreign_versions)
        _set(self, "derived", {})
        _set(self, "_files", files)
        _set(self, "_table", None)

    @classmethod
    def of_table(
        cls,
        name: NormalizedName,
        index_url: str,
        table: FileTable,
        foreign_versions: frozenset[Version] = frozenset(),
    ) -> ProjectPage:
        """A page whose files `table` builds when they are first read."""
        page = cls(name, index_url, (), foreign_versions)
        object.__setattr__(page, "_files", None)
        object.__setattr__(page, "_table", table)
        return page

    @property
    def files(self) -> tuple[DistFile, ...]:
        files = self._files
        if files is None:
            files = self._table.files()  # type: ignore[union-attr]  # one of the two is set
            object.__setattr__(self, "_files", files)
        return files

    @property
    def table(self) -> FileTable:
        """The files as columns (`FileTable`), made from the files once if the page has none."""
        table = self._table
        if table is None:
            # Two threads may both make one: equal tables of the same file objects.
            table = FileTable.of_files(self._files)  # type: ignore[arg-type]  # set when no table is
            object.__setattr__(self, "_table", table)
        return table

    @property
    def file_count(self) -> int:
        files = self._files
        return len(files) if files is not None else len(self._table)  # type: ignore[arg-type]

    @property
    def versions(self) -> frozenset[Version]:
        files = self._files
        if files is None:
            return frozenset(self.table.versions) | self.foreign_versions
        return frozenset(f.version for f in files) | self.foreign_versions

    def _value(self) -> tuple[object, ...]:
        return (self.name, self.index_url, self.files, self.foreign_versions)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProjectPage):
            return NotImplemented
        return self._value() == other._value()

    def __hash__(self) -> int:
        return hash(self._value())

    def __repr__(self) -> str:
        return (
            f"ProjectPage(name={self.name!r}, index_url={self.index_url!r}, files={self.files!r}, "
            f"foreign_versions={self.foreign_versions!r})"
        )

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError(f"ProjectPage is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"ProjectPage is immutable: cannot delete {name!r}")
