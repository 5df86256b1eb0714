"""The resolvelib provider: answers resolvelib's questions for one `LockRequest`.

It finds candidates through one `Finder` per project, reads dependencies from metadata
through `IndexSource` (which `lockd.index.IndexClient` satisfies), applies constraints and
strict index routing (`IndexPlan.index_for`), and walks ahead of resolvelib (`lockd.resolver.walk`):
from the first fetch the resolution needs, the newest likely candidate of every newly seen
dependency is prefetched as soon as it is known, so the resolver rarely waits on the network. Everything
resolvelib asks is memoised per project and version.

A dependency on a project the index does not have (404) gets no candidates, and a version
whose metadata cannot be had without a build depends on `MetadataUnavailable`: either way
resolvelib rules the version out and tries the next, as pip and uv do. What was ruled out and
who asked for what (`demands`) stay readable for the explanation when nothing is left.

The request's preferences (another target's pins, a name's current pins) are tried first: a
preferred version that the requirements allow leads the candidates, the rest follow newest
first, so the resolver moves off a preferred version only when it must. A preferred version
matches by its public part too, so `2.5.1+cpu` leads to `2.5.1+cu124` on a CUDA target.

Which name to pin next is pip's order, kept in `lockd.resolver.pip_order`; the rest are the
memos resolvelib's other questions share (it asks them again every round, O(n) times a round).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from typing import Protocol

import resolvelib
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName
from packaging.version import Version

from lockd.errors import LockdError, ResolutionTimeout, UnknownProject
from lockd.index.threads import TaskScope, WorkerPool
from lockd.inputs import InputRequirement, LockRequest
from lockd.resolver.candidates import (
    AnyCandidate,
    AnyRequirement,
    Identifier,
    Identity,
    InvalidMetadataIdentity,
    ProjectCandidate,
    ProjectRequirement,
    PythonCandidate,
    PythonRequirement,
)
from lockd.resolver.chain import DemandLog
from lockd.resolver.dependencies import base_requirement, marker_true
from lockd.resolver.direct import direct_candidate, without_fragment
from lockd.resolver.finder import Finder, combine
from lockd.resolver.metadata import MetadataReader
from lockd.resolver.pip_order import PipOrder, Preference, RequirementInfo
from lockd.resolver.python_answers import PythonAnswers
from lockd.resolver.walk import PrefetchWalk
from lockd.simple import DistFile, ProjectPage
from lockd.target import Target

__all__ = ["IndexSource", "Preference", "Provider", "RequirementInfo"]


class IndexSource(Protocol):
    """What the resolver needs from an index; `lockd.index.IndexClient` satisfies it."""

    def project_page(self, index_url: str, name: NormalizedName) -> ProjectPage: ...

    def fetch_metadata(self, file: DistFile) -> bytes: ...

    def prefetch_metadata(self, files: Iterable[DistFile]) -> bool: ...

    def holds_page(self, index_url: str, name: NormalizedName) -> bool: ...

    def file_sha256(self, file: DistFile) -> str: ...

    @property
    def workers(self) -> WorkerPool:
        """Threads for the prefetch walk and hashing; they outlive a resolution."""
        ...


class Provider(resolvelib.AbstractProvider[AnyRequirement, AnyCandidate, Identifier]):
    """Answers resolvelib for one request. Public reads are for explanation and lock building."""

    def __init__(
        self,
        request: LockRequest,
        index: IndexSource,
        tasks: TaskScope,
        deadline: float | None,
        *,
        preferences: Mapping[NormalizedName, Version] | None = None,
    ) -> None:
        self._request = request
        self._index = index
        self._deadline = deadline
        self._finders: dict[NormalizedName, Finder] = {}
        self._finder_lock = threading.Lock()
        self._dependencies: dict[
            tuple[NormalizedName, Version, NormalizedName | None], list[AnyRequirement]
        ] = {}
        self._requires_python: dict[tuple[NormalizedName, Version], str | None] = {}
        self._constraints: dict[NormalizedName, list[InputRequirement]] = {}
        for constraint in request.constraints:
            marker = constraint.requirement.marker
            if marker is None or marker_true(request.target, marker, ""):
                self._constraints.setdefault(constraint.name, []).append(constraint)
        self._metadata = MetadataReader(index, request.target, request.options.metadata_overrides)
        self._walk = PrefetchWalk(tasks, self.candidates_for, self._metadata.parse)
        self._satisfied: dict[tuple[int, int], tuple[AnyRequirement, AnyCandidate, bool]] = {}
        self._python = PythonAnswers(request.target.python)
        # Asked for every pin by lock building: the names the request gives by URL, worked out once.
        self._direct = frozenset(r.name for r in request.requirements if r.requirement.url)
        self._order = PipOrder()
        self._prefetched: dict[int, DistFile] = {}
        self._counts: dict[Identifier, int] = {}
        self._missing: dict[NormalizedName, UnknownProject] = {}
        self._demands = DemandLog()
        # A name's current pins (`preferences`) and another target's pins (`request.preferred`)
        # are tried first alike; the name's own pins win where both speak.
        self._preferred: Mapping[NormalizedName, Version] = {**request.preferred, **(preferences or {})}

    # --- what explanation and lock building read ---

    @property
    def target(self) -> Target:
        return self._request.target

    @property
    def constraints(self) -> Mapping[NormalizedName, Sequence[InputRequirement]]:
        """The constraints that apply on the target (their markers hold), by project."""
        return self._constraints

    @property
    def demands(self) -> DemandLog:
        """Who asked for what so far: the request's lines and every candidate's dependencies."""
        return self._demands

    def missing(self, name: NormalizedName) -> UnknownProject | None:
        """The 404 of a project its index does not have, once something asked for it."""
        with self._finder_lock:
            return self._missing.get(name)

    def metadata_source_of(self, candidate: ProjectCandidate) -> str | None:
        """Where the dependencies of `candidate` came from: None for a wheel (`lockd.sdist_sources`)."""
        return self._metadata.source_of(candidate)

    def requires_python_of(self, name: NormalizedName, version: Version) -> str | None:
        """The `Requires-Python` of a version whose dependencies were read, as written."""
        return self._requires_python.get((name, version))

    def finder(self, name: NormalizedName) -> Finder:
        """The project's finder, reading its page from the index that serves it on first use."""
        # Asked at every find_matches: a finder once kept is never replaced, and a dict read is
        # atomic, so a hit needs no lock.
        finder = self._finders.get(name)
        if finder is not None:
            return finder
        with self._finder_lock:
            finder = self._finders.get(name)
            missing = self._missing.get(name)
        if finder is not None:
            return finder
        if missing is not None:
            raise missing
        reserved = self._request.plan.reserved_by(name)
        if reserved is not None:
            refusal = UnknownProject(
                f"{name} is served only by the private index {reserved.name}, which this request does not select",
                hint=f"select it by name: indexes [{reserved.name!r}] in the JSON options, "
                f"index={reserved.name} in the query, or lockd lock --index {reserved.name}",
                context={"project": name, "index": reserved.name},
            )
            with self._finder_lock:
                raise self._missing.setdefault(name, refusal)
        try:
            index_url = self._request.plan.index_for(name)
            if not self._walk.walking and not self._index.holds_page(index_url, name):
                self._walk.start()
            page = self._index.project_page(index_url, name)
        except UnknownProject as exc:
            with self._finder_lock:
                raise self._missing.setdefault(name, exc) from None
        options = self._request.options
        finder = Finder.of(
            name,
            page,
            self.target,
            as_of=options.as_of,
            prereleases=options.prereleases,
            only_binary=options.only_binary,
        )
        with self._finder_lock:
            return self._finders.setdefault(name, finder)

    def specifier_for(self, name: NormalizedName, requirements: Sequence[ProjectRequirement]) -> SpecifierSet:
        """The requirements' specifiers and the project's constraints, combined."""
        return combine(self._specifiers(name, requirements))

    def _specifiers(
        self, name: NormalizedName, requirements: Sequence[ProjectRequirement]
    ) -> list[SpecifierSet]:
        """The requirements' specifiers, then the project's constraints'."""
        specifiers = [r.specifier for r in requirements]
        for constraint in self._constraints.get(name, ()):
            specifiers.append(constraint.requirement.specifier)
        return specifiers

    def candidates_for(self, requirement: ProjectRequirement) -> Sequence[ProjectCandidate]:
        """The project's versions this one requirement allows under the constraints, newest first."""
        specifier = self.specifier_for(requirement.name, [requirement])
        return self._preferred_first(
            requirement.name, self.finder(requirement.name).candidates(specifier, None)
        )

    def _preferred_first(
        self, name: NormalizedName, found: Sequence[ProjectCandidate]
    ) -> Sequence[ProjectCandidate]:
        preferred = self._preferred.get(name)
        if preferred is None:
            return found
        same = [c for c in found if c.version == preferred] or [
            c for c in found if c.version.public == preferred.public
        ]
        if not same:
            return found
        return [same[0], *(c for c in found if c is not same[0])]

    def check_deadline(self) -> None:
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise ResolutionTimeout(
                "resolution exceeded its time budget",
                hint="retry later, or pin more requirements to cut the search",
                context={"target": self.target.describe()},
            )

    # --- the prefetch walk (`lockd.resolver.walk`) ---

    def announce(self, requirements: Iterable[AnyRequirement]) -> None:
        """Starts fetching pages and the likely metadata of projects (or extras) not seen before."""
        self._walk.announce(requirements)

    def stop_warming(self) -> None:
        """Queued prefetches return at once: the resolution no longer needs them."""
        self._walk.stop()

    # --- resolvelib interface ---

    def identify(self, requirement_or_candidate: AnyRequirement | AnyCandidate) -> Identifier:
        return requirement_or_candidate.identity

    def get_preference(
        self,
        identifier: Identifier,
        resolutions: Mapping[Identifier, AnyCandidate],
        candidates: Mapping[Identifier, Iterator[AnyCandidate]],
        information: Mapping[Identifier, Iterator[RequirementInfo]],
        backtrack_causes: Sequence[RequirementInfo],
    ) -> Preference:
        """pip's order (`lockd.resolver.pip_order`), over what find_matches last found for the name."""
        return self._order.preference(
            identifier, information, backtrack_causes, self._counts.get(identifier, 1 << 20)
        )

    def find_matches(
        self,
        identifier: Identifier,
        requirements: Mapping[Identifier, Iterator[AnyRequirement]],
        incompatibilities: Mapping[Identifier, Iterator[AnyCandidate]],
    ) -> Sequence[AnyCandidate]:
        self.check_deadline()
        if isinstance(identifier, InvalidMetadataIdentity):
            return []
        if not isinstance(identifier, Identity):
            rejected = any(True for _ in incompatibilities[identifier])
            ok = self._python.allow_extended(requirements, identifier)
            return [PythonCandidate(version=self.target.python)] if ok and not rejected else []
        reqs = [r for r in requirements[identifier] if isinstance(r, ProjectRequirement)]
        urls = {r.url for r in reqs if r.url is not None}
        if urls:
            return self._direct_matches(identifier, reqs, urls, incompatibilities)
        try:
            finder = self.finder(identifier.name)
        except UnknownProject:
            # No candidates: the version that asked is ruled out, and `explain` names the chain.
            self._counts[identifier] = 0
            return []
        excluded = {c.version for c in incompatibilities[identifier] if isinstance(c, ProjectCandidate)}
        # The finder's kept tuple, handed to resolvelib as it is: resolvelib only reads a sequence
        # of matches (a 300-pin resolution made two copies at each of its 990 calls, 0.4 ms).
        allowed: Sequence[ProjectCandidate] = finder.matching(
            self._specifiers(identifier.name, reqs), identifier.extra
        )
        if excluded:  # mostly none: then no pass over a project's hundreds of versions
            allowed = [c for c in allowed if c.version not in excluded]
        found: Sequence[AnyCandidate] = self._preferred_first(identifier.name, allowed)
        self._counts[identifier] = len(found)
        if found:
            first = found[0]
            assert isinstance(first, ProjectCandidate)
            file = first.metadata_file
            # Only an optimisation: a refusal remembered by the client surfaces in get_dependencies.
            # Asked once per file: the same newest candidate comes first at most of its name's
            # find_matches, and the client's check that it holds the file costs a cache lookup.
            if id(file) not in self._prefetched:
                self._prefetched[id(file)] = file  # holds the file: its id stays its own
                if self._metadata.holds(first):
                    return found  # parsed in an earlier resolution: nothing to fetch
                with suppress(LockdError):
                    if self._index.prefetch_metadata([file]):
                        self._walk.start()
        return found

    def is_satisfied_by(self, requirement: AnyRequirement, candidate: AnyCandidate) -> bool:
        """Memoised by the objects' identities: resolvelib asks again for every pin every round."""
        key = (id(requirement), id(candidate))
        known = self._satisfied.get(key)
        if known is None:
            # The entry holds both objects, so neither id is reused while it is kept.
            known = (requirement, candidate, self._satisfies(requirement, candidate))
            self._satisfied[key] = known
        return known[2]

    def _satisfies(self, requirement: AnyRequirement, candidate: AnyCandidate) -> bool:
        if not isinstance(requirement, ProjectRequirement):
            return (
                isinstance(requirement, PythonRequirement)
                and isinstance(candidate, PythonCandidate)
                and requirement.specifier.contains(candidate.version, prereleases=True)
            )
        if isinstance(candidate, PythonCandidate):
            return False
        if requirement.url is not None:
            return candidate.files[0].url == without_fragment(requirement.url)
        return requirement.specifier.contains(candidate.version, prereleases=True)

    def get_dependencies(self, candidate: AnyCandidate) -> list[AnyRequirement]:
        self.check_deadline()
        if isinstance(candidate, PythonCandidate):
            return []
        key = (candidate.name, candidate.version, candidate.extra)
        cached = self._dependencies.get(key)
        if cached is None:
            cached = self._compute_dependencies(candidate)
            self._dependencies[key] = cached
        self.announce(cached)
        return cached

    # --- internals ---

    def _compute_dependencies(self, candidate: ProjectCandidate) -> list[AnyRequirement]:
        if candidate.extra is not None:
            found = [
                base_requirement(candidate.name, candidate.version),
                *self._metadata_dependencies(candidate, candidate.extra),
            ]
        else:
            found = self._metadata_dependencies(candidate, None)
        self._demands.note_dependencies(candidate, found)
        return found

    def _metadata_dependencies(
        self, candidate: ProjectCandidate, extra: NormalizedName | None
    ) -> list[AnyRequirement]:
        requires_python, found = self._metadata.parse(candidate, extra)
        if extra is None:
            self._requires_python[(candidate.name, candidate.version)] = requires_python
        return found

    def _direct_matches(
        self,
        identifier: Identity,
        reqs: list[ProjectRequirement],
        urls: set[str],
        incompatibilities: Mapping[Identifier, Iterator[AnyCandidate]],
    ) -> list[AnyCandidate]:
        """The one wheel a URL requirement names, if every other requirement on it allows it."""
        if len({without_fragment(u) for u in urls}) > 1:
            return []  # two URLs for one project: the conflict is explained with both lines
        candidate = direct_candidate(next(iter(urls)), identifier.name, identifier.extra, self.target)
        excluded = any(c == candidate for c in incompatibilities[identifier])
        specifier = self.specifier_for(identifier.name, [r for r in reqs if r.url is None])
        if excluded or not specifier.contains(candidate.version, prereleases=True):
            return []
        return [candidate]

    def is_direct(self, name: NormalizedName) -> bool:
        """Whether the request names this project by URL."""
        return name in self._direct
