"""The values resolvelib moves around: identifiers, requirements and candidates.

resolvelib groups requirements and candidates by an identifier. Here it is a typed tuple:
`Identity(name, extra)` for a project or one of its extras (`name[extra]` depends on
`name==same version`, as in pip); `PYTHON` for the pseudo-project that carries each
candidate's `Requires-Python`; `InvalidMetadataIdentity(project)` for the pseudo-project a
version depends on when its metadata is unparsable (`InvalidMetadata`) or cannot be had
without a build (`MetadataUnavailable`), which never has a candidate: resolvelib rules such a
version out and tries the next one, as pip and uv do. The three have
different lengths, so tuples of one kind never compare equal to another's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import msgspec
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName
from packaging.version import Version

from lockd.inputs import InputRequirement
from lockd.simple import DistFile

__all__ = [
    "PYTHON",
    "AnyCandidate",
    "AnyRequirement",
    "CandidateFiles",
    "Identifier",
    "Identity",
    "InvalidMetadata",
    "InvalidMetadataIdentity",
    "MetadataUnavailable",
    "ProjectCandidate",
    "ProjectRequirement",
    "PythonCandidate",
    "PythonIdentity",
    "PythonRequirement",
]


class Identity(NamedTuple):
    """A project, or one extra of it."""

    name: NormalizedName
    extra: NormalizedName | None

    def __str__(self) -> str:
        return f"{self.name}[{self.extra}]" if self.extra else self.name


class PythonIdentity(NamedTuple):
    """The pseudo-project `<python>`: the target's interpreter, one candidate only."""

    def __str__(self) -> str:
        return "<python>"


PYTHON = PythonIdentity()


class InvalidMetadataIdentity(NamedTuple):
    """The pseudo-project a version with unusable metadata depends on; it has no candidate."""

    project: NormalizedName

    def __str__(self) -> str:
        return f"<invalid-metadata>{self.project}"


Identifier = Identity | PythonIdentity | InvalidMetadataIdentity


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectRequirement:
    """One edge of the graph: `name[extra]` with a specifier, and who asked for it."""

    name: NormalizedName
    extra: NormalizedName | None
    specifier: SpecifierSet
    source: InputRequirement | None = field(default=None, compare=False)
    url: str | None = None  # a direct wheel URL (`name @ https://…`), from the request only

    @property
    def identity(self) -> Identity:
        return Identity(self.name, self.extra)

    def asked_by(self) -> str:
        """The request line that asked for this, or the requirement itself, in words."""
        if self.source is not None:
            return self.source.describe()
        return f"asks for {self}"

    def __str__(self) -> str:
        extra = f"[{self.extra}]" if self.extra else ""
        if self.url is not None:
            return f"{self.name}{extra} @ {self.url}"
        return f"{self.name}{extra}{self.specifier}"


_Files = tuple[DistFile, ...]


class CandidateFiles:
    """A candidate's files, best first, and the wheels only newer machines install: given, or
    worked out when first read.

    A finder offers every version a specifier admits (hundreds, for a bare name) and the
    resolver reads the files of the few it tries, so a finder's candidates read theirs late
    (`lockd.resolver.finder`). Equal when the files are.
    """

    __slots__ = ("_read", "_work")

    def __init__(
        self,
        files: _Files = (),
        newer: _Files = (),
        *,
        work: Callable[[], tuple[_Files, _Files]] | None = None,
    ) -> None:
        self._read: tuple[_Files, _Files] | None = None if work is not None else (files, newer)
        self._work = work

    def read(self) -> tuple[_Files, _Files]:
        read = self._read
        if read is None:
            assert self._work is not None
            # Two threads may both work it out: the same files, from the finder's one release.
            read = self._read = self._work()
        return read

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CandidateFiles):
            return NotImplemented
        return self.read() == other.read()

    def __hash__(self) -> int:
        return hash(self.read())

    def __repr__(self) -> str:
        files, newer = self.read()
        return f"CandidateFiles(files={files!r}, newer={newer!r})"


