"""Resolve a `LockRequest` for its target into a `Lock`, with resolvelib, as pip would there.

Roles (after pip's resolvelib adapter): `_Provider` answers resolvelib's questions;
`_Finder` turns one project page into candidates for the target (tags, requires-python,
PEP 592 yanks, PEP 700 `as_of`, pre-release rules, constraints); `_Candidate` is one version
of one project, or of one of its extras (`name[extra]` depends on `name==same version`, as in
pip); the pseudo-project `<python>` carries each candidate's `Requires-Python` so a version
that rejects the target's Python is backtracked over, not silently taken; so is a version whose
metadata has a `Requires-Dist` pip cannot parse (pip discards such a version).

Markers are evaluated with the target's environment (PEP 508), never the host's. Index routing
is strict (`IndexPlan.index_for`). Metadata comes through `IndexSource`, which the
`IndexClient` satisfies; the newest likely candidate of every newly seen dependency is
prefetched as soon as it is known, so the resolver rarely waits on the network.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from email.parser import BytesHeaderParser
from typing import Any, Protocol

import resolvelib
from packaging.markers import Marker
from packaging.requirements import InvalidRequirement as PackagingInvalidRequirement
from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version
from resolvelib.resolvers import ResolverException

from lockd.errors import (
    CudaMismatch,
    LockdError,
    NoMatchingDistribution,
    ResolutionImpossible,
    ResolutionTimeout,
    UnknownProject,
)
from lockd.inputs import InputRequirement, LockRequest
from lockd.lock import ROOT, Lock, LockedFile, LockedPackage
from lockd.simple import DistFile, ProjectPage
from lockd.target import Target

__all__ = [
    "CONSTRAINTS_VIA",
    "IndexSource",
    "QuietReporter",
    "ResolveReporter",
    "check_cuda_consistency",
    "resolve",
]

CONSTRAINTS_VIA = "-c constraints"
_PYTHON = "<python>"
_INVALID_METADATA = "<invalid-metadata>"
_MAX_ROUNDS = 5000
_LABELLED_FAMILY = frozenset({"torch", "torchvision", "torchaudio"})  # PyTorch puts +cuXYZ on these
_NVIDIA_CUDA = re.compile(r"^nvidia-.+-cu(\d+)$")


class IndexSource(Protocol):
    """What the resolver needs from an index; `lockd.index.IndexClient` satisfies it."""

    def project_page(self, index_url: str, name: NormalizedName) -> ProjectPage: ...

    def fetch_metadata(self, file: DistFile) -> bytes: ...

    def prefetch_metadata(self, files: Iterable[DistFile]) -> None: ...

    def file_sha256(self, file: DistFile) -> str: ...


class ResolveReporter(Protocol):
    """Progress hooks for a display; called on the resolving thread, so keep them cheap."""

    def on_pinned(self, name: NormalizedName, version: Version) -> None: ...

    def on_backtrack(self, name: NormalizedName) -> None: ...


class QuietReporter:
    """A `ResolveReporter` that reports nothing."""

    def on_pinned(self, name: NormalizedName, version: Version) -> None:
        pass

    def on_backtrack(self, name: NormalizedName) -> None:
        pass


# -- requirements and candidates -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Requirement:
    """One edge of the graph: `name[extra]` with a specifier, and who asked for it."""

    name: NormalizedName
    extra: NormalizedName | None
    specifier: SpecifierSet
    source: InputRequirement | None = field(default=None, compare=False)

    @property
    def identity(self) -> str:
        return _identity(self.name, self.extra)

    def __str__(self) -> str:
        extra = f"[{self.extra}]" if self.extra else ""
        return f"{self.name}{extra}{self.specifier}"


@dataclass(frozen=True, slots=True)
class _Candidate:
    """One version of a project (or of one of its extras) with the files that install on the target."""

    name: NormalizedName
    version: Version
    extra: NormalizedName | None
    files: tuple[DistFile, ...]  # best first: wheels by tag rank, then the sdist

    @property
    def identity(self) -> str:
        return _identity(self.name, self.extra)

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True, slots=True)
class _PythonRequirement:
    specifier: SpecifierSet

    @property
    def identity(self) -> str:
        return _PYTHON

    def __str__(self) -> str:
        return f"Python{self.specifier}"


@dataclass(frozen=True, slots=True)
class _PythonCandidate:
    version: Version

    @property
    def identity(self) -> str:
        return _PYTHON


@dataclass(frozen=True, slots=True)
class _InvalidMetadata:
    """Stands for a version whose metadata pip would refuse: it has no candidate, ever.

    pip parses every `Requires-Dist` of a candidate's metadata and discards the version when
    one does not parse (`MetadataInvalid`, "Ignoring version X of P since it has invalid
    metadata"); celery 4.x, for one, says `pytz (>dev)`. Depending on this pseudo-project makes
    resolvelib reject the version and try the next one, as pip does, instead of resolving it
    with that dependency silently missing.
    """

    name: NormalizedName
    version: Version
    line: str
    reason: str

    @property
    def identity(self) -> str:
        return _INVALID_METADATA + self.name

    def __str__(self) -> str:
        return f"{self.name} {self.version} has invalid metadata: Requires-Dist {self.line!r} ({self.reason})"


_Req = _Requirement | _PythonRequirement | _InvalidMetadata
_Cand = _Candidate | _PythonCandidate


def _identity(name: NormalizedName, extra: NormalizedName | None) -> str:
    return f"{name}[{extra}]" if extra else name


def _split_identity(identity: str) -> tuple[NormalizedName, NormalizedName | None]:
    if identity.endswith("]") and "[" in identity:
        name, extra = identity[:-1].split("[", 1)
        return NormalizedName(name), NormalizedName(extra)
    return NormalizedName(identity), None


def _is_exact_pin(specifier: SpecifierSet, version: Version) -> bool:
    """PEP 592: a yanked version may be chosen only when pinned with == or === (no wildcard)."""
    for spec in specifier:
        if spec.operator == "===" and spec.version == str(version):
            return True
        if (
            spec.operator == "=="
            and not spec.version.endswith(".*")
            and spec.contains(version, prereleases=True)
        ):
            return True
    return False


# -- per-project view of the index for the target ---------------------------------------------


@dataclass(frozen=True, slots=True)
class _Release:
    """Files of one version that install on the target, split by yank state."""

    version: Version
    files: tuple[DistFile, ...]  # not yanked, best first
    yanked: tuple[DistFile, ...]  # yanked, best first


class _Finder:
    """Turns a project page into the target's releases. One per project per resolution."""

    def __init__(self, page: ProjectPage, target: Target, as_of: datetime | None) -> None:
        self.page = page
        self._target = target
        self._as_of = as_of
        # Pages with thousands of files share a few requires-python values and tag sets (the
        # parsed values are shared objects, see lockd.simple): answer each once, by identity.
        self._python_ok: dict[int, tuple[SpecifierSet, bool]] = {}
        self._ranks: dict[int, tuple[frozenset[Tag], int | None]] = {}
        self.releases = self._releases()

    def installs(self, file: DistFile) -> bool:
        if self._as_of is not None and file.upload_time is not None and file.upload_time > self._as_of:
            return False
        if file.requires_python is not None and not self._python_allows(file.requires_python):
            return False
        if file.kind == "wheel":
            return self._rank(file.tags) is not None
        return True

    def _python_allows(self, specifier: SpecifierSet) -> bool:
        known = self._python_ok.get(id(specifier))
        if known is None:
            known = (specifier, specifier.contains(self._target.python, prereleases=True))
            self._python_ok[id(specifier)] = known  # the value holds the key's object alive
        return known[1]

    def _rank(self, tags: frozenset[Tag]) -> int | None:
        known = self._ranks.get(id(tags))
        if known is None:
            known = (tags, self._target.wheel_rank(tags))
            self._ranks[id(tags)] = known
        return known[1]

    def _file_order(self, file: DistFile) -> tuple[int, int, str]:
        if file.kind == "wheel":
            rank = self._rank(file.tags)
            return (0, rank if rank is not None else 1 << 30, file.filename)
        return (1, 0, file.filename)

    def _releases(self) -> dict[Version, _Release]:
        grouped: dict[Version, list[DistFile]] = {}
        for file in self.page.files:
            if self.installs(file):
                grouped.setdefault(file.version, []).append(file)
        releases: dict[Version, _Release] = {}
        for version, files in grouped.items():
            ordered = sorted(files, key=self._file_order)
            releases[version] = _Release(
                version,
                tuple(f for f in ordered if not f.is_yanked),
                tuple(f for f in ordered if f.is_yanked),
            )
        return releases

    def usable_files(self, release: _Release, specifier: SpecifierSet) -> tuple[DistFile, ...]:
        if release.files:
            return release.files
        if release.yanked and _is_exact_pin(specifier, release.version):
            return release.yanked
        return ()

    def why_not(self, version: Version) -> str:
        """Why no file of `version` installs on the target, in words."""
        files = [f for f in self.page.files if f.version == version]
        target = self._target.describe()
        if not files:
            return (
                f"{self.page.name} {version} has wheels only for platforms or Pythons that no lockd "
                f"target matches, and no sdist; none of them installs on {target}"
            )
        if all(f.is_yanked for f in files):
            reason = files[0].yanked or ""
            return f"{self.page.name} {version} was yanked" + (f" ({reason})" if reason else "")
        if self._as_of is not None and all(
            f.upload_time is not None and f.upload_time > self._as_of for f in files
        ):
            return f"{self.page.name} {version} was uploaded after {self._as_of.isoformat()}"
        python_ok = [
            f
            for f in files
            if f.requires_python is None or f.requires_python.contains(self._target.python, prereleases=True)
        ]
        if not python_ok:
            needs = files[0].requires_python
            return f"{self.page.name} {version} requires Python {needs}, the target has {self._target.python}"
        return f"{self.page.name} {version} has no file for {target}"


# -- the provider ---------------------------------------------------------------------------


class _Provider(resolvelib.AbstractProvider[_Req, _Cand, str]):
    """Answers resolvelib. `find_matches` and `get_dependencies` are memoised per project/version."""

    def __init__(
        self,
        request: LockRequest,
        index: IndexSource,
        pool: ThreadPoolExecutor,
        deadline: float | None,
    ) -> None:
        self._request = request
        self._target = request.target
        self._index = index
        self._pool = pool
        self._deadline = deadline
        self._prereleases = True if request.options.prereleases else None
        self._finders: dict[NormalizedName, _Finder] = {}
        self._finder_lock = threading.Lock()
        self._page_errors: dict[NormalizedName, LockdError] = {}
        self._dependencies: dict[tuple[NormalizedName, Version, NormalizedName | None], list[_Req]] = {}
        self.requires_python: dict[tuple[NormalizedName, Version], str | None] = {}
        self.constraints: dict[NormalizedName, list[InputRequirement]] = {}
        for constraint in request.constraints:
            if constraint.requirement.marker is None or self._marker_true(constraint.requirement.marker, ""):
                self.constraints.setdefault(constraint.name, []).append(constraint)
        self._seen: set[str] = set()
        self._seen_lock = threading.Lock()
        self._warming = True
        self._parsed: dict[tuple[str, NormalizedName | None], tuple[str | None, list[_Req]]] = {}
        self._depth: dict[str, int] = {}
        self._counts: dict[str, int] = {}

    # --- index access ---

    def check_deadline(self) -> None:
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise ResolutionTimeout(
                "resolution exceeded its time budget",
                hint="retry later, or pin more requirements to cut the search",
                context={"target": self._target.describe()},
            )

    def finder(self, name: NormalizedName) -> _Finder:
        with self._finder_lock:
            finder = self._finders.get(name)
        if finder is not None:
            return finder
        page = self._index.project_page(self._request.plan.index_for(name), name)
        finder = _Finder(page, self._target, self._request.options.as_of)
        with self._finder_lock:
            return self._finders.setdefault(name, finder)

    def announce(self, requirements: Iterable[_Requirement]) -> None:
        """Starts fetching pages and the likely metadata of projects (or extras) not seen before."""
        for requirement in requirements:
            with self._seen_lock:
                if not self._warming or requirement.identity in self._seen:
                    continue
                self._seen.add(requirement.identity)
            try:
                self._pool.submit(self._warm, requirement)
            except RuntimeError:
                return  # the pool is shutting down

    def stop_warming(self) -> None:
        """Queued prefetches return at once: the resolution no longer needs them."""
        with self._seen_lock:
            self._warming = False

    def _warm(self, requirement: _Requirement) -> None:
        """Fetches the likely candidate's page and metadata, then walks on to its dependencies.

        resolvelib asks for a dependency only once it pins the parent, so without the walk the
        network wait grows with the depth of the graph. Only the newest candidate that the one
        requirement allows is followed, and `announce` stops at identities already seen, so the
        walk costs at most one page and one metadata fetch per project (and extra) it reaches.
        """
        try:
            if not self._warming:
                return
            finder = self.finder(requirement.name)
            specifier = self._specifier_for(requirement.name, [requirement])
            likely = next(iter(self._candidates(finder, requirement.name, None, specifier)), None)
            if likely is None or not self._warming:
                return
            _requires_python, found = self._parse_metadata(likely, requirement.extra)
        except LockdError:
            return  # find_matches / get_dependencies ask again and report it with the requirement chain
        self.announce(r for r in found if isinstance(r, _Requirement))

    # --- resolvelib interface ---

    def identify(self, requirement_or_candidate: _Req | _Cand) -> str:
        return requirement_or_candidate.identity

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, _Cand],
        candidates: Mapping[str, Iterator[_Cand]],
        information: Mapping[str, Iterator[Any]],
        backtrack_causes: Sequence[Any],
    ) -> tuple[bool, bool, bool, int, int, str]:
        """pip's order: Python first, then backtrack causes, `==` pins, fewer candidates, shallower.

        Called O(n) times per round; everything here is a dict lookup.
        """
        infos = list(information[identifier])
        pinned = any(
            isinstance(info.requirement, _Requirement)
            and any(s.operator in ("==", "===") for s in info.requirement.specifier)
            for info in infos
        )
        depth = self._depth.get(identifier)
        if depth is None:
            parents = [info.parent for info in infos]
            depth = (
                1
                if any(p is None for p in parents)
                else 1 + min((self._depth.get(p.identity, 1) for p in parents if p is not None), default=0)
            )
            self._depth[identifier] = depth
        causes = {info.requirement.identity for info in backtrack_causes}
        name, _extra = _split_identity(identifier)
        return (
            identifier != _PYTHON,
            identifier not in causes and name not in causes,
            not pinned,
            self._counts.get(identifier, 1 << 20),
            depth,
            identifier,
        )

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[_Req]],
        incompatibilities: Mapping[str, Iterator[_Cand]],
    ) -> list[_Cand]:
        self.check_deadline()
        if identifier.startswith(_INVALID_METADATA):
            return []
        if identifier == _PYTHON:
            python = _PythonCandidate(self._target.python)
            ok = all(
                isinstance(r, _PythonRequirement) and r.specifier.contains(python.version, prereleases=True)
                for r in requirements[identifier]
            )
            rejected = any(True for _ in incompatibilities[identifier])
            return [python] if ok and not rejected else []
        name, extra = _split_identity(identifier)
        reqs = [r for r in requirements[identifier] if isinstance(r, _Requirement)]
        finder = self._finder_for(name, reqs)
        specifier = self._specifier_for(name, reqs)
        excluded = {c.version for c in incompatibilities[identifier] if isinstance(c, _Candidate)}
        found: list[_Cand] = [
            c for c in self._candidates(finder, name, extra, specifier) if c.version not in excluded
        ]
        self._counts[identifier] = len(found)
        if found:
            first = found[0]
            assert isinstance(first, _Candidate)
            self._index.prefetch_metadata(first.files[:1])
        return found

    def is_satisfied_by(self, requirement: _Req, candidate: _Cand) -> bool:
        if isinstance(requirement, _InvalidMetadata):
            return False
        if isinstance(requirement, _PythonRequirement) or isinstance(candidate, _PythonCandidate):
            return isinstance(candidate, _PythonCandidate) and requirement.specifier.contains(
                candidate.version, prereleases=True
            )
        return requirement.specifier.contains(candidate.version, prereleases=True)

    def get_dependencies(self, candidate: _Cand) -> list[_Req]:
        self.check_deadline()
        if isinstance(candidate, _PythonCandidate):
            return []
        key = (candidate.name, candidate.version, candidate.extra)
        cached = self._dependencies.get(key)
        if cached is None:
            cached = self._compute_dependencies(candidate)
            self._dependencies[key] = cached
        self.announce(r for r in cached if isinstance(r, _Requirement))
        return cached

    # --- internals ---

    def _finder_for(self, name: NormalizedName, reqs: list[_Requirement]) -> _Finder:
        try:
            return self.finder(name)
        except UnknownProject as exc:
            asked = "; ".join(sorted({_asked_by(r) for r in reqs}))
            raise UnknownProject(
                f"{exc.message} ({asked})" if asked else exc.message,
                hint=exc.hint,
                context={**exc.context, "required_by": sorted({_asked_by(r) for r in reqs})},
            ) from None

    def _specifier_for(self, name: NormalizedName, reqs: Iterable[_Requirement]) -> SpecifierSet:
        specifier = SpecifierSet()
        for req in reqs:
            specifier &= req.specifier
        for constraint in self.constraints.get(name, ()):
            specifier &= constraint.requirement.specifier
        return specifier

    def _candidates(
        self, finder: _Finder, name: NormalizedName, extra: NormalizedName | None, specifier: SpecifierSet
    ) -> list[_Candidate]:
        """Newest first: versions with a usable file, filtered by pip's pre-release rule."""
        usable: dict[Version, tuple[DistFile, ...]] = {}
        for version, release in finder.releases.items():
            files = finder.usable_files(release, specifier)
            if files:
                usable[version] = files
        # With prereleases=None packaging applies PEP 440's rule: pre-releases only when the
        # specifier names one or no final version matches. That is pip's rule too.
        matching = specifier.filter(usable, prereleases=self._prereleases)
        return [_Candidate(name, v, extra, usable[v]) for v in sorted(matching, reverse=True)]

    def _marker_true(self, marker: Marker, extra: str) -> bool:
        environment = dict(self._target.marker_environment)
        environment["extra"] = extra
        return marker.evaluate(environment)

    def _compute_dependencies(self, candidate: _Candidate) -> list[_Req]:
        if candidate.extra is not None:
            base = _Requirement(candidate.name, None, SpecifierSet(f"=={candidate.version}"))
            return [base, *self._metadata_dependencies(candidate, candidate.extra)]
        return self._metadata_dependencies(candidate, None)

    def _metadata_dependencies(self, candidate: _Candidate, extra: NormalizedName | None) -> list[_Req]:
        requires_python, found = self._parse_metadata(candidate, extra)
        if extra is None:
            self.requires_python[(candidate.name, candidate.version)] = requires_python
        return found

    def _parse_metadata(
        self, candidate: _Candidate, extra: NormalizedName | None
    ) -> tuple[str | None, list[_Req]]:
        """(Requires-Python text, dependencies for the target) of the candidate's best file.

        Parsed once per file and extra: the prefetch walk (`_warm`) and the resolver share it.
        """
        file = candidate.files[0]
        with self._seen_lock:
            parsed = self._parsed.get((file.url, extra))
        if parsed is None:
            parsed = self._dependencies_in(candidate, self._index.fetch_metadata(file), extra)
            with self._seen_lock:
                parsed = self._parsed.setdefault((file.url, extra), parsed)
        return parsed

    def _dependencies_in(
        self, candidate: _Candidate, raw: bytes, extra: NormalizedName | None
    ) -> tuple[str | None, list[_Req]]:
        headers = BytesHeaderParser().parsebytes(raw)
        found: list[_Req] = []
        requires_python = headers.get("Requires-Python")
        requires_python_text = str(requires_python).strip() if requires_python else None
        if extra is None and requires_python_text:
            # pip ignores an unparsable Requires-Python in metadata, so do we
            with suppress(InvalidSpecifier):
                found.append(_PythonRequirement(SpecifierSet(str(requires_python))))
        for line in headers.get_all("Requires-Dist") or []:
            try:
                requirement = Requirement(str(line).strip())
            except PackagingInvalidRequirement as exc:
                # Every line counts, whatever its marker: pip parses them all before it
                # evaluates any, and discards the version if one fails.
                reason = str(exc).splitlines()[0]
                return requires_python_text or None, [
                    _InvalidMetadata(candidate.name, candidate.version, str(line).strip(), reason)
                ]
            if not self._applies(requirement, extra):
                continue
            found.extend(_split_extras(requirement))
        return requires_python_text or None, found

    def _applies(self, requirement: Requirement, extra: NormalizedName | None) -> bool:
        if requirement.marker is None:
            return extra is None
        if extra is None:
            return self._marker_true(requirement.marker, "")
        # An extra's own dependencies: true for this extra, not already true without it.
        return self._marker_true(requirement.marker, extra) and not self._marker_true(requirement.marker, "")


