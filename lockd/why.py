"""Why a package is in a lock: every path from a root requirement to it along the `via` edges.

A lock records, for each pinned package, the parents that required it (`via`, with `ROOT` for a
top-level requirement) and the canonical root requirements and constraints. It records neither
the requirements.in line of a root requirement (the input digest ignores line order) nor the
specifier a parent's metadata put on its dependency. So a path's first step carries the root
requirement and its specifier, plus its line when the caller passes the parsed requirements.in;
later steps carry the constraints that name them, and no specifier of their own.

A server has no requirements.in, only the stored canonical input: its requirements sorted by
their normal form. There a step's `line` is the requirement's 1-based position in that list,
and the answer says so (`Why.lines` is `canonical input`), never passing a position off as a
requirements.in line.

Paths are simple (no package twice) and listed shortest first. A large lock can hold a great
many paths to a popular package, so enumeration stops at `max_paths` and says it did.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from lockd.errors import NotFound
from lockd.inputs import InputRequirement
from lockd.lock import ROOT, Lock, LockedPackage

__all__ = [
    "CANONICAL_INPUT",
    "DEFAULT_MAX_PATHS",
    "REQUIREMENTS_IN",
    "PackageNotInLock",
    "RequirementPath",
    "Step",
    "Why",
    "constraints_by_name",
    "render_why_text",
    "requirements_by_name",
    "why",
]

DEFAULT_MAX_PATHS = 200
# What a step's `line` counts: requirements.in lines, or positions in the stored canonical input.
REQUIREMENTS_IN = "requirements.in"
CANONICAL_INPUT = "canonical input"
# Partial paths extended before giving up: bounds the work on a dense graph whatever max_paths is.
_MAX_EXTENSIONS = 200_000


class PackageNotInLock(NotFound):
    code = "package-not-in-lock"
    status = 404
    title = "Package not in lock"


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One package on a path, with what brought it in when the lock records that."""

    package: NormalizedName
    version: Version
    requirement: str | None  # the root requirement, on a path's first step only
    specifier: SpecifierSet | None  # that requirement's specifier
    line: int | None  # its requirements.in line, when the caller gave the parsed file
    constraints: tuple[str, ...]  # constraints naming this package

    def to_json(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "version": str(self.version),
            "requirement": self.requirement,
            "specifier": None if self.specifier is None else str(self.specifier),
            "line": self.line,
            "constraints": list(self.constraints),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Step:
        specifier = data["specifier"]
        return cls(
            package=canonicalize_name(data["package"]),
            version=Version(data["version"]),
            requirement=data["requirement"],
            specifier=None if specifier is None else SpecifierSet(specifier),
            line=data["line"],
            constraints=tuple(data["constraints"]),
        )

    def describe(self) -> str:
        return f"{self.package} {self.version}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RequirementPath:
    """Root requirement first, the package asked about last; each step required the next."""

    steps: tuple[Step, ...]

    @property
    def names(self) -> tuple[NormalizedName, ...]:
        return tuple(step.package for step in self.steps)

    def to_json(self) -> dict[str, Any]:
        return {"steps": [step.to_json() for step in self.steps]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RequirementPath:
        return cls(steps=tuple(Step.from_json(step) for step in data["steps"]))

    def describe(self, lines: str = REQUIREMENTS_IN) -> str:
        """`torchvision==0.20.1 (requirements.in line 1) → torchvision 0.20.1 → torch 2.5.1`.

        With `lines` = CANONICAL_INPUT: `(canonical input requirement 3)`.
        """
        first = self.steps[0]
        if first.line is None:
            where = lines
        elif lines == REQUIREMENTS_IN:
            where = f"requirements.in line {first.line}"
        else:
            where = f"{lines} requirement {first.line}"
        asked = where if first.requirement is None else f"{first.requirement} ({where})"
        return " → ".join([asked, *(step.describe() for step in self.steps)])


@dataclass(frozen=True, slots=True, kw_only=True)
class Why:
    """The answer for one package: its pin and the paths that bring it in."""

    package: NormalizedName
    version: Version
    paths: tuple[RequirementPath, ...]
    truncated: bool  # more paths exist than `paths` holds
    lines: str = REQUIREMENTS_IN  # what each first step's `line` counts

    def to_json(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "version": str(self.version),
            "paths": [path.to_json() for path in self.paths],
            "truncated": self.truncated,
            "lines": self.lines,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Why:
        return cls(
            package=canonicalize_name(data["package"]),
            version=Version(data["version"]),
            paths=tuple(RequirementPath.from_json(path) for path in data["paths"]),
            truncated=bool(data["truncated"]),
            lines=data["lines"],
        )


def _applies(requirement: Requirement, lock: Lock) -> bool:
    if requirement.marker is None:
        return True
    environment = dict(lock.target.marker_environment)
    environment["extra"] = ""
    return requirement.marker.evaluate(environment)


def _by_name(lines: Iterable[str], lock: Lock) -> dict[NormalizedName, tuple[Requirement, ...]]:
    found: dict[NormalizedName, list[Requirement]] = {}
    for line in lines:
        requirement = Requirement(line)
        if _applies(requirement, lock):
            found.setdefault(canonicalize_name(requirement.name), []).append(requirement)
    return {name: tuple(requirements) for name, requirements in found.items()}


def requirements_by_name(lock: Lock) -> dict[NormalizedName, tuple[Requirement, ...]]:
    """The lock's root requirements whose marker holds on its target, by the name they require."""
    return _by_name(lock.requirements, lock)


def constraints_by_name(lock: Lock) -> dict[NormalizedName, tuple[Requirement, ...]]:
    """The lock's constraints whose marker holds on its target, by the name they constrain."""
    return _by_name(lock.constraints, lock)


def _chains(
    packages: Mapping[NormalizedName, LockedPackage], target: NormalizedName, max_paths: int
) -> tuple[list[tuple[NormalizedName, ...]], bool]:
    """Root-first name chains ending at `target`, breadth first so the shortest come first."""
    found: list[tuple[NormalizedName, ...]] = []
    frontier: list[tuple[NormalizedName, ...]] = [(target,)]
    extensions = 0
    while frontier and len(found) < max_paths and extensions <= _MAX_EXTENSIONS:
        longer: list[tuple[NormalizedName, ...]] = []
        for chain in frontier:
            head = packages[chain[0]]
            if ROOT in head.via:
                found.append(chain)
            for parent in head.via:
                # ROOT and "-c constraints" are not package names; a parent seen already is a cycle
                if parent in packages and parent not in chain:
                    longer.append((canonicalize_name(parent), *chain))
                    extensions += 1
        frontier = longer
    found.sort(key=lambda chain: (len(chain), chain))
    truncated = bool(frontier) or len(found) > max_paths
    return found[:max_paths], truncated


def why(
    lock: Lock,
    package: str,
    *,
    requirements: Iterable[InputRequirement] = (),
    lines: str = REQUIREMENTS_IN,
    max_paths: int = DEFAULT_MAX_PATHS,
) -> Why:
    """Every path from a root requirement to `package` (up to `max_paths`, shortest first).

    `requirements` is the parsed requirements.in the lock came from, when the caller has it: it
    gives each root requirement its line (`lines` says what those numbers count). Raises
    `PackageNotInLock` for a name the lock lacks.
    """
    name = canonicalize_name(package)
    packages = {p.name: p for p in lock.packages}
    if name not in packages:
        raise PackageNotInLock(
            f"{name} is not in this lock",
            hint="GET the lock to see the packages it pins",
            context={"package": name, "input_digest": lock.input_digest},
        )
    line_of = {r.canonical: r.line for r in requirements}
    roots = requirements_by_name(lock)
    constrained = {
        name: tuple(_canonical(c) for c in constraints)
        for name, constraints in constraints_by_name(lock).items()
    }
    chains, truncated = _chains(packages, name, max_paths)
    paths: list[RequirementPath] = []
    for chain in chains:
        rest = tuple(_step(packages[n], constrained, None, None) for n in chain[1:])
        starts: tuple[Requirement | None, ...] = roots.get(chain[0]) or (None,)
        for root in starts:
            first = _step(packages[chain[0]], constrained, root, line_of)
            paths.append(RequirementPath(steps=(first, *rest)))
    return Why(
        package=name, version=packages[name].version, paths=tuple(paths), truncated=truncated, lines=lines
    )


def _step(
    package: LockedPackage,
    constrained: Mapping[NormalizedName, tuple[str, ...]],
    root: Requirement | None,
    lines: Mapping[str, int | None] | None,
) -> Step:
    text = None if root is None else _canonical(root)
    return Step(
        package=package.name,
        version=package.version,
        requirement=text,
        specifier=None if root is None else root.specifier,
        line=None if text is None or lines is None else lines.get(text),
        constraints=constrained.get(package.name, ()),
    )


def _canonical(requirement: Requirement) -> str:
    """The requirement as the lock spells it (`InputRequirement.canonical`): the key for its line."""
    return InputRequirement(requirement=requirement, line=None, text=str(requirement)).canonical


def render_why_text(answer: Why) -> str:
    """Plain text, one line per path, for `lockd why` and the text/plain route."""
    out = [f"{answer.package} {answer.version} is in this lock through {_count(answer)}:"]
    out.extend(f"  {path.describe(answer.lines)}" for path in answer.paths)
    if not answer.paths:
        out.append("  (no path from a root requirement: the lock's `via` records are incomplete)")
    if answer.truncated:
        out.append(f"  … and more: the {len(answer.paths)} shortest are shown")
    constraints = answer.paths[0].steps[-1].constraints if answer.paths else ()
    if constraints:
        out.append("constrained by: " + ", ".join(constraints))
    return "\n".join(out) + "\n"


def _count(answer: Why) -> str:
    n = len(answer.paths)
    more = "at least " if answer.truncated else ""
    return f"{more}{n} path" + ("" if n == 1 else "s")