class ProjectCandidate(msgspec.Struct, frozen=True, kw_only=True):
    """One version of a project (or of one of its extras) with the files that install on the target.

    A msgspec struct, built in C: a finder makes one per version a specifier admits (18,600 for
    bench/cases/pypi-200's pages, all versions admitted), and building the frozen dataclass it
    replaces took a third of that time.
    """

    name: NormalizedName
    version: Version
    extra: NormalizedName | None
    found: CandidateFiles

    @classmethod
    def with_files(
        cls,
        *,
        name: NormalizedName,
        version: Version,
        extra: NormalizedName | None,
        files: _Files,
        newer: _Files = (),
    ) -> ProjectCandidate:
        return cls(name=name, version=version, extra=extra, found=CandidateFiles(files, newer))

    @property
    def files(self) -> _Files:
        """Best first: wheels by tag rank, then the sdist."""
        return self.found.read()[0]

    @property
    def newer(self) -> _Files:
        """Wheels only machines of the target at a newer libc / macOS level install, best first."""
        return self.found.read()[1]

    @property
    def identity(self) -> Identity:
        return Identity(self.name, self.extra)

    @property
    def metadata_file(self) -> DistFile:
        """The file whose metadata describes this version: a wheel wherever one exists.

        A version whose only file at the target's level is an sdist often has wheels for newer
        machines; their METADATA is the version's, and reading it needs no sdist rules.
        """
        files, newer = self.found.read()
        if files[0].kind == "wheel" or not newer:
            return files[0]
        return newer[0]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True, slots=True, kw_only=True)
class PythonRequirement:
    """A candidate's `Requires-Python`, as a dependency on the pseudo-project `<python>`."""

    specifier: SpecifierSet

    @property
    def identity(self) -> PythonIdentity:
        return PYTHON

    def __str__(self) -> str:
        return f"Python{self.specifier}"


@dataclass(frozen=True, slots=True, kw_only=True)
class PythonCandidate:
    """The target's Python version: the one candidate of `<python>`."""

    version: Version

    @property
    def identity(self) -> PythonIdentity:
        return PYTHON


@dataclass(frozen=True, slots=True, kw_only=True)
class InvalidMetadata:
    """Stands for a version whose metadata pip would refuse: it has no candidate, ever.

    pip parses every `Requires-Dist` of a candidate's metadata and discards the version when
    one does not parse (`MetadataInvalid`, "Ignoring version X of P since it has invalid
    metadata"); celery 4.x, for one, says `pytz (>dev)`. So is a version whose metadata the
    index client refused (`UnusableMetadata`: it names another file, or is over a limit), as
    pip discards a file whose metadata is inconsistent with its name. Depending on this pseudo-project makes
    resolvelib reject the version and try the next one, as pip does, instead of resolving it
    with that dependency silently missing.
    """

    name: NormalizedName
    version: Version
    # The Requires-Dist line that does not parse; None when the metadata as a whole is unusable.
    line: str | None
    reason: str
    # The problem: a `LockdError` code when the index client refused the file.
    code: str = "invalid-metadata"

    @property
    def identity(self) -> InvalidMetadataIdentity:
        return InvalidMetadataIdentity(self.name)

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.name} {self.version} has unusable metadata: {self.reason}"
        return f"{self.name} {self.version} has invalid metadata: Requires-Dist {self.line!r} ({self.reason})"


@dataclass(frozen=True, slots=True, kw_only=True)
class MetadataUnavailable:
    """Stands for a version whose dependencies cannot be known without running its build.

    An sdist without static metadata (PEP 643), no `requires.txt` and no operator override:
    the version is ruled out with `reason` and the resolver tries the next, as uv does with
    `--no-build`. Only when nothing is left does it become `SdistNeedsBuild`.
    """

    name: NormalizedName
    version: Version
    reason: str  # `SdistNeedsBuild.message`
    hint: str | None = None

    @property
    def identity(self) -> InvalidMetadataIdentity:
        return InvalidMetadataIdentity(self.name)

    def __str__(self) -> str:
        return self.reason


AnyRequirement = ProjectRequirement | PythonRequirement | InvalidMetadata | MetadataUnavailable
AnyCandidate = ProjectCandidate | PythonCandidate
