"""What a candidate's metadata says on the target, read once per file and extra.

The candidate's best file gives its core metadata through `IndexSource.fetch_metadata` (a
wheel's METADATA, or what `lockd.sdist_sources` found for an sdist). When an sdist has none
without a build, the operator's override (`LockOptions.metadata_overrides`) is used, and
failing that the version depends on `MetadataUnavailable`, so the resolver rules it out
instead of stopping. Where each file's metadata came from is kept for the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from packaging.utils import NormalizedName

from lockd.egg_info import core_metadata
from lockd.errors import SdistNeedsBuild, UnusableMetadata
from lockd.metadata_overrides import MetadataOverride, find_override
from lockd.resolver.candidates import InvalidMetadata, MetadataUnavailable, ProjectCandidate
from lockd.resolver.dependencies import ParsedMetadata, parse_dependencies
from lockd.sdist_sources import SOURCE_HEADER, metadata_source
from lockd.simple import DistFile
from lockd.target import Target

__all__ = ["MetadataFetcher", "MetadataReader"]


class MetadataFetcher(Protocol):
    def fetch_metadata(self, file: DistFile) -> bytes: ...


class MetadataReader:
    """Parsed metadata by (file URL, extra), shared by the prefetch walk and the resolver. Thread-safe."""

    def __init__(self, index: MetadataFetcher, target: Target, overrides: Sequence[MetadataOverride]) -> None:
        self._index = index
        self._target = target
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
        try:
            raw = self._index.fetch_metadata(file)
        except SdistNeedsBuild as exc:
            overridden = self._overridden(candidate)
            if overridden is None:
                unavailable = MetadataUnavailable(
                    name=candidate.name, version=candidate.version, reason=exc.message, hint=exc.hint
                )
                return None, [unavailable]
            raw = overridden
        except UnusableMetadata as exc:
            # The file's metadata names another file or is over a limit: this version is out.
            unusable = InvalidMetadata(
                name=candidate.name, version=candidate.version, line=None, reason=exc.message, code=exc.code
            )
            return None, [unusable]
        parsed = parse_dependencies(self._target, candidate, raw, extra)
        with self._lock:
            self._sources.setdefault(file.url, metadata_source(file.kind, raw))
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
