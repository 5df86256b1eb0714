"""The `Lock` from resolvelib's result: pins, their files and hashes, and the graph.

Each pinned project keeps every wheel that installs on a machine of the target at its level
or any newer one, and the sdist where no wheel installs at the target's level (what pip
builds there), each with its sha256; its edges in
both directions (`dependencies` and `via`, the root being `lockd.lock.ROOT` and constraints
`CONSTRAINTS_VIA`); the index that served it; its `Requires-Python`; where its metadata came
from when not a wheel. The lock warns of every pin that is an sdist (the consumer needs a
compiler) or a yanked version taken because something pins it with `==`.
"""

from __future__ import annotations

from typing import TypeAlias

from packaging.utils import NormalizedName
from resolvelib.resolvers import Result

from lockd.errors import TamperedFile
from lockd.index.threads import TaskScope
from lockd.inputs import LockRequest
from lockd.lock import ROOT, Lock, LockedFile, LockedPackage, LockWarning
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
    tasks: TaskScope,
) -> Lock:
    """The lock of `result`; every file's sha256 the index does not give is read through `index`,
    in parallel on `tasks`."""
    pinned = {
        c.name: c for c in result.mapping.values() if isinstance(c, ProjectCandidate) and c.extra is None
    }
    dependencies, via = _edges(result, pinned)
    for name in provider.constraints:
        if name in via:
            via[name].add(CONSTRAINTS_VIA)
    files = {name: _lock_files(candidate) for name, candidate in pinned.items()}
    warnings = [w for name, c in pinned.items() if (w := _warning(c, files[name], via[name])) is not None]
    all_files = [f for chosen in files.values() for f in chosen]
    # A file the index gives a sha256 for is locked with it, as `file_sha256` would answer: a
    # fully cached resolution of 200 pins sent hundreds through the pool, 6% of its samples.
    hashes = {f.url: f.sha256 for f in all_files if f.sha256 is not None}
    unhashed = [f for f in all_files if f.sha256 is None]
    hashes.update(zip((f.url for f in unhashed), tasks.map(index.file_sha256, unhashed), strict=True))
    direct = {name for name in pinned if provider.is_direct(name)}
    for name in direct:
        for file in files[name]:
            hashes[file.url] = _verified(index, file)
    packages = []
    for name, candidate in pinned.items():
        locked = tuple(LockedFile(f.filename, f.url, hashes[f.url], f.size, f.kind) for f in files[name])
        packages.append(
            LockedPackage(
                name=name,
                version=candidate.version,
                index="" if name in direct else request.plan.index_for(name),
                files=locked,
                dependencies=tuple(dependencies[name]),
                via=tuple(via[name]),
                requires_python=provider.requires_python_of(name, candidate.version),
                metadata=provider.metadata_source_of(candidate),
                direct=name in direct,
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
        warnings=warnings,
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


def _warning(candidate: ProjectCandidate, files: tuple[DistFile, ...], via: set[str]) -> LockWarning | None:
    """What installing this pin asks of the consumer: a compiler for an sdist; trust in a yanked file."""
    name, version = candidate.name, candidate.version
    if files and all(f.is_yanked for f in files):
        reason = files[0].yanked
        because = f" ({reason})" if reason else ""
        who = ", ".join(sorted(via)) or "the request"
        return LockWarning(
            kind="yanked",
            package=name,
            version=version,
            message=f"{name} {version} is yanked{because}; it is locked because {who} pins it with ==, as pip allows",
        )
    if files and all(f.kind == "sdist" for f in files):
        return LockWarning(
            kind="sdist",
            package=name,
            version=version,
            message=f"{name} {version} is locked as a source distribution ({files[0].filename}): installing "
            "the lock builds it, so the image needs a compiler and its build requirements",
        )
    return None


def _verified(index: IndexSource, file: DistFile) -> str:
    """A URL wheel's sha256 as streamed; it must equal the `#sha256=` the request gave, if any."""
    streamed = index.file_sha256(file.replace(sha256=None))
    if file.sha256 is not None and streamed.lower() != file.sha256.lower():
        raise TamperedFile(
            f"{file.url} does not match the sha256 its requirement gives",
            context={"url": file.url, "expected": file.sha256, "actual": streamed},
        )
    return streamed


def _lock_files(candidate: ProjectCandidate) -> tuple[DistFile, ...]:
    """What pip may install on any machine of the target, best first for its minimum level.

    The wheels that install at the target's level, else its sdist (pip builds it there), then
    the wheels only newer machines install: a glibc 2.36 host given a 2.28 lock of a project
    with only `manylinux_2_31` wheels picks the wheel and never has to build.
    """
    wheels = tuple(f for f in candidate.files if f.kind == "wheel")
    at_level = wheels or tuple(f for f in candidate.files if f.kind == "sdist")
    return at_level + candidate.newer