def _split_extras(requirement: Requirement, source: InputRequirement | None = None) -> list[_Req]:
    """`foo[a,b]>=1` → `foo>=1`, `foo[a]>=1`, `foo[b]>=1`: one resolvelib identity per extra."""
    name = canonicalize_name(requirement.name)
    found: list[_Req] = [_Requirement(name, None, requirement.specifier, source)]
    for extra in sorted({canonicalize_name(e) for e in requirement.extras}):
        found.append(_Requirement(name, extra, requirement.specifier, source))
    return found


def _asked_by(requirement: _Requirement) -> str:
    if requirement.source is not None:
        return requirement.source.describe()
    return f"asks for {requirement}"


# -- progress -------------------------------------------------------------------------------


class _Reporter(resolvelib.BaseReporter[_Req, _Cand, str]):
    def __init__(self, provider: _Provider, reporter: ResolveReporter | None) -> None:
        self._provider = provider
        self._reporter = reporter

    def starting_round(self, index: int) -> None:
        self._provider.check_deadline()

    def pinning(self, candidate: _Cand) -> None:
        if self._reporter is not None and isinstance(candidate, _Candidate) and candidate.extra is None:
            self._reporter.on_pinned(candidate.name, candidate.version)

    def rejecting_candidate(self, criterion: Any, candidate: _Cand) -> None:
        if self._reporter is not None and isinstance(candidate, _Candidate):
            self._reporter.on_backtrack(candidate.name)


