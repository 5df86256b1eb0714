"""One project's page seen from the target: which files install, in what order, and why not.

A `Finder` turns a `ProjectPage` into the target's releases: files filtered by wheel tags
(PEP 425), `Requires-Python` (PEP 345) and PEP 700 `as_of` upload times, ordered best first;
PEP 592 yanked files only for an exact pin; sdists not at all under `only_binary` (pip's
`--only-binary :all:`); candidates newest first under PEP 440's pre-release rule, as pip picks
them. `why_not` says in words why a version does not install, naming the wheel tags it has.

What a machine at the target's minimum level installs decides which versions are candidates
and in what order; each release also keeps the wheels that only machines at a newer level
install (`Release.newer`, e.g. `manylinux_2_31` wheels for a glibc 2.28 target), so the lock
can list their hashes and pip on such a machine never has to build.

A finder depends only on its page, the target and three options, and never changes once
built, so `Finder.of` keeps it with the page (`ProjectPage.derived`): every resolution on the
same target reuses it, with the candidate lists it already computed, until the page itself is
dropped or refetched.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime
from operator import attrgetter
from typing import Any

import msgspec
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.utils import NormalizedName
from packaging.version import Version

from lockd.resolver.candidates import ProjectCandidate
from lockd.simple import DistFile, ProjectPage
from lockd.target import Target

__all__ = ["Finder", "Release", "is_exact_pin", "wheel_tags_text"]


_SHOWN_TAGS = 8
# Candidate lists a finder keeps, by requirement: a resolution asks a project for a handful
# of distinct specifiers; past this many the finder forgets them all and starts over (a list
# of a project with thousands of versions is a few hundred KiB).
_KEPT_CANDIDATE_LISTS = 64
_KEPT_TEXTS = 256
# What `Finder._verdict` says of a file: the target does not take it, installs it, or only a
# machine at a newer level does.
_SKIP, _INSTALLS, _NEWER = 0, 1, 2


def wheel_tags_text(wheels: list[DistFile]) -> str:
    """`its wheels are for cp312-cp312-win_amd64, …`: the tags as written in the file names."""
    tags: list[str] = []
    for wheel in wheels:
        # `name-version(-build)?-python-abi-platform.whl`: the last three parts are the tag.
        tag = "-".join(wheel.filename.removesuffix(".whl").split("-")[-3:])
        if tag not in tags:
            tags.append(tag)
    if not tags:
        return "it has no wheels"
    more = f" and {len(tags) - _SHOWN_TAGS} more" if len(tags) > _SHOWN_TAGS else ""
    return f"its wheels are for {', '.join(tags[:_SHOWN_TAGS])}{more}"


def is_exact_pin(specifier: SpecifierSet, version: Version) -> bool:
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


class Release(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """Files of one version that install on the target, split by yank state.

    A msgspec struct, built in C: a finder makes one per version of its page (21,000 for
    bench/cases/pypi-200's pages), and a frozen dataclass's `__init__` was a fifth of that.
    """

    version: Version
    files: tuple[DistFile, ...]  # not yanked, best first
    yanked: tuple[DistFile, ...]  # yanked, best first
    newer: tuple[DistFile, ...] = ()  # wheels only a machine at a newer level installs, not yanked
    newer_yanked: tuple[DistFile, ...] = ()


class Finder:
    """A project's releases for the target. Immutable once built; shared through `Finder.of`."""

    @classmethod
    def of(
        cls,
        name: NormalizedName,
        page: ProjectPage,
        target: Target,
        *,
        as_of: datetime | None,
        prereleases: bool,
        only_binary: bool = False,
    ) -> Finder:
        """The finder of `page` for these arguments, built once and kept with the page."""
        key: Hashable = (Finder, name, target, as_of, prereleases, only_binary)
        found = page.derived.get(key)
        if isinstance(found, Finder):
            return found
        finder = cls(name, page, target, as_of=as_of, prereleases=prereleases, only_binary=only_binary)
        # setdefault: two threads building the same finder agree on one of them.
        kept = page.derived.setdefault(key, finder)
        return kept if isinstance(kept, Finder) else finder

    def __init__(
        self,
        name: NormalizedName,
        page: ProjectPage,
        target: Target,
        *,
        as_of: datetime | None,
        prereleases: bool,
        only_binary: bool = False,
    ) -> None:
        self.name = name
        self.page = page
        self._target = target
        self._as_of = as_of
        self._only_binary = only_binary
        # None lets packaging apply PEP 440's rule: pre-releases only when the specifier names
        # one or no final version matches. That is pip's rule too.
        self._prereleases: bool | None = True if prereleases else None
        # Pages with thousands of files share a few requires-python values (shared objects,
        # see lockd.simple): answer each once, by identity.
        self._python_ok: dict[int, tuple[SpecifierSet, bool]] = {}
        # Tag sets by value: equal sets are not always one object (30,051 objects for 701 sets
        # on 303 PyPI pages), and a frozenset keeps its hash.
        self._ranks: dict[frozenset[Tag], int | None] = {}
        self._newer_ok: dict[frozenset[Tag], bool] = {}
        self.releases = self._releases()
        self._newest_first = sorted(self.releases, key=_VERSION_ORDER, reverse=True)
        self._found: dict[tuple[str, bool | None, NormalizedName | None], tuple[ProjectCandidate, ...]] = {}
        # Each specifier set's text, by the set's identity: a requirement's own set comes back at
        # every find_matches of its name (`Provider.specifier_for`), in every resolution.
        self._texts: dict[int, tuple[SpecifierSet, str]] = {}

    def installs(self, file: DistFile) -> bool:
        """Whether the target installs (or builds) this file, as of the request's `as_of`."""
        if not self._available(file):
            return False
        if file.kind == "wheel":
            return self._rank(file.tags) is not None
        return not self._only_binary

    def installs_on_newer_host(self, file: DistFile) -> bool:
        """Whether only a machine of the target at a newer level installs this wheel."""
        return (
            file.kind == "wheel"
            and self._available(file)
            and self._rank(file.tags) is None
            and self._on_newer_host(file.tags)
        )

    def _on_newer_host(self, tags: frozenset[Tag]) -> bool:
        known = self._newer_ok.get(tags)
        if known is None:
            known = self._newer_ok[tags] = self._target.installs_on_newer_host(tags)
        return known

    def _available(self, file: DistFile) -> bool:
        if self._as_of is not None and file.upload_time is not None and file.upload_time > self._as_of:
            return False
        return file.requires_python is None or self._python_allows(file.requires_python)

    def usable_files(self, release: Release, specifier: SpecifierSet) -> tuple[DistFile, ...]:
        """The release's files a requirement with `specifier` may take: yanked ones only if pinned."""
        if release.files:
            return release.files
        if release.yanked and is_exact_pin(specifier, release.version):
            return release.yanked
        return ()

    def candidates(self, specifier: SpecifierSet, extra: NormalizedName | None) -> list[ProjectCandidate]:
        """Newest first: versions with a usable file, filtered by pip's pre-release rule.

        Computed once per specifier and extra: what `filter` does with a specifier is decided
        by its specifiers' text and its `prereleases` (an override, or what its own versions
        imply). Each one's text as written, sorted: `str(specifier)` canonicalises every version
        in it, 12 µs a call here, asked at every `find_matches`; two spellings of one set only
        cost a second entry.
        """
        known = self._texts.get(id(specifier))
        if known is not None and known[0] is specifier:
            text = known[1]
        else:
            text = ",".join(sorted(map(str, specifier)))
            if len(self._texts) >= _KEPT_TEXTS:
                self._texts.clear()
            self._texts[id(specifier)] = (specifier, text)  # holds the set: its id stays its own
        key = (text, specifier.prereleases, extra)
        found = self._found.get(key)
        if found is None:
            found = tuple(self._candidates(specifier, extra))
            if len(self._found) >= _KEPT_CANDIDATE_LISTS:
                self._found.clear()
            self._found[key] = found
        return list(found)

    def _candidates(self, specifier: SpecifierSet, extra: NormalizedName | None) -> list[ProjectCandidate]:
        usable: dict[Version, tuple[DistFile, ...]] = {}
        for version in self._newest_first:
            files = self.usable_files(self.releases[version], specifier)
            if files:
                usable[version] = files
        # filter keeps the order it is given: newest first, as pip tries them.
        matching = specifier.filter(usable, prereleases=self._prereleases)
        found = []
        for version in matching:
            release = self.releases[version]
            newer = release.newer if release.files else release.newer_yanked
            found.append(
                ProjectCandidate(
                    name=self.name, version=version, extra=extra, files=usable[version], newer=newer
                )
            )
        return found

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
        return self._why_no_file(version, python_ok)

    def _why_no_file(self, version: Version, files: list[DistFile]) -> str:
        """No wheel fits the target's tags (and the sdist is missing, or ruled out by only_binary)."""
        target = self._target.describe()
        wheels = [f for f in files if f.kind == "wheel"]
        if self._only_binary and any(f.kind == "sdist" for f in files):
            if not wheels:
                return f"{self.page.name} {version} has only an sdist, and the request asks for wheels only"
            return (
                f"{self.page.name} {version} has no wheel for {target} ({wheel_tags_text(wheels)}), "
                "and the request asks for wheels only"
            )
        return f"{self.page.name} {version} has no file for {target}: {wheel_tags_text(wheels)}, and no sdist"

    def _python_allows(self, specifier: SpecifierSet) -> bool:
        known = self._python_ok.get(id(specifier))
        if known is None:
            known = (specifier, specifier.contains(self._target.python, prereleases=True))
            self._python_ok[id(specifier)] = known  # the value holds the key's object alive
        return known[1]

    def _rank(self, tags: frozenset[Tag]) -> int | None:
        try:
            return self._ranks[tags]
        except KeyError:
            rank = self._ranks[tags] = self._target.wheel_rank(tags)
            return rank

    def _file_order(self, file: DistFile) -> tuple[int, int, str]:
        if file.kind == "wheel":
            rank = self._rank(file.tags)
            return (0, rank if rank is not None else 1 << 30, file.filename)
        return (1, 0, file.filename)

    def _newer_order(self, file: DistFile) -> tuple[int, str]:
        return (self._target.newer_host_rank(file.tags), file.filename)

    def _releases(self) -> dict[Version, Release]:
        # A page of thousands of files has a few (requires-python, tags, kind) combinations:
        # each is judged once (requires-python by identity while the page holds it, tags by
        # value). Files are grouped by their version object's identity (hashing a Version is
        # a Python call), then equal versions merged: interning is not relied on.
        # 303 PyPI pages, 122k files: 210-280 -> 135-170 ms of CPU (same releases, checked).
        verdicts: dict[tuple[int, frozenset[Tag], str], int] = {}
        grouped: dict[int, list[DistFile]] = {}
        newer: dict[int, list[DistFile]] = {}
        as_of = self._as_of
        for file in self.page.files:
            if as_of is not None and file.upload_time is not None and file.upload_time > as_of:
                continue
            key = (id(file.requires_python), file.tags, file.kind)
            verdict = verdicts.get(key)
            if verdict is None:
                verdict = verdicts[key] = self._verdict(file)
            if verdict == _INSTALLS:
                grouped.setdefault(id(file.version), []).append(file)
            elif verdict == _NEWER:
                newer.setdefault(id(file.version), []).append(file)
        later_by_version = _by_version(newer)
        releases: dict[Version, Release] = {}
        for version, files in _by_version(grouped).items():
            later = later_by_version.get(version)
            if len(files) == 1 and not later:  # most versions of a big page: no sorting, no splits
                one = (files[0],)
                if files[0].yanked is None:
                    releases[version] = Release(version=version, files=one, yanked=())
                else:
                    releases[version] = Release(version=version, files=(), yanked=one)
                continue
            ordered = files if len(files) == 1 else sorted(files, key=self._file_order)
            later = sorted(later, key=self._newer_order) if later else []
            releases[version] = Release(
                version=version,
                files=tuple(f for f in ordered if f.yanked is None),
                yanked=tuple(f for f in ordered if f.yanked is not None),
                newer=tuple(f for f in later if f.yanked is None),
                newer_yanked=tuple(f for f in later if f.yanked is not None),
            )
        return releases

    def _verdict(self, file: DistFile) -> int:
        """`installs` and `installs_on_newer_host` in one, leaving out the upload time."""
        if file.requires_python is not None and not self._python_allows(file.requires_python):
            return _SKIP
        if file.kind != "wheel":
            return _SKIP if self._only_binary else _INSTALLS
        if self._rank(file.tags) is not None:
            return _INSTALLS
        return _NEWER if self._on_newer_host(file.tags) else _SKIP


# Versions sorted by the key their comparisons use (packaging's `Version._key`), compared in C:
# sorting a page's 21,000 versions by `__lt__`, a Python call per comparison, was a quarter of
# building a finder. Without that key, by `__lt__` itself.
_VERSION_ORDER: Callable[[Version], Any] | None = (
    attrgetter("_key") if isinstance(getattr(Version, "_key", None), property) else None
)


def _by_version(groups: dict[int, list[DistFile]]) -> dict[Version, list[DistFile]]:
    """Groups keyed by version object merged by equal version, in order of first appearance."""
    merged: dict[Version, list[DistFile]] = {}
    for files in groups.values():
        kept = merged.setdefault(files[0].version, files)
        if kept is not files:
            kept.extend(files)
    return merged
