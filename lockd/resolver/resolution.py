"""`resolve`: one resolution of a `LockRequest`, from the request's lines to a checked `Lock`.

It runs resolvelib with the `Provider`, reports progress through `ResolveReporter` hooks and
enforces the deadline at every round, translates resolvelib's exceptions into `LockdError`s
(`explain`), builds the lock (`build`) and checks it holds one accelerator variant's builds.
resolvelib runs its own loop in `Rounds`, which keeps the unsatisfied criteria between rounds
instead of asking every criterion twice a round: that dominated the resolver's time on graphs of
hundreds of pins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Protocol

import resolvelib
from packaging.utils import NormalizedName
from packaging.version import Version
from resolvelib.resolvers import Criterion, ResolverException
from resolvelib.resolvers.resolution import _build_result as build_result  # for _Resolver; >=1.2

from lockd import accelerator
from lockd.deadline import deadline_scope
from lockd.errors import ResolutionImpossible
from lockd.inputs import LockRequest
from lockd.lock import Lock
from lockd.resolver.build import ResolverResult, build_lock
from lockd.resolver.candidates import (
    AnyCandidate,
    AnyRequirement,
    Identifier,
    ProjectCandidate,
    ProjectRequirement,
)
from lockd.resolver.dependencies import marker_true, split_extras
from lockd.resolver.explain import explain_impossible
from lockd.resolver.provider import IndexSource, Provider
from lockd.resolver.rounds import Rounds

__all__ = ["ResolveReporter", "resolve"]

_MAX_ROUNDS = 5000


class _Resolver(resolvelib.Resolver[AnyRequirement, AnyCandidate, Identifier]):
    """`resolvelib.Resolver`, running `Rounds`."""

    def resolve(  # type: ignore[override]
        self, requirements: Iterable[AnyRequirement], max_rounds: int = 100
    ) -> ResolverResult:
        assert isinstance(self.provider, Provider) and isinstance(self.reporter, _Progress)
        state = Rounds(self.provider, self.reporter).resolve(requirements, max_rounds=max_rounds)
        return build_result(state)


class ResolveReporter(Protocol):
    """Progress hooks for a display; called on the resolving thread, so keep them cheap."""

    def on_pinned(self, name: NormalizedName, version: Version) -> None: ...

    def on_backtrack(self, name: NormalizedName) -> None: ...


class _Progress(resolvelib.BaseReporter[AnyRequirement, AnyCandidate, Identifier]):
    """resolvelib's reporter hooks: the deadline each round, pins and backtracks to `reporter`."""

    def __init__(self, provider: Provider, reporter: ResolveReporter | None) -> None:
        self._provider = provider
        self._reporter = reporter

    def starting_round(self, index: int) -> None:
        self._provider.check_deadline()

    def pinning(self, candidate: AnyCandidate) -> None:
        if self._reporter is not None and isinstance(candidate, ProjectCandidate) and candidate.extra is None:
            self._reporter.on_pinned(candidate.name, candidate.version)

    def rejecting_candidate(
        self, criterion: Criterion[AnyRequirement, AnyCandidate], candidate: AnyCandidate
    ) -> None:
        if self._reporter is not None and isinstance(candidate, ProjectCandidate):
            self._reporter.on_backtrack(candidate.name)


def resolve(
    request: LockRequest,
    index: IndexSource,
    *,
    reporter: ResolveReporter | None = None,
    deadline: float | None = None,
    preferences: Mapping[NormalizedName, Version] | None = None,
) -> Lock:
    """The lock pip would install on `request.target`, with every file's sha256.

    `deadline` is a `time.monotonic()` value; past it `ResolutionTimeout` is raised. Errors:
    `UnknownProject`, `NoMatchingDistribution`, `ResolutionImpossible`, `SdistNeedsBuild`,
    `IndexUnavailable`, `TamperedFile`, `CudaMismatch`. `preferences` are versions tried first
    where they still satisfy and install (a name's current pins: only what a change needs moves).
    """
    # Every network read and long loop under this call ends at `deadline` (`lockd.deadline`),
    # also on the index's threads: the scope's tasks run under it. The threads outlive this
    # call; what it queued there and did not need is cancelled when the scope closes.
    with (
        deadline_scope(deadline),
        index.workers.scope() as tasks,
    ):
        provider = Provider(request, index, tasks, deadline, preferences=preferences)
        roots: list[AnyRequirement] = []
        for item in request.requirements:
            marker = item.requirement.marker
            if marker is not None and not marker_true(request.target, marker, ""):
                continue  # not for this target, as pip would skip it there
            found = split_extras(item.requirement, item)
            if item.requirement.url:
                found = [
                    replace(r, url=item.requirement.url) if isinstance(r, ProjectRequirement) else r
                    for r in found
                ]
            roots.extend(found)
        provider.demands.note_roots(roots)
        provider.announce(roots)
        resolver = _Resolver(provider, _Progress(provider, reporter))
        try:
            result = resolver.resolve(roots, max_rounds=_MAX_ROUNDS)
        except resolvelib.ResolutionImpossible as exc:
            raise explain_impossible(provider, exc) from None
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
        lock = build_lock(request, provider, result, index, tasks)
    accelerator.check_consistency(lock)
    return lock
