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

A finder judges files by the page's columns (`lockd.simple.file_table`): each distinct
(requires-python, tags, kind) once, then which files install and of which version in C-level
passes (`lockd.resolver.releases`), building a file only for a release it is asked for
(`Finder.release`) and a candidate's files only when the resolver reads them. pypi-200's pages
list 167,858 files; a resolution reads a few thousand.

A finder depends only on its page, the target and three options, and never changes once
built, so `Finder.of` keeps it with the page (`ProjectPage.derived`): every resolution on the
same target reuses it, with the candidate lists it already computed, until the page itself is
dropped or refetched.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from datetime import datetime
from functools import partial

from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.utils import NormalizedName
from packaging.version import Version

from lockd.resolver.candidates import CandidateFiles, ProjectCandidate
from lockd.resolver.releases import INSTALLS, NEWER, SKIP, Release, Releases
from lockd.simple import DistFile, ProjectPage
from lockd.simple.file_table import KINDS, FileTable
from lockd.target import Target

__all__ = ["Finder", "Release", "combine", "is_exact_pin", "wheel_tags_text"]


_SHOWN_TAGS = 8
# Candidate lists a finder keeps, by requirement: a resolution asks a project for a handful
# of distinct specifiers; past this many the finder forgets them all and starts over (a list
# of a project with thousands of versions is a few hundred KiB).
_KEPT_CANDIDATE_LISTS = 64
# Combinations `matching` keeps per finder: a project many others require (numpy in pypi-300:
# about 60 requirers) meets that many in each resolution.
_KEPT_COMBINATIONS = 256
_KEPT_TEXTS = 256


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