# -- errors ---------------------------------------------------------------------------------


def _describe_parent(parent: _Cand | None, requirement: _Req) -> str:
    if isinstance(requirement, _InvalidMetadata):
        return str(requirement)
    if isinstance(requirement, _PythonRequirement):
        who = f"{parent.name} {parent.version}" if isinstance(parent, _Candidate) else "a dependency"
        return f"{who} requires Python{requirement.specifier}"
    if parent is None:
        if requirement.source is not None:
            return requirement.source.describe()
        return f"the request asks for {requirement}"
    assert isinstance(parent, _Candidate)
    return f"{parent.name} {parent.version} requires {requirement}"


def _explain_empty(provider: _Provider, requirement: _Requirement, parent: _Cand | None) -> LockdError | None:
    """A `NoMatchingDistribution` when this one requirement has no candidate at all."""
    finder = provider.finder(requirement.name)
    specifier = provider._specifier_for(requirement.name, [requirement])
    if provider._candidates(finder, requirement.name, None, specifier):
        return None
    who = _describe_parent(parent, requirement)
    on_index = sorted(finder.page.versions, reverse=True)
    matching = [v for v in on_index if specifier.contains(v, prereleases=True)]
    context: dict[str, Any] = {
        "project": requirement.name,
        "requirement": str(requirement),
        "required_by": who,
        "index": finder.page.index_url,
        "target": provider._target.to_json(),
    }
    if not matching:
        shown = ", ".join(str(v) for v in on_index[:8]) or "none"
        constrained = " (with constraints)" if requirement.name in provider.constraints else ""
        return NoMatchingDistribution(
            f"no version of {requirement.name} matches {specifier or 'any version'}{constrained}: {who}; "
            f"the index has {shown}",
            context={**context, "available": [str(v) for v in on_index[:50]]},
        )
    reason = finder.why_not(matching[0])
    return NoMatchingDistribution(
        f"{reason} ({who})",
        hint="pick another version, or a target that version supports",
        context={**context, "versions": [str(v) for v in matching[:50]]},
    )


