"""What a candidate's metadata says on the target, read once per file and extra.

The candidate's best file gives its core metadata through `IndexSource.fetch_metadata` (a
wheel's METADATA, or what `lockd.sdist_sources` found for an sdist). When an sdist has none
without a build, the operator's override (`LockOptions.metadata_overrides`) is used, and
failing that the version depends on `MetadataUnavailable`, so the resolver rules it out
instead of stopping. Where each file's metadata came from is kept for the lock.

Parsing is the costly part once metadata is cached (Requires-Dist lines through packaging's
parser, markers evaluated per line), so parsed dependencies are also kept for the process,
keyed by the sha256 of the metadata bytes, the candidate, the extra and the target's marker
environment (`ParsedCache`): the same bytes on the same target parse the same way, whichever
file, index or resolution they came from. What a file's metadata parsed to is also kept by the
file object itself (`ParsedCache.of_file`): a page's files are the same objects for as long as
the client keeps the page, and a file's metadata is bound to it, so a later resolution that
meets the file again neither looks its metadata up nor hashes it (fully cached pypi-300: the
two were a seventh of a resolution).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from typing import Protocol

from packaging.utils import NormalizedName
from packaging.version import Version

from lockd.egg_info import core_metadata
from lockd.errors import SdistNeedsBuild, UnusableMetadata
from lockd.memory_cache import BoundedCache
from lockd.metadata_overrides import MetadataOverride, find_override
from lockd.resolver.candidates import (
    AnyRequirement,
    InvalidMetadata,
    MetadataUnavailable,
    ProjectCandidate,
)
from lockd.resolver.dependencies import ParsedMetadata, parse_dependencies
from lockd.sdist_sources import SOURCE_HEADER, metadata_source
from lockd.simple import DistFile
from lockd.target import Target

__all__ = ["PARSED_ENTRIES", "MetadataFetcher", "MetadataReader", "ParsedCache", "ParsedKey"]

# A parsed entry is a few hundred bytes (its requirements share the parsed specifiers): this
# many is well over the distinct (metadata, extra) pairs of hundreds of resolutions.
PARSED_ENTRIES = 32_768
_DIGESTED_BYTES = 16 * 1024 * 1024

# (sha256 of the metadata, project, version, extra, the target's marker environment as items)
_Environment = tuple[tuple[str, str], ...]
ParsedKey = tuple[str, NormalizedName, Version, NormalizedName | None, _Environment]
# Requires-Python as written, and the dependencies as an immutable tuple (copied out as a list).
_Parsed = tuple[str | None, tuple[AnyRequirement, ...]]
# (the file's id, project, version, extra, marker environment): see `ParsedCache.of_file`.
_FileKey = tuple[int, NormalizedName, Version, NormalizedName | None, _Environment]
# The file (held, so its id stays its own), what its metadata parsed to, and where that came from.
_FileEntry = tuple[DistFile, _Parsed, str | None]


class ParsedCache:
    """Parsed dependencies by `ParsedKey`, for every resolution in the process. Thread-safe."""

    def __init__(self, max_entries: int = PARSED_ENTRIES) -> None:
        self._cache: BoundedCache[ParsedKey, _Parsed] = BoundedCache(max_entries)
        # The sha256 of each metadata object seen, by its id: the index client's caches hand the
        # same bytes object to every resolution, and hashing it again for each was ~5% of a
        # fully cached 300-pin resolution. The entry holds the object (so its id is its own),
        # mostly one the client's caches hold too; bounded in those bytes all the same.
        self._digests: BoundedCache[int, tuple[bytes, str]] = BoundedCache(
            _DIGESTED_BYTES, sizeof=lambda entry: len(entry[0])
        )
        self._files: BoundedCache[_FileKey, _FileEntry] = BoundedCache(max_entries)

    def parse(
        self,
        target: Target,
        environment: tuple[tuple[str, str], ...],
        candidate: ProjectCandidate,
        raw: bytes,
        extra: NormalizedName | None,
    ) -> ParsedMetadata:
        """`parse_dependencies(target, candidate, raw, extra)`, parsed once per key."""
        key = (self._digest(raw), candidate.name, candidate.version, extra, environment)
        found = self._cache.get(key)
        if found is None:
            requires_python, requirements = parse_dependencies(target, candidate, raw, extra)
            found = (requires_python, tuple(requirements))
            self._cache.put(key, found)
        return found[0], list(found[1])

    def of_file(
        self,
        file: DistFile,
        candidate: ProjectCandidate,
        extra: NormalizedName | None,
        environment: _Environment,
    ) -> tuple[ParsedMetadata, str | None] | None:
        """What `file`'s metadata parsed to for this candidate, extra and environment, and its source.

        Kept only for metadata read from the file's index (`remember_file`), never for an
        operator's override of an sdist that needs a build: that answer is the request's.
        """
        found = self._files.get((id(file), candidate.name, candidate.version, extra, environment))
        if found is None or found[0] is not file:
            return None
        return (found[1][0], list(found[1][1])), found[2]

    def remember_file(
        self,
        file: DistFile,
        candidate: ProjectCandidate,
        extra: NormalizedName | None,
        environment: _Environment,
        *,
        parsed: ParsedMetadata,
        source: str | None,
    ) -> None:
        # A file read from a page form points at the whole page's columns until its details are
        # first read (`DistFile.listed`); reading its metadata read them, and reading them here
        # again makes sure an entry holds the file alone, never its page.
        if file.url:
            key = (id(file), candidate.name, candidate.version, extra, environment)
            self._files.put(key, (file, (parsed[0], tuple(parsed[1])), source))

    def _digest(self, raw: bytes) -> str:
        known = self._digests.get(id(raw))
        if known is not None and known[0] is raw:
            return known[1]
        digest = hashlib.sha256(raw).hexdigest()
        self._digests.put(id(raw), (raw, digest))
        return digest


_PARSED = ParsedCache()


def environment_key(target: Target) -> tuple[tuple[str, str], ...]:
    """What of the target a parse depends on: its marker environment, as a hashable value."""
    return tuple(sorted(target.marker_environment.items()))


class MetadataFetcher(Protocol):
    def fetch_metadata(self, file: DistFile) -> bytes: ...


class MetadataReader:
    """Parsed metadata by (file URL, extra), shared by the prefetch walk and the resolver. Thread-safe."""

    def __init__(
        self,
        index: MetadataFetcher,
        target: Target,
        overrides: Sequence[MetadataOverride],
        *,
        parsed: ParsedCache | None = None,
    ) -> None:
        self._index = index
        self._target = target
        self._environment = environment_key(target)
        self._parsed_cache = _PARSED if parsed is None else parsed
        self._overrides = overrides
        self._lock = threading.Lock()
        self._parsed: dict[tuple[str, NormalizedName | None], ParsedMetadata] = {}
        self._sources: dict[str, str | None] = {}

    def source_of(self, candidate: ProjectCandidate) -> str | None:
        """Where the dependencies of `candidate` came from: None for a wheel (`lockd.sdist_sources`)."""
        with self._lock:
            return self._sources.get(candidate.metadata_file.url)

    def parse(self, candidate: ProjectCandidate, extra: NormalizedName | None) -> ParsedMetadata:
        """(Requires-Python text, dependencies on the target) of the candidate's metadata file."""
        file = candidate.metadata_file
        with self._lock:
            parsed = self._parsed.get((file.url, extra))
        if parsed is not None:
            return parsed
        known = self._parsed_cache.of_file(file, candidate, extra, self._environment)
        if known is not None:
            return self._keep(file, extra, *known)
        try:
            raw = self._index.fetch_metadata(file)
        except SdistNeedsBuild as exc:
            overridden = self._overridden(candidate)
            if overridden is None:
                unavailable = MetadataUnavailable(
                    name=candidate.name, version=candidate.version, reason=exc.message, hint=exc.hint
                )
                return None, [unavailable]
            return self._keep(
                file, extra, self._parse(candidate, overridden, extra), metadata_source(file.kind, overridden)
            )
        except UnusableMetadata as exc:
            # The file's metadata names another file or is over a limit: this version is out.
            unusable = InvalidMetadata(
                name=candidate.name, version=candidate.version, line=None, reason=exc.message, code=exc.code
            )
            return None, [unusable]
        parsed = self._parse(candidate, raw, extra)
        source = metadata_source(file.kind, raw)
        self._parsed_cache.remember_file(
            file, candidate, extra, self._environment, parsed=parsed, source=source
        )
        return self._keep(file, extra, parsed, source)

    def holds(self, candidate: ProjectCandidate) -> bool:
        """Whether this process parsed the candidate's metadata before (`of_file`); if so, it is
        kept for this reader's `parse`, which then neither fetches nor asks again."""
        file = candidate.metadata_file
        known = self._parsed_cache.of_file(file, candidate, candidate.extra, self._environment)
        if known is None:
            return False
        self._keep(file, candidate.extra, *known)
        return True

    def _parse(self, candidate: ProjectCandidate, raw: bytes, extra: NormalizedName | None) -> ParsedMetadata:
        return self._parsed_cache.parse(self._target, self._environment, candidate, raw, extra)

    def _keep(
        self, file: DistFile, extra: NormalizedName | None, parsed: ParsedMetadata, source: str | None
    ) -> ParsedMetadata:
        with self._lock:
            self._sources.setdefault(file.url, source)
            return self._parsed.setdefault((file.url, extra), parsed)

    def _overridden(self, candidate: ProjectCandidate) -> bytes | None:
        """The operator's metadata for this version, as a core-metadata document, if any."""
        found = find_override(self._overrides, candidate.name, candidate.version)
        if found is None:
            return None
        return core_metadata(
            name=candidate.name,
            version=str(candidate.version),
            requires=found.requires_dist,
            requires_python=found.requires_python,
            source="override",
            source_header=SOURCE_HEADER,
        )
