"""The `Lock` from resolvelib's result: pins, their files and hashes, and the graph.

Each pinned project keeps every wheel that installs on a machine of the target at its level
or any newer one, and the sdist where no wheel installs at the target's level (what pip
builds there), each with its sha256; its edges in
both directions (`dependencies` and `via`, the root being `lockd.lock.ROOT` and constraints
`CONSTRAINTS_VIA`); the index that served it; and its `Requires-Python`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TypeAlias

from packaging.utils import NormalizedName
from resolvelib.resolvers import Result

from lockd.deadline import carry_deadline
from lockd.inputs import LockRequest
from lockd.lock import ROOT, Lock, LockedFile, LockedPackage
from lockd.resolver.candidates import AnyCandidate, AnyRequirement, Identifier, Identity, ProjectCandidate
from lockd.resolver.provider import IndexSource, Provider
from lockd.simple import DistFile

__all__ = ["CONSTRAINTS_VIA", "build_lock"]

CONSTRAINTS_VIA = "-c constraints"

# resolvelib defines Result as a generic NamedTuple for type checkers only.
ResolverResult: TypeAlias = "Result[AnyRequirement, AnyCandidate, Identifier]"


def build_lock(
    request: LockRequest,
    provider: Provider,
    result: ResolverResult,
    index: IndexSource,
    pool: ThreadPoolExecutor,
) -> Lock:
    """The lock of `result`; every file's sha256 is read through `index`, in parallel on `pool`."""
    pinned = {
        c.name: c for c in result.mapping.values() if isinstance(c, ProjectCandidate) and c.extra is None
    }
    dependencies, via = _edges(result, pinned)
    for name in provider.constraints:
        if name in via:
            via[name].add(CONSTRAINTS_VIA)
    files = {name: _lock_files(candidate) for name, candidate in pinned.items()}
    all_files = [f for chosen in files.values() for f in chosen]
    hashes = dict(
        zip((f.url for f in all_files), pool.map(carry_deadline(index.file_sha256), all_files), strict=True)
    )
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
                requires_python=provider.requires_python_of(name, candidate.version),
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


def _edges(
    result: ResolverResult, pinned: dict[NormalizedName, ProjectCandidate]
) -> tuple[dict[NormalizedName, set[NormalizedName]], dict[NormalizedName, set[str]]]:
    """(dependencies, via) of each pinned project; an extra's edges count for its project."""
    dependencies: dict[NormalizedName, set[NormalizedName]] = {name: set() for name in pinned}
    via: dict[NormalizedName, set[str]] = {name: set() for name in pinned}
    for identity in result.mapping:
        if not isinstance(identity, Identity):
            continue  # `<python>` is no package
        name = identity.name
        for child in result.graph.iter_children(identity):
            if isinstance(child, Identity) and child.name != name:
                dependencies[name].add(child.name)
        for parent in result.graph.iter_parents(identity):
            if parent is None:
                via[name].add(ROOT)
            elif isinstance(parent, Identity) and parent.name != name:
                via[name].add(parent.name)
    return dependencies, via


def _lock_files(candidate: ProjectCandidate) -> tuple[DistFile, ...]:
    """What pip may install on any machine of the target, best first for its minimum level.

    The wheels that install at the target's level, else its sdist (pip builds it there), then
    the wheels only newer machines install: a glibc 2.36 host given a 2.28 lock of a project
    with only `manylinux_2_31` wheels picks the wheel and never has to build.
    """
    wheels = tuple(f for f in candidate.files if f.kind == "wheel")
    at_level = wheels or tuple(f for f in candidate.files if f.kind == "sdist")
    return at_level + candidate.newer