def _explain_invalid_metadata(provider: _Provider, invalid: list[_InvalidMetadata]) -> NoMatchingDistribution:
    """Every version left to try has metadata pip would refuse."""
    newest = max(invalid, key=lambda r: r.version)
    versions = sorted({r.version for r in invalid}, reverse=True)
    return NoMatchingDistribution(
        f"no usable version of {newest.name}: {newest}"
        + (f" (and so does {', '.join(str(v) for v in versions[1:8])})" if len(versions) > 1 else ""),
        hint="pin a version whose metadata is valid, or ask its maintainers to fix the metadata",
        context={
            "project": newest.name,
            "versions": [str(v) for v in versions[:50]],
            "requires_dist": newest.line,
            "target": provider._target.to_json(),
        },
    )


def _translate(provider: _Provider, exc: resolvelib.ResolutionImpossible[_Req, _Cand]) -> LockdError:
    causes = [c for c in exc.causes]
    identities = {c.requirement.identity for c in causes}
    invalid = [c.requirement for c in causes if isinstance(c.requirement, _InvalidMetadata)]
    if invalid and len(invalid) == len(causes):
        return _explain_invalid_metadata(provider, invalid)
    if len(identities) == 1:
        for cause in causes:
            if isinstance(cause.requirement, _Requirement):
                empty = _explain_empty(provider, cause.requirement, cause.parent)
                if empty is not None:
                    return empty
    # The dependency's demand first, then what the user asked for: "X requires A, but line 1 asks for B".
    ordered = sorted(causes, key=lambda c: (c.parent is None, _describe_parent(c.parent, c.requirement)))
    described = list(dict.fromkeys(_describe_parent(c.parent, c.requirement) for c in ordered))
    message = described[0] if len(described) == 1 else described[0] + ", but " + " and ".join(described[1:])
    return ResolutionImpossible(
        message,
        hint="relax one of these requirements",
        context={
            "conflicts": [
                {
                    "requirement": str(c.requirement),
                    "required_by": None if c.parent is None else str(c.parent),
                    "source": None
                    if not isinstance(c.requirement, _Requirement) or c.requirement.source is None
                    else {"source": c.requirement.source.source, "line": c.requirement.source.line},
                }
                for c in causes
            ],
            "target": provider._target.to_json(),
        },
    )


