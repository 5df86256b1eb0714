"""A directory of OSV files as an advisory source (`LOCKD_ADVISORIES_DIR`).

The operator points lockd at a tree of OSV records, YAML or JSON, one advisory per file, e.g. a
clone of the PyPA Advisory Database (https://github.com/pypa/advisory-database) that they keep
current. The tree is read once into an `AdvisoryIndex` (name → advisories, compiled for
matching), so checking a lock costs a dictionary lookup per pin; `refresh()` re-reads it only
when files were added, removed or changed. A file that does not parse is skipped with a logged
reason and never fails the load; a directory that is missing, or holds no advisory file at all,
is `AdvisoriesUnavailable` (a misconfiguration, not "no advisories").

YAML is read with the base loader, which keeps every scalar a string: OSV is JSON-shaped, and
YAML's own typing would turn a version `1.10` into the float 1.1 and a timestamp into a datetime.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from packaging.utils import NormalizedName
from packaging.version import Version

from lockd.advisories.model import Advisory, InvalidAdvisory, parse_osv
from lockd.advisories.ranges import AffectedVersions
from lockd.advisories.source import AdvisoriesUnavailable

__all__ = ["MAX_FILE_BYTES", "AdvisoryDirectory", "AdvisoryIndex", "SkippedFile", "load_advisory_directory"]

log = logging.getLogger(__name__)

# OSV records are a few KB; the largest in the PyPA database is under 100 KB.
MAX_FILE_BYTES = 4 * 1024 * 1024
_SUFFIXES = (".yaml", ".yml", ".json")
# libyaml's loader is ~6x faster than the pure-Python one (2,600 files: ~4 s against ~25 s).
_YAML_LOADER: type[yaml.BaseLoader] = getattr(yaml, "CBaseLoader", yaml.BaseLoader)


@dataclass(frozen=True, slots=True, kw_only=True)
class SkippedFile:
    path: str
    reason: str


class AdvisoryIndex:
    """Advisories by the PEP 503 name of every package they affect; withdrawn ones kept apart.

    An `AdvisorySource` itself, so advisories held in memory can be checked like any other.

    Immutable once built and safe to share between threads. Cost: building compiles each
    affected entry once (`AffectedVersions`); `affecting` is one lookup per pin plus the range
    checks of that project's advisories.
    """

    def __init__(
        self,
        advisories: Iterable[Advisory],
        *,
        skipped: Iterable[SkippedFile] = (),
        description: str = "advisory index",
    ) -> None:
        self.description = description
        by_name: dict[NormalizedName, list[tuple[Advisory, AffectedVersions]]] = {}
        kept: dict[str, Advisory] = {}
        withdrawn = 0
        for advisory in advisories:
            if advisory.id in kept:
                continue  # the same record twice (a copy, a JSON twin of a YAML file): the first wins
            kept[advisory.id] = advisory
            if advisory.withdrawn is not None:
                withdrawn += 1
                continue
            for entry in advisory.affected:
                compiled = AffectedVersions(entry)
                for problem in compiled.problems:
                    log.warning("advisory %s: %s", advisory.id, problem, extra={"advisory": advisory.id})
                by_name.setdefault(entry.name, []).append((advisory, compiled))
        self.advisories: tuple[Advisory, ...] = tuple(kept.values())
        self.withdrawn = withdrawn
        self.skipped: tuple[SkippedFile, ...] = tuple(skipped)
        self._by_name = {name: tuple(entries) for name, entries in by_name.items()}

    def __len__(self) -> int:
        return len(self.advisories)

    def affecting_version(self, name: NormalizedName, version: Version) -> tuple[Advisory, ...]:
        found: dict[str, Advisory] = {}
        for advisory, compiled in self._by_name.get(name, ()):
            if advisory.id not in found and compiled.covers(version):
                found[advisory.id] = advisory
        return tuple(found.values())

    def affecting(self, pins: Mapping[NormalizedName, Version]) -> dict[NormalizedName, tuple[Advisory, ...]]:
        found: dict[NormalizedName, tuple[Advisory, ...]] = {}
        for name, version in pins.items():
            advisories = self.affecting_version(name, version)
            if advisories:
                found[name] = advisories
        return found


def _advisory_files(root: Path) -> Iterator[Path]:
    """Every .yaml/.yml/.json below `root`, sorted, skipping hidden directories such as `.git`."""
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(files):
            if name.endswith(_SUFFIXES) and not name.startswith("."):
                yield Path(folder, name)


def _read(path: Path) -> Advisory:
    """Raises InvalidAdvisory (or OSError) with the reason the file cannot be used."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InvalidAdvisory(f"{size} bytes, more than the {MAX_FILE_BYTES} an advisory may have")
    raw = path.read_bytes()
    try:
        data = json.loads(raw) if path.suffix == ".json" else yaml.load(raw, Loader=_YAML_LOADER)
    except (ValueError, yaml.YAMLError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidAdvisory(f"not valid {path.suffix[1:].upper()}: {reason[:200]}") from None
    return parse_osv(data)


def load_advisory_directory(root: Path) -> AdvisoryIndex:
    """Read every OSV file under `root` into an index. Raises `AdvisoriesUnavailable`."""
    if not root.is_dir():
        raise AdvisoriesUnavailable(
            f"the advisory directory {root} does not exist or is not a directory",
            hint="set LOCKD_ADVISORIES_DIR to a clone of an OSV advisory database",
            context={"source": f"advisory directory {root}"},
        )
    advisories: list[Advisory] = []
    skipped: list[SkippedFile] = []
    seen = 0
    for path in _advisory_files(root):
        seen += 1
        try:
            advisories.append(_read(path))
        except (InvalidAdvisory, OSError, UnicodeDecodeError) as exc:
            reason = exc.message if isinstance(exc, InvalidAdvisory) else f"{type(exc).__name__}: {exc}"
            log.warning(
                "advisory file %s skipped: %s", path, reason, extra={"path": str(path), "reason": reason}
            )
            skipped.append(SkippedFile(path=str(path), reason=reason))
    if seen == 0:
        raise AdvisoriesUnavailable(
            f"the advisory directory {root} holds no .yaml, .yml or .json files",
            hint="point LOCKD_ADVISORIES_DIR at the folder that holds the OSV records",
            context={"source": f"advisory directory {root}"},
        )
    return AdvisoryIndex(advisories, skipped=skipped, description=f"advisory directory {root}")


def _fingerprint(root: Path) -> tuple[int, int, int]:
    """(files, total bytes, newest mtime): changes whenever an operator's sync changes the tree."""
    count = total = newest = 0
    for path in _advisory_files(root):
        try:
            stat = path.stat()
        except OSError:
            continue
        count += 1
        total += stat.st_size
        newest = max(newest, stat.st_mtime_ns)
    return count, total, newest


class AdvisoryDirectory:
    """`AdvisorySource` over a directory: loaded on first use, re-read by `refresh()` on change."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._index: AdvisoryIndex | None = None
        self._fingerprint: tuple[int, int, int] | None = None

    @property
    def description(self) -> str:
        return f"advisory directory {self.root}"

    def index(self) -> AdvisoryIndex:
        """The loaded index; the first call reads the directory (seconds for thousands of files)."""
        with self._lock:
            if self._index is None:
                self._fingerprint = _fingerprint(self.root) if self.root.is_dir() else None
                self._index = load_advisory_directory(self.root)
            return self._index

    def refresh(self) -> bool:
        """Re-read the directory if its files changed since the last load; True if it did.

        For a `Periodic` task. If the re-read fails, the index loaded before stays in use and
        the `AdvisoriesUnavailable` is raised for the caller to log.
        """
        if not self.root.is_dir():
            return self._reload()
        fingerprint = _fingerprint(self.root)
        with self._lock:
            if self._index is not None and fingerprint == self._fingerprint:
                return False
        return self._reload()

    def _reload(self) -> bool:
        index = load_advisory_directory(self.root)
        fingerprint = _fingerprint(self.root)
        with self._lock:
            self._index, self._fingerprint = index, fingerprint
        return True

    def affecting(self, pins: Mapping[NormalizedName, Version]) -> dict[NormalizedName, tuple[Advisory, ...]]:
        return self.index().affecting(pins)
