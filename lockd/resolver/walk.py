"""The prefetch walk: the pages and likely metadata of what a resolution will ask for next.

resolvelib asks for a dependency only once it pins the parent, so without the walk the network
wait grows with the depth of the graph. Each requirement announced (the roots, then every
candidate's dependencies) is followed on the resolution's fetch threads: the page of its project,
the metadata of the newest candidate that the one requirement allows, then that candidate's own
dependencies. An identity is followed once, so the walk costs at most one page and one metadata
fetch per project (and extra) it reaches; what it fetches is only ever a cache entry the
resolver may use, never an answer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence

from packaging.utils import NormalizedName

from lockd.errors import LockdError
from lockd.index.threads import TaskScope
from lockd.resolver.candidates import AnyRequirement, Identity, ProjectCandidate, ProjectRequirement
from lockd.resolver.dependencies import ParsedMetadata

__all__ = ["PrefetchWalk"]

# The candidates one requirement allows, best first; a candidate's dependencies (with its
# Requires-Python) for an extra or none.
CandidatesFor = Callable[[ProjectRequirement], Sequence[ProjectCandidate]]
DependenciesOf = Callable[[ProjectCandidate, NormalizedName | None], ParsedMetadata]


class PrefetchWalk:
    """One resolution's walk. Thread-safe; `stop` ends it."""

    def __init__(
        self, tasks: TaskScope, candidates_for: CandidatesFor, dependencies_of: DependenciesOf
    ) -> None:
        self._tasks = tasks
        # Bound methods of the provider that owns this walk: a cycle, which `stop` breaks so
        # the resolution's memos are freed by reference counting when it ends (see `stop`).
        self._candidates_for: CandidatesFor | None = candidates_for
        self._dependencies_of: DependenciesOf | None = dependencies_of
        self._seen: set[Identity] = set()
        self._lock = threading.Lock()
        self._warming = True
        # The walk starts at the first fetch the resolution needs (`start`); until then what is
        # announced waits here. A resolution its caches answer whole never walks: on a fully
        # cached 300-pin stack the walk's threads took the GIL from the resolving thread for
        # about a tenth of its time and fetched nothing.
        self._walking = False
        self._waiting: list[ProjectRequirement] = []

    @property
    def walking(self) -> bool:
        return self._walking

    def announce(self, requirements: Iterable[AnyRequirement]) -> None:
        """Follows the requirements on projects (or extras) not seen before, once the walk runs."""
        for requirement in requirements:
            if not isinstance(requirement, ProjectRequirement):
                continue
            with self._lock:
                if not self._warming or requirement.identity in self._seen:
                    continue
                self._seen.add(requirement.identity)
                if not self._walking:
                    self._waiting.append(requirement)
                    continue
            # Under the resolution's deadline; dropped once the resolution ended.
            self._tasks.submit(self._warm, requirement)

    def start(self) -> None:
        """The resolution needs a fetch: the walk starts, from everything announced so far."""
        with self._lock:
            if self._walking or not self._warming:
                return
            self._walking = True
            waiting, self._waiting = self._waiting, []
        for requirement in waiting:
            self._tasks.submit(self._warm, requirement)

    def stop(self) -> None:
        """Queued steps return at once: the resolution no longer needs them.

        The walk also lets go of the provider's methods. Holding them, the provider, its walk and
        everything the provider memoised (thousands of tuples a 300-pin resolution) formed one
        garbage cycle per resolution, left to the cycle collector: on a server answering fully
        cached requests that was a young collection of 10-17 ms every other request and, every
        twenty or so, a 190 ms one of the generation above.
        """
        with self._lock:
            self._warming = False
            self._candidates_for = None
            self._dependencies_of = None

    def _warm(self, requirement: ProjectRequirement) -> None:
        """Fetches the likely candidate's page and metadata, then walks on to its dependencies."""
        with self._lock:
            candidates_for, dependencies_of = self._candidates_for, self._dependencies_of
        if candidates_for is None or dependencies_of is None:
            return  # stopped
        try:
            likely = next(iter(candidates_for(requirement)), None)
            if likely is None or not self._warming:
                return
            _requires_python, found = dependencies_of(likely, requirement.extra)
        except LockdError:
            return  # find_matches / get_dependencies ask again and report it with the requirement chain
        self.announce(found)