# -- building the lock ----------------------------------------------------------------------


def _lock_from(
    request: LockRequest, provider: _Provider, result: Any, index: IndexSource, pool: ThreadPoolExecutor
) -> Lock:
    mapping: Mapping[str, _Cand] = result.mapping
    graph = result.graph
    pinned = {c.name: c for c in mapping.values() if isinstance(c, _Candidate) and c.extra is None}
    dependencies: dict[NormalizedName, set[NormalizedName]] = {name: set() for name in pinned}
    via: dict[NormalizedName, set[str]] = {name: set() for name in pinned}
    for identity in mapping:
        if identity == _PYTHON:
            continue
        name, _extra = _split_identity(identity)
        for child in graph.iter_children(identity):
            child_name, _ = _split_identity(child)
            if child != _PYTHON and child_name != name:
                dependencies[name].add(child_name)
        for parent in graph.iter_parents(identity):
            if parent is None:
                via[name].add(ROOT)
                continue
            parent_name, _ = _split_identity(parent)
            if parent_name != name:
                via[name].add(parent_name)
    for name in provider.constraints:
        if name in via:
            via[name].add(CONSTRAINTS_VIA)
    files = {name: _lock_files(candidate) for name, candidate in pinned.items()}
    all_files = [f for chosen in files.values() for f in chosen]
    hashes = dict(zip((f.url for f in all_files), pool.map(index.file_sha256, all_files), strict=True))
    packages = []
    for name, candidate in pinned.items():
        locked = tuple(LockedFile(f.filename, f.url, hashes[f.url], f.size, f.kind) for f in files[name])
        packages.append(
            LockedPackage(
                name=name,
                version=candidate.version,
                index=request.plan.index_for(name),
                files=locked,
                dependencies=tuple(dependencies[name]),
                via=tuple(via[name]),
                requires_python=provider.requires_python.get((name, candidate.version)),
            )
        )
    return Lock.build(
        input_digest=request.digest,
        target=request.target,
        plan=request.plan,
        requirements=[r.canonical for r in request.requirements],
        constraints=[c.canonical for c in request.constraints],
        options=request.options,
        packages=packages,
    )