def combine(specifiers: Sequence[SpecifierSet]) -> SpecifierSet:
    """The sets combined with `&`, in order; a set alone is itself (read, never changed)."""
    if len(specifiers) == 1:
        return specifiers[0]
    combined = SpecifierSet()
    for specifier in specifiers:
        combined &= specifier
    return combined


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
        self._releases = self._judge()
        self._files_of: dict[int, CandidateFiles] = {}
        self._found: dict[tuple[str, bool | None, NormalizedName | None], tuple[ProjectCandidate, ...]] = {}
        # Each specifier set's text, by the set's identity: a requirement's own set comes back at
        # every find_matches of its name (`Provider.specifier_for`), in every resolution.
        self._texts: dict[int, tuple[SpecifierSet, str]] = {}
        # What `matching` found, by the identities of the sets it was given (held, so no id is
        # reused while kept).
        self._by_sets: dict[
            tuple[tuple[int, ...], NormalizedName | None],
            tuple[tuple[SpecifierSet, ...], tuple[ProjectCandidate, ...]],
        ] = {}

    @property
    def versions(self) -> tuple[Version, ...]:
        """The versions with a file that installs on the target, in the page's order."""
        return self._releases.versions

    def release(self, version: Version) -> Release | None:
        """The files of `version` that install on the target (None: none does), built once."""
        return self._releases.get(version)

    def installs(self, file: DistFile) -> bool:
        """Whether the target installs (or builds) this file, as of the request's `as_of`."""
        if not self._available(file):
            return False
        if file.kind == "wheel":
            return self._target.wheel_rank(file.tags) is not None
        return not self._only_binary

    def installs_on_newer_host(self, file: DistFile) -> bool:
        """Whether only a machine of the target at a newer level installs this wheel."""
        return (
            file.kind == "wheel"
            and self._available(file)
            and self._target.wheel_rank(file.tags) is None
            and self._target.installs_on_newer_host(file.tags)
        )

    def _available(self, file: DistFile) -> bool:
        if self._as_of is not None and file.upload_time is not None and file.upload_time > self._as_of:
            return False
        return file.requires_python is None or self._python_allows(file.requires_python)

    def candidates(
        self, specifier: SpecifierSet, extra: NormalizedName | None
    ) -> tuple[ProjectCandidate, ...]:
        """Newest first: versions with a usable file, filtered by pip's pre-release rule; the kept
        tuple itself, shared by every caller and never changed.

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
        return found

    def matching(
        self, specifiers: Sequence[SpecifierSet], extra: NormalizedName | None
    ) -> tuple[ProjectCandidate, ...]:
        """`candidates` of the sets `combine`d, kept by the sets' identities (the same kept tuple).

        A resolution adds a project's requirements one at a time, and each time the resolver
        asks for the candidates of all of them together: combining the sets made a new one, whose
        text was then worked out again (fully cached pypi-300: 2,500 combinations a resolution).
        Requirements read from metadata are the same objects in every resolution (parsed once per
        metadata, `lockd.resolver.metadata.ParsedCache`), so their combinations come back.
        Those sets are never changed once made (every resolution shares them), so what a set's
        `prereleases` says is read when a combination is first met, unlike `candidates`.
        """
        key = (tuple(map(id, specifiers)), extra)
        known = self._by_sets.get(key)
        if known is not None:
            return known[1]
        found = self.candidates(combine(specifiers), extra)
        if len(self._by_sets) >= _KEPT_COMBINATIONS:
            self._by_sets.clear()
        self._by_sets[key] = (tuple(specifiers), found)
        return found

    def _candidates(self, specifier: SpecifierSet, extra: NormalizedName | None) -> list[ProjectCandidate]:
        releases = self._releases
        usable: Sequence[Version] = releases.usable_first
        if releases.yanked_only:
            pinned = {v for v in releases.yanked_only if is_exact_pin(specifier, v)}
            if pinned:
                usable = [v for v in releases.newest_first if v in releases.with_files or v in pinned]
        # filter keeps the order it is given: newest first, as pip tries them.
        matching = specifier.filter(usable, prereleases=self._prereleases)
        return [
            ProjectCandidate(
                name=self.name, version=version, extra=extra, found=self._candidate_files(version)
            )
            for version in matching
        ]

    def _candidate_files(self, version: Version) -> CandidateFiles:
        """What a candidate of `version` installs: its files, or its yanked ones when it has only
        those (it is a candidate then only for an exact pin), read when the resolver first does."""
        # By identity: `version` is one of `newest_first`'s, and hashing a Version is a Python call.
        known = self._files_of.get(id(version))
        if known is None:
            # The value's `partial` holds `version`, so its id stays its own; it holds the
            # releases, never the finder (which holds the value: a cycle, see `_judge`).
            known = self._files_of.setdefault(
                id(version), CandidateFiles(work=partial(_usable, self._releases, version))
            )
        return known

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

    def _judge(self) -> Releases:
        """Every file's verdict from the page's columns, no file built: a page of thousands of
        files has a few (requires-python, tags, kind) combinations, each judged once, and each
        file's looked up in C."""
        table = self.page.table
        keys = list(zip(table.require_ix, table.tag_ix, table.kinds, strict=True))
        verdicts = {key: self._verdict_of(table, key) for key in set(keys)}
        per_file = list(map(verdicts.__getitem__, keys))
        if self._as_of is not None:
            per_file = self._uploaded_by_as_of(per_file)
        # The orders hold the target, never the finder: a finder its `Releases` pointed back to
        # was a cycle, which a finder two threads built at once (one kept, `of`) left to the
        # collector.
        return Releases(
            self.page,
            per_file,
            file_order=partial(_file_order, self._target),
            newer_order=partial(_newer_order, self._target),
        )

    def _uploaded_by_as_of(self, per_file: list[int]) -> list[int]:
        """PEP 700: files uploaded after `as_of` do not install (reads every file's upload time)."""
        as_of = self._as_of
        assert as_of is not None
        return [
            SKIP if file.upload_time is not None and file.upload_time > as_of else verdict
            for file, verdict in zip(self.page.files, per_file, strict=True)
        ]

    def _verdict_of(self, table: FileTable, key: tuple[int | None, int, int]) -> int:
        require, tags, kind = key
        return self._verdict(
            None if require is None else table.requires[require], table.tag_sets[tags], KINDS[kind]
        )

    def _verdict(self, requires_python: SpecifierSet | None, tags: frozenset[Tag], kind: str) -> int:
        """`installs` and `installs_on_newer_host` in one, leaving out the upload time."""
        if requires_python is not None and not self._python_allows(requires_python):
            return SKIP
        if kind != "wheel":
            return SKIP if self._only_binary else INSTALLS
        if self._target.wheel_rank(tags) is not None:
            return INSTALLS
        return NEWER if self._target.installs_on_newer_host(tags) else SKIP


def _file_order(target: Target, file: DistFile) -> tuple[int, int, str]:
    """A release's files best first for `target`: its wheels by tag rank, then the sdist."""
    if file.kind == "wheel":
        rank = target.wheel_rank(file.tags)
        return (0, rank if rank is not None else 1 << 30, file.filename)
    return (1, 0, file.filename)


def _newer_order(target: Target, file: DistFile) -> tuple[int, str]:
    """Wheels that install only on a newer machine of the target's kind, best on the newest first."""
    return (target.newer_host_rank(file.tags), file.filename)


def _usable(releases: Releases, version: Version) -> tuple[tuple[DistFile, ...], tuple[DistFile, ...]]:
    """A candidate's files: the version's installable ones, or its yanked ones when all are."""
    release = releases.get(version)
    assert release is not None  # a candidate's version is one of the finder's
    if release.files:
        return release.files, release.newer
    return release.yanked, release.newer_yanked
