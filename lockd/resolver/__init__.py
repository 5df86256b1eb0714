"""Resolve a `LockRequest` for its target into a `Lock`, with resolvelib, as pip would there.

Roles, after pip's resolvelib adapter (`pip/_internal/resolution/resolvelib/`):

- `provider.Provider` answers resolvelib's questions (identify, preference, matches,
  satisfaction, dependencies) and walks ahead of it, prefetching pages and metadata;
  `IndexSource` is what it needs from an index.
- `finder.Finder` is one project's page seen from the target: which files install, best
  first; PEP 592 yanks, PEP 700 `as_of`, pre-release rules; why a version does not install.
  `releases` groups its verdicts by version from the page's columns, and builds a version's
  files only when they are read.
- `candidates` holds the values resolvelib moves around: typed identifiers (`Identity(name,
  extra)`, `PYTHON`), requirements and candidates. `name[extra]` depends on `name==same
  version`, as in pip; the pseudo-project `<python>` carries each candidate's
  `Requires-Python`, so a version that rejects the target's Python is backtracked over.
- `dependencies` reads a candidate's metadata under the target's markers (PEP 508), never the
  host's; a version whose `Requires-Dist` pip cannot parse is backtracked over, as pip does.
- `explain` turns `ResolutionImpossible` and empty candidate sets into `LockdError`s.
- `build` makes the `Lock` from the result: files, hashes, the graph.
- `resolution.resolve` runs all of it under a deadline with progress hooks
  (`ResolveReporter`) and checks the lock holds one accelerator variant's builds
  (`lockd.accelerator.check_consistency`); `budget.timed_resolve` adds the time budget and
  the cost.

- `offers` answers `cuda=auto`: does a variant's index have builds of what the request pins;
  `preferences` says why a lock did not keep a preferred version (the request's
  `preferences`, e.g. another target's pins, are tried first by the provider).

Index routing is strict (`IndexPlan.index_for`).
"""

from __future__ import annotations

from lockd.resolver.budget import MeteredIndexSource, ResolveStats, timed_resolve
from lockd.resolver.build import CONSTRAINTS_VIA
from lockd.resolver.offers import variant_offers
from lockd.resolver.preferences import why_not_preferred
from lockd.resolver.provider import IndexSource
from lockd.resolver.resolution import ResolveReporter, resolve

__all__ = [
    "CONSTRAINTS_VIA",
    "IndexSource",
    "MeteredIndexSource",
    "ResolveReporter",
    "ResolveStats",
    "resolve",
    "timed_resolve",
    "variant_offers",
    "why_not_preferred",
]