def _lock_files(candidate: _Candidate) -> tuple[DistFile, ...]:
    """Every compatible wheel; the sdist only where no wheel fits (what pip could install)."""
    wheels = tuple(f for f in candidate.files if f.kind == "wheel")
    return wheels or tuple(f for f in candidate.files if f.kind == "sdist")


# -- entry points ---------------------------------------------------------------------------


def resolve(
    request: LockRequest,
    index: IndexSource,
    *,
    reporter: ResolveReporter | None = None,
    deadline: float | None = None,
) -> Lock:
    """The lock pip would install on `request.target`, with every file's sha256.

    `deadline` is a `time.monotonic()` value; past it `ResolutionTimeout` is raised. Errors:
    `UnknownProject`, `NoMatchingDistribution`, `ResolutionImpossible`, `SdistNeedsBuild`,
    `IndexUnavailable`, `TamperedFile`, `CudaMismatch`.
    """
    # Wide enough for the prefetch walk: its workers mostly wait on the network.
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="lockd-resolve") as pool:
        provider = _Provider(request, index, pool, deadline)
        roots: list[_Req] = []
        for item in request.requirements:
            marker = item.requirement.marker
            if marker is not None and not provider._marker_true(marker, ""):
                continue  # not for this target, as pip would skip it there
            roots.extend(_split_extras(item.requirement, item))
        provider.announce(r for r in roots if isinstance(r, _Requirement))
        resolver = resolvelib.Resolver(provider, _Reporter(provider, reporter))
        try:
            result = resolver.resolve(roots, max_rounds=_MAX_ROUNDS)
        except resolvelib.ResolutionImpossible as exc:
            raise _translate(provider, exc) from None
        except resolvelib.ResolutionTooDeep as exc:
            raise ResolutionImpossible(
                f"gave up after {exc.round_count} resolution rounds without a solution",
                hint="pin some of the requirements to narrow the search",
                context={"rounds": exc.round_count},
            ) from None
        except ResolverException as exc:
            raise ResolutionImpossible(f"the resolver failed: {exc}", context={}) from None
        finally:
            provider.stop_warming()
        lock = _lock_from(request, provider, result, index, pool)
    check_cuda_consistency(lock)
    return lock


