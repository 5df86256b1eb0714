"""`DistFile`: one installable file of a project as an index lists it, with its details read late.

A big PEP 691 page lists tens of thousands of files and a resolution picks a few of them: every
file needs its name, version, tags, requires-python and yank state to be ranked, but only the
files a lock keeps need their URL, hashes, size, upload time and metadata location. So a file
parsed from a JSON page carries the page's decoded entry (`PendingDetails`) and works those out
on first use, once; measured on the 303 pages of a cold pypi-300 resolution (206,000 entries),
that work was about half of the parse. A file built with its details (HTML pages, direct URLs,
tests) holds them from the start. Either way the value is the same: equality, hashing and
`repr` read every field, as the dataclass this replaced did, with `index_url` left out.

Immutable (a frozen msgspec struct): fields are set once, by the constructors, and the details
once, when first read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

import msgspec
from msgspec.structs import force_setattr
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.utils import NormalizedName
from packaging.version import Version

__all__ = ["Details", "DistFile", "PendingDetails", "RawDetails"]

# url, sha256, size, upload_time, metadata_url, metadata_sha256
Details = tuple[str, str | None, int | None, datetime | None, str | None, str | None]


# What the details are worked out from, as an index wrote them: the URL (maybe relative), the
# sha256, size and upload time as given, whether metadata is listed (True) or where (a URL), and
# its sha256. `details_from_raw` turns them into `Details`; for details already worked out, the
# raw form below gives them back unchanged (each rule leaves its own output as it is).
RawDetails = tuple[str, str | None, int | None, str | None, bool | str | None, str | None]


class PendingDetails(Protocol):
    """An index's entry for one file, decoded but not yet read for its details."""

    def details(self, page_url: str) -> Details: ...

    def raw(self) -> RawDetails:
        """The entry's details as written, without working them out."""
        ...

    def text_length(self) -> int:
        """About the characters of the URL and metadata URL, without working them out."""
        ...


class DistFile(msgspec.Struct, frozen=True, gc=False, eq=False, repr_omit_defaults=False):
    """One installable file of a project as an index lists it.

    Build one with `DistFile.of` (every field) or `DistFile.listed` (details read late). A
    msgspec struct: immutable, built in C (a tenth of the dataclass's construction, which was
    most of building a page from its cached form), and never tracked by the cycle collector
    (its fields are values that refer to no file).
    """

    name: NormalizedName
    version: Version
    filename: str
    kind: Literal["wheel", "sdist"]
    tags: frozenset[Tag]
    requires_python: SpecifierSet | None
    yanked: str | None  # None when not yanked; the reason (possibly "") when yanked
    index_url: str  # the page that listed it; not part of the value
    _details: Details | PendingDetails

    # Positional, as the dataclass this replaced: parsers build thousands a page, and a keyword
    # call per file was a tenth of a page's parse.
    @classmethod
    def of(  # noqa: PLR0917
        cls,
        name: NormalizedName,
        version: Version,
        filename: str,
        url: str,
        kind: Literal["wheel", "sdist"],
        tags: frozenset[Tag],
        sha256: str | None,
        size: int | None,
        requires_python: SpecifierSet | None,
        yanked: str | None,
        upload_time: datetime | None,
        metadata_url: str | None,  # PEP 658/714: where `<file>.metadata` lives, if advertised
        metadata_sha256: str | None,
        index_url: str = "",
    ) -> DistFile:
        """A file with every field given."""
        return cls(
            name,
            version,
            filename,
            kind,
            tags,
            requires_python,
            yanked,
            index_url,
            (url, sha256, size, upload_time, metadata_url, metadata_sha256),
        )

    @classmethod
    def listed(  # noqa: PLR0917 (once per file of a page, as above)
        cls,
        name: NormalizedName,
        version: Version,
        filename: str,
        kind: Literal["wheel", "sdist"],
        tags: frozenset[Tag],
        requires_python: SpecifierSet | None,
        yanked: str | None,
        page_url: str,
        pending: PendingDetails,
    ) -> DistFile:
        """A file of the page at `page_url` whose details `pending` works out when first read."""
        return cls(name, version, filename, kind, tags, requires_python, yanked, page_url, pending)

    def _read(self) -> Details:
        details = self._details
        if type(details) is tuple:
            return details
        # Two threads may both work it out: the same value, and either write is whole.
        known = details.details(self.index_url)  # type: ignore[union-attr]
        force_setattr(self, "_details", known)
        return known

    @property
    def url(self) -> str:
        return self._read()[0]

    @property
    def sha256(self) -> str | None:
        return self._read()[1]

    @property
    def size(self) -> int | None:
        return self._read()[2]

    @property
    def upload_time(self) -> datetime | None:
        return self._read()[3]

    @property
    def metadata_url(self) -> str | None:
        return self._read()[4]

    @property
    def metadata_sha256(self) -> str | None:
        return self._read()[5]

    def raw_details(self) -> RawDetails:
        """The details as an index would write them, without working out any still pending."""
        details = self._details
        if type(details) is not tuple:
            return details.raw()  # type: ignore[union-attr]
        url, sha256, size, upload_time, metadata_url, metadata_sha256 = details
        listed: bool | str | None = (
            True if metadata_url is not None and metadata_url == url + ".metadata" else metadata_url
        )
        return (
            url,
            sha256,
            size,
            None if upload_time is None else upload_time.isoformat(),
            listed,
            metadata_sha256,
        )

    def text_length(self) -> int:
        """Characters of the URL, file name and metadata URL: what a cache counts, read or not."""
        details = self._details
        if type(details) is tuple:
            return len(details[0]) + len(self.filename) + len(details[4] or "")
        return details.text_length() + len(self.filename)  # type: ignore[union-attr]

    @property
    def is_yanked(self) -> bool:
        return self.yanked is not None

    def replace(self, *, sha256: str | None) -> DistFile:
        """This file with another sha256 (None: to be hashed from the bytes)."""
        url, _, size, upload_time, metadata_url, metadata_sha256 = self._read()
        return msgspec.structs.replace(
            self, _details=(url, sha256, size, upload_time, metadata_url, metadata_sha256)
        )

    def _key(self) -> tuple[object, ...]:
        return (
            self.name,
            self.version,
            self.filename,
            self.kind,
            self.tags,
            self.requires_python,
            self.yanked,
            self._read(),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DistFile):
            return NotImplemented
        return self is other or self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        url, sha256, size, upload_time, metadata_url, metadata_sha256 = self._read()
        return (
            f"DistFile.of(name={self.name!r}, version={self.version!r}, filename={self.filename!r}, "
            f"url={url!r}, kind={self.kind!r}, tags={self.tags!r}, sha256={sha256!r}, size={size!r}, "
            f"requires_python={self.requires_python!r}, yanked={self.yanked!r}, "
            f"upload_time={upload_time!r}, metadata_url={metadata_url!r}, "
            f"metadata_sha256={metadata_sha256!r}, index_url={self.index_url!r})"
        )
