"""The resolved lock as an immutable value, with canonical JSON both ways.

A lock is target-specific (no markers: the target answered them all), sorted, and free of
timestamps, so identical resolutions give identical bytes. Its digest is the sha256 of its
canonical JSON; a lock is content-addressed and never changes once stored.

What a consumer must know before installing it travels with it: `warnings` (a pin that is a
source distribution, so the image needs a compiler; a yanked version taken because something
pins it with `==`) and, per package, where its dependency metadata came from when it was not
a wheel's METADATA. Both appear in the JSON only when present, so locks without them keep
the bytes (and digests) they always had.

A lock without an accelerator variant that pulls a GPU runtime from the default index (PyPI's
Linux torch is a CUDA build) says so in its JSON (`accelerator_runtime`, derived from its
pins and present only then), so no reader takes it for a CPU lock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from packaging.utils import InvalidWheelFilename, NormalizedName, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from lockd.accelerator import runtime_without_variant
from lockd.errors import InvalidRequest
from lockd.inputs import (
    LockOptions,
    canonical_json,
    sha256_hex,
)
from lockd.routing import IndexPlan
from lockd.target import Target

__all__ = [
    "LOCK_SCHEMA",
    "METADATA_SOURCES",
    "ROOT",
    "WARNING_KINDS",
    "Lock",
    "LockWarning",
    "LockedFile",
    "LockedPackage",
    "accelerator_runtime_of",
]

# Where a package's Requires-Dist came from, when not from a wheel's METADATA (then: absent).
METADATA_SOURCES = ("pkg-info", "egg-info", "sandbox", "override")
WARNING_KINDS = ("sdist", "yanked")

LOCK_SCHEMA = 1
ROOT = "-r requirements.in"  # the `via` entry of a top-level requirement, as pip-compile writes it


@dataclass(frozen=True, slots=True)
class LockedFile:
    """One installable artifact of a pinned version, with the sha256 pip will check."""

    filename: str
    url: str
    sha256: str
    size: int | None
    kind: Literal["wheel", "sdist"]

    def to_json(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "url": self.url,
            "sha256": self.sha256,
            "size": self.size,
            "kind": self.kind,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LockedFile:
        kind: Literal["wheel", "sdist"] = "wheel" if data["kind"] == "wheel" else "sdist"
        return cls(data["filename"], data["url"], data["sha256"], data.get("size"), kind)


@dataclass(frozen=True, slots=True)
class LockedPackage:
    """One pinned project: version, the index it came from, its files, and why it is here."""

    name: NormalizedName
    version: Version
    index: str
    files: tuple[LockedFile, ...]
    dependencies: tuple[NormalizedName, ...]
    via: tuple[str, ...]  # parent project names, or ROOT / "-c constraints"
    requires_python: str | None = None
    metadata: str | None = None  # one of METADATA_SOURCES; None: a wheel's METADATA
    direct: bool = False  # named by URL in the request (PEP 610 direct reference): `index` is ""

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"

    def files_best_first(self, target: Target) -> tuple[LockedFile, ...]:
        """The files in the order pip prefers them on the target at its minimum level.

        Wheels that install there by tag rank, then the sdist, then the wheels only machines
        at a newer level install (by their rank on the newest), then anything else by name.
        """

        def order(file: LockedFile) -> tuple[int, int, str]:
            if file.kind == "sdist":
                return (1, 0, file.filename)
            try:
                tags = parse_wheel_filename(file.filename)[3]
            except InvalidWheelFilename:
                return (3, 0, file.filename)
            rank = target.wheel_rank(tags)
            if rank is not None:
                return (0, rank, file.filename)
            return (2, target.newer_host_rank(tags), file.filename)

        return tuple(sorted(self.files, key=order))

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "name": self.name,
            "version": str(self.version),
            "index": self.index,
            "requires_python": self.requires_python,
            "dependencies": list(self.dependencies),
            "via": list(self.via),
            "files": [f.to_json() for f in self.files],
        }
        if self.metadata is not None:
            found["metadata"] = self.metadata
        if self.direct:
            found["direct"] = True
        return found

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LockedPackage:
        return cls(
            name=canonicalize_name(data["name"]),
            version=Version(data["version"]),
            index=data["index"],
            files=tuple(LockedFile.from_json(f) for f in data["files"]),
            dependencies=tuple(canonicalize_name(d) for d in data["dependencies"]),
            via=tuple(data["via"]),
            requires_python=data.get("requires_python"),
            metadata=data.get("metadata"),
            direct=bool(data.get("direct", False)),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LockWarning:
    """Something the consumer of a lock must know: `kind` is one of WARNING_KINDS."""

    kind: str
    package: NormalizedName
    version: Version
    message: str

    def to_json(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "package": self.package,
            "version": str(self.version),
            "message": self.message,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LockWarning:
        return cls(
            kind=str(data["kind"]),
            package=canonicalize_name(data["package"]),
            version=Version(data["version"]),
            message=str(data["message"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Lock:
    """A complete, target-specific resolution of one input. `from_json(to_json())` is equal to it."""

    input_digest: str
    target: Target
    plan: IndexPlan
    requirements: tuple[str, ...]  # canonical top-level requirements, sorted
    constraints: tuple[str, ...]
    options: LockOptions
    packages: tuple[LockedPackage, ...]
    warnings: tuple[LockWarning, ...] = ()
    # `canonical_bytes` once worked out: a request digests, renders and stores its lock about
    # nine times, and each took ~4 ms of a 300-pin lock's. Not part of the value: not compared,
    # hashed or shown, and `replace` gives a lock without it.
    _canonical: bytes | None = field(default=None, init=False, repr=False, compare=False, hash=False)
    # Likewise its digest (asked seven times a request) and `accelerator_runtime` (asked by the
    # JSON and by requirements.txt), each a pass over the whole lock: kept, in a 1-tuple as None
    # is an answer.
    _digest: str | None = field(default=None, init=False, repr=False, compare=False, hash=False)
    _runtime: tuple[str | None] | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )

    @classmethod
    def build(
        cls,
        *,
        input_digest: str,
        target: Target,
        plan: IndexPlan,
        requirements: Iterable[str],
        constraints: Iterable[str],
        options: LockOptions,
        packages: Iterable[LockedPackage],
        warnings: Iterable[LockWarning] = (),
    ) -> Lock:
        """Sorts everything that has an order of its own, so equal locks are equal values."""
        ordered = []
        for package in sorted(packages, key=lambda p: p.name):
            files = tuple(sorted(package.files, key=lambda f: f.filename))
            ordered.append(
                LockedPackage(
                    name=package.name,
                    version=package.version,
                    index=package.index,
                    files=files,
                    dependencies=tuple(sorted(set(package.dependencies))),
                    via=tuple(sorted(set(package.via))),
                    requires_python=package.requires_python,
                    metadata=package.metadata,
                    direct=package.direct,
                )
            )
        return cls(
            input_digest=input_digest,
            target=target,
            plan=plan,
            requirements=tuple(sorted(set(requirements))),
            constraints=tuple(sorted(set(constraints))),
            options=options,
            packages=tuple(ordered),
            warnings=tuple(sorted(set(warnings), key=lambda w: (w.package, w.kind, w.message))),
        )

    @property
    def accelerator_runtime(self) -> str | None:
        """`CUDA 12 runtime from PyPI` when the lock has no variant but pulls one; else None."""
        found = self._runtime
        if found is None:
            found = (runtime_without_variant(self),)
            object.__setattr__(self, "_runtime", found)
        return found[0]

    def to_json(self) -> dict[str, Any]:
        found = {
            "lockd-lock": LOCK_SCHEMA,
            "input_digest": self.input_digest,
            "target": self.target.to_json(),
            "indexes": self.plan.to_json(),
            "requirements": list(self.requirements),
            "constraints": list(self.constraints),
            "options": self.options.to_json(),
            "packages": [p.to_json() for p in self.packages],
        }
        if self.warnings:
            found["warnings"] = [w.to_json() for w in self.warnings]
        runtime = self.accelerator_runtime
        if runtime is not None:
            found["accelerator_runtime"] = runtime
        return found

    def canonical_bytes(self) -> bytes:
        found = self._canonical
        if found is None:  # two threads may both work it out: the same bytes either way
            found = canonical_json(self.to_json())
            object.__setattr__(self, "_canonical", found)
        return found

    @property
    def digest(self) -> str:
        found = self._digest
        if found is None:
            found = sha256_hex(self.canonical_bytes())
            object.__setattr__(self, "_digest", found)
        return found

    @property
    def pins(self) -> dict[NormalizedName, Version]:
        return {p.name: p.version for p in self.packages}

    def package(self, name: str) -> LockedPackage | None:
        wanted = canonicalize_name(name)
        for package in self.packages:
            if package.name == wanted:
                return package
        return None

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | bytes | str) -> Lock:
        if isinstance(data, bytes | str):
            data = json.loads(data)
        if not isinstance(data, Mapping) or data.get("lockd-lock") != LOCK_SCHEMA:
            raise InvalidRequest(f"not a lockd lock of schema {LOCK_SCHEMA}")
        return cls(
            input_digest=data["input_digest"],
            target=Target.from_json(data["target"]),
            plan=IndexPlan.from_json(data["indexes"]),
            requirements=tuple(data["requirements"]),
            constraints=tuple(data["constraints"]),
            options=LockOptions.from_json(data["options"]),
            packages=tuple(LockedPackage.from_json(p) for p in data["packages"]),
            warnings=tuple(LockWarning.from_json(w) for w in data.get("warnings", ())),
        )


_RUNTIME_KEY = b'{"accelerator_runtime":'


def accelerator_runtime_of(canonical: bytes) -> str | None:
    """A stored lock's `accelerator_runtime`, read without parsing the whole lock.

    Canonical JSON sorts its keys, and `accelerator_runtime` sorts first: it is there, at the
    start, or not at all. Serving a stored lock reads this on every request.
    """
    if not canonical.startswith(_RUNTIME_KEY):
        return None
    head = canonical[len(_RUNTIME_KEY) : len(_RUNTIME_KEY) + 1024].decode("utf-8", "replace")
    value, _end = json.JSONDecoder().raw_decode(head)
    return value if isinstance(value, str) else None