def check_cuda_consistency(lock: Lock) -> None:
    """A lock for a CUDA (or cpu) variant holds only that variant's builds.

    torch-family pins from the accelerator index carry the variant's local label where the
    PyTorch index labels builds (CUDA on Linux x86_64 and Windows; cpu builds for macOS and
    aarch64 carry none); every `nvidia-*-cuNN` pin matches the variant's CUDA major.
    """
    variant = lock.target.variant
    if variant is None:
        return
    problems: list[dict[str, str]] = []
    unlabelled_ok = variant.cuda is None or lock.target.platform.name not in ("linux_x86_64", "windows_amd64")
    for package in lock.packages:
        if lock.plan.is_accelerated(package.name) and package.name in _LABELLED_FAMILY:
            label = package.version.local
            if (label is not None and label != variant.local_label) or (label is None and not unlabelled_ok):
                problems.append(
                    {
                        "package": package.name,
                        "version": str(package.version),
                        "expected": f"+{variant.local_label}",
                    }
                )
        match = _NVIDIA_CUDA.match(package.name)
        if match is None:
            continue
        major = int(match.group(1))
        from_family = any(canonicalize_name(v) in lock.plan.family for v in package.via)
        if (variant.cuda_major is None and from_family) or (
            variant.cuda_major is not None and major != variant.cuda_major
        ):
            expected = "no CUDA packages" if variant.cuda_major is None else f"-cu{variant.cuda_major}"
            problems.append({"package": package.name, "version": str(package.version), "expected": expected})
    if problems:
        listed = ", ".join(f"{p['package']} {p['version']} (expected {p['expected']})" for p in problems)
        raise CudaMismatch(
            f"the lock for {lock.target.describe()} mixes CUDA builds: {listed}",
            hint=f"pin torch-family packages that exist for {variant.name} on the PyTorch index",
            context={"variant": variant.name, "problems": problems},
        )
