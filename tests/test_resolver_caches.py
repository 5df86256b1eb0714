"""What the resolver keeps across resolutions: finders with their page, parsed dependencies.

Each cache answers exactly what the uncached computation answers, and is keyed so that another
target, another page (even with the same files) or other metadata never shares an entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName
from packaging.version import Version

from fixtures.served_index import ControlledIndex
from lockd.errors import SdistNeedsBuild
from lockd.index import IndexClient
from lockd.inputs import LockOptions, LockRequest, parse_requirements
from lockd.lock import Lock
from lockd.metadata_overrides import MetadataOverride
from lockd.resolver import resolve
from lockd.resolver.candidates import MetadataUnavailable, ProjectCandidate
from lockd.resolver.dependencies import parse_dependencies
from lockd.resolver.finder import Finder
from lockd.resolver.metadata import MetadataReader, ParsedCache, environment_key
from lockd.routing import plan_for
from lockd.simple import DistFile, ProjectPage, parse_json_page
from lockd.target import Target

DEMO = NormalizedName("demo")
LINUX = Target.of("linux_x86_64", "3.11")
WINDOWS = Target.of("windows_amd64", "3.11")
OLD_PYTHON = Target.of("linux_x86_64", "3.9")


def _page() -> ProjectPage:
    def entry(filename: str, requires_python: str | None = None) -> dict[str, object]:
        return {
            "filename": filename,
            "url": f"https://files.example/{filename}",
            "hashes": {"sha256": "a" * 64},
            "requires-python": requires_python,
        }

    files = [
        entry("demo-1.0-py3-none-any.whl"),
        entry("demo-1.1-cp311-cp311-manylinux_2_17_x86_64.whl"),
        entry("demo-1.1-cp311-cp311-win_amd64.whl"),
        entry("demo-1.1.tar.gz"),
        entry("demo-2.0-py3-none-any.whl", requires_python=">=3.10"),
        entry("demo-2.1rc1-py3-none-any.whl"),
    ]
    body = json.dumps({"meta": {"api-version": "1.1"}, "name": "demo", "files": files})
    return parse_json_page(body, "https://index.example/simple/demo/", "demo", max_files=100)


def _versions(found: Sequence[ProjectCandidate]) -> list[str]:
    return [f"{c.version}:{','.join(f.filename for f in c.files)}" for c in found]


def test_a_kept_finder_answers_what_a_new_one_answers() -> None:
    page = _page()
    for target in (LINUX, WINDOWS, OLD_PYTHON):
        kept = Finder.of(DEMO, page, target, as_of=None, prereleases=False)
        for text in ("", ">=1.1", "<2", "==1.1", ">=2.1rc1", "!=2.0"):
            fresh = Finder(DEMO, page, target, as_of=None, prereleases=False)
            specifier = SpecifierSet(text)
            expected = _versions(fresh.candidates(specifier, None))
            assert _versions(kept.candidates(specifier, None)) == expected
            assert _versions(kept.candidates(SpecifierSet(text), None)) == expected  # the kept list


def test_a_finder_is_kept_per_page_target_and_options() -> None:
    page = _page()
    linux = Finder.of(DEMO, page, LINUX, as_of=None, prereleases=False)
    assert Finder.of(DEMO, page, Target.of("linux_x86_64", "3.11"), as_of=None, prereleases=False) is linux
    assert Finder.of(DEMO, page, WINDOWS, as_of=None, prereleases=False) is not linux
    assert Finder.of(DEMO, page, LINUX, as_of=None, prereleases=True) is not linux
    assert Finder.of(DEMO, page, LINUX, as_of=None, prereleases=False, only_binary=True) is not linux
    # A page fetched again is another page, even with the same files: nothing carries over.
    again = _page()
    assert again == page
    assert Finder.of(DEMO, again, LINUX, as_of=None, prereleases=False) is not linux
    # So is a page made from another's files: what was derived stays with the original.
    fewer = ProjectPage(page.name, page.index_url, page.files[:1])
    assert Finder.of(DEMO, fewer, LINUX, as_of=None, prereleases=False) is not linux


def test_targets_do_not_share_candidates() -> None:
    page = _page()
    everything = SpecifierSet()
    linux = Finder.of(DEMO, page, LINUX, as_of=None, prereleases=False).candidates(everything, None)
    windows = Finder.of(DEMO, page, WINDOWS, as_of=None, prereleases=False).candidates(everything, None)
    old = Finder.of(DEMO, page, OLD_PYTHON, as_of=None, prereleases=False).candidates(everything, None)
    assert linux[1].files[0].filename.endswith("manylinux_2_17_x86_64.whl")
    assert windows[1].files[0].filename.endswith("win_amd64.whl")
    assert [str(c.version) for c in old] == ["1.1", "1.0"]  # 2.0 needs Python 3.10
    assert [str(c.version) for c in linux] == ["2.0", "1.1", "1.0"]


def test_candidates_per_extra_and_prerelease_override_are_kept_apart() -> None:
    finder = Finder.of(DEMO, _page(), LINUX, as_of=None, prereleases=False)
    plain = finder.candidates(SpecifierSet(">=1.0"), None)
    extra = finder.candidates(SpecifierSet(">=1.0"), NormalizedName("fast"))
    assert {c.extra for c in plain} == {None}
    assert {c.extra for c in extra} == {"fast"}
    allowing = finder.candidates(SpecifierSet(">=1.0", prereleases=True), None)
    assert str(allowing[0].version) == "2.1rc1"
    assert str(plain[0].version) == "2.0"


METADATA = b"""Metadata-Version: 2.1
Name: demo
Version: 1.0
Requires-Python: >=3.8
Requires-Dist: idna>=2
Requires-Dist: colorama; sys_platform == "win32"
Requires-Dist: uvloop; sys_platform == "linux" and extra == "fast"
"""


def _candidate(version: str = "1.0") -> ProjectCandidate:
    finder = Finder(DEMO, _page(), LINUX, as_of=None, prereleases=False)
    release = finder.release(Version(version))
    assert release is not None
    return ProjectCandidate.with_files(name=DEMO, version=Version(version), extra=None, files=release.files)


def test_parsed_dependencies_are_what_parsing_gives() -> None:
    cache = ParsedCache(max_entries=16)
    candidate = _candidate()
    for target in (LINUX, WINDOWS):
        for extra in (None, NormalizedName("fast")):
            expected = parse_dependencies(target, candidate, METADATA, extra)
            first = cache.parse(target, environment_key(target), candidate, METADATA, extra)
            again = cache.parse(target, environment_key(target), candidate, METADATA, extra)
            assert first == expected
            assert again == expected


def test_parsed_dependencies_are_kept_per_metadata_environment_and_version() -> None:
    cache = ParsedCache(max_entries=16)
    candidate = _candidate()
    linux = cache.parse(LINUX, environment_key(LINUX), candidate, METADATA, None)
    windows = cache.parse(WINDOWS, environment_key(WINDOWS), candidate, METADATA, None)
    assert "colorama" in [str(r) for r in windows[1]]
    assert "colorama" not in [str(r) for r in linux[1]]
    other = METADATA.replace(b"idna>=2", b"idna>=3")
    changed = cache.parse(LINUX, environment_key(LINUX), candidate, other, None)
    assert "idna>=3" in [str(r) for r in changed[1]]
    # An invalid line names the version it was read for: another version has its own entry.
    broken = METADATA + b"Requires-Dist: pytz (>dev)\n"
    one = cache.parse(LINUX, environment_key(LINUX), candidate, broken, None)
    two = cache.parse(LINUX, environment_key(LINUX), _candidate("1.1"), broken, None)
    assert str(one[1][0]).startswith("demo 1.0 has invalid metadata")
    assert str(two[1][0]).startswith("demo 1.1 has invalid metadata")


def test_callers_cannot_change_what_is_kept() -> None:
    cache = ParsedCache(max_entries=16)
    candidate = _candidate()
    _, found = cache.parse(LINUX, environment_key(LINUX), candidate, METADATA, None)
    found.clear()
    _, again = cache.parse(LINUX, environment_key(LINUX), candidate, METADATA, None)
    assert again


def test_each_metadata_object_is_hashed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The client's caches hand every resolution the same bytes object: its digest is kept by
    # identity (checked against the object), and equal bytes in another object are hashed anew.
    hashed: list[bytes] = []
    sha256 = hashlib.sha256

    def counted(data: bytes) -> Any:
        hashed.append(data)
        return sha256(data)

    monkeypatch.setattr(hashlib, "sha256", counted)
    cache = ParsedCache(max_entries=16)
    candidate = _candidate()
    raw = bytes(METADATA)
    for target in (LINUX, WINDOWS):
        for extra in (None, NormalizedName("fast")):
            assert cache.parse(target, environment_key(target), candidate, raw, extra) == parse_dependencies(
                target, candidate, raw, extra
            )
    assert hashed == [raw]
    copy = bytes(bytearray(raw))
    assert copy is not raw
    assert cache.parse(LINUX, environment_key(LINUX), candidate, copy, None) == cache.parse(
        LINUX, environment_key(LINUX), candidate, raw, None
    )
    assert len(hashed) == 2


class _Metadata:
    """An index's metadata by file name, counting what each resolution asks it for."""

    def __init__(self, by_filename: dict[str, bytes]) -> None:
        self.by_filename = by_filename
        self.asked: list[str] = []

    def fetch_metadata(self, file: DistFile) -> bytes:
        self.asked.append(file.filename)
        found = self.by_filename.get(file.filename)
        if found is None:
            raise SdistNeedsBuild(f"{file.filename} needs a build")
        return found


def test_a_files_parsed_metadata_is_kept_by_the_file_itself() -> None:
    # A later resolution (a new reader) meeting the same file object neither asks the index nor
    # parses again; the answer and its source are what parsing gives.
    cache = ParsedCache(max_entries=16)
    candidate = _candidate()
    index = _Metadata({candidate.metadata_file.filename: METADATA})
    first = MetadataReader(index, LINUX, (), parsed=cache)
    assert not first.holds(candidate)
    expected = parse_dependencies(LINUX, candidate, METADATA, None)
    assert first.parse(candidate, None) == expected
    assert first.holds(candidate)
    later = MetadataReader(index, LINUX, (), parsed=cache)
    parsed = later.parse(candidate, None)
    assert parsed == expected and index.asked == [candidate.metadata_file.filename]
    assert later.source_of(candidate) == first.source_of(candidate)
    parsed[1].clear()  # the caller's own list
    assert MetadataReader(index, LINUX, (), parsed=cache).parse(candidate, None) == expected
    # Another extra, another target, or an equal file read from a page fetched again: asked anew.
    fast = NormalizedName("fast")
    assert later.parse(candidate, fast) == parse_dependencies(LINUX, candidate, METADATA, fast)
    assert MetadataReader(index, WINDOWS, (), parsed=cache).parse(candidate, None) == parse_dependencies(
        WINDOWS, candidate, METADATA, None
    )
    again = _candidate()
    assert (
        again.metadata_file == candidate.metadata_file and again.metadata_file is not candidate.metadata_file
    )
    assert MetadataReader(index, LINUX, (), parsed=cache).parse(again, None) == expected
    assert len(index.asked) == 4
    # Asked first whether it holds the file (the provider's prefetch check), a reader keeps the
    # answer for its own `parse` at once: the process-wide entry is not asked for again.
    kept = MetadataReader(index, LINUX, (), parsed=cache)
    assert kept.holds(candidate)
    cache._files.clear()  # forgotten process-wide: only the reader's own answer is left
    assert kept.parse(candidate, None) == expected and len(index.asked) == 4


def test_an_overrides_answer_is_kept_for_its_request_only() -> None:
    # An sdist that needs a build depends on what the operator's override says in the request
    # that gives it; a request without that override must meet the build, not the kept answer.
    cache = ParsedCache(max_entries=16)
    finder = Finder(DEMO, _page(), LINUX, as_of=None, prereleases=False)
    release = finder.release(Version("1.1"))
    assert release is not None
    sdist = next(f for f in release.files if f.filename.endswith(".tar.gz"))
    candidate = ProjectCandidate.with_files(name=DEMO, version=Version("1.1"), extra=None, files=(sdist,))
    index = _Metadata({})
    override = MetadataOverride(name=DEMO, versions=SpecifierSet("==1.1"), requires_dist=("idna>=3",))
    _, overridden = MetadataReader(index, LINUX, (override,), parsed=cache).parse(candidate, None)
    assert [str(r) for r in overridden] == ["idna>=3"]
    _, plain = MetadataReader(index, LINUX, (), parsed=cache).parse(candidate, None)
    assert len(plain) == 1 and isinstance(plain[0], MetadataUnavailable)
    assert len(index.asked) == 2


def test_a_resolution_works_out_again_only_what_its_changed_line_asks(
    mutable_index: ControlledIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Input lines are parsed into the objects an earlier input's same lines gave, and the base
    # requirement of an extra (`uvicorn[standard]==v` needs `uvicorn==v`) is one object for all
    # resolutions: `Finder.matching` keeps its answers by the identities of the specifier sets,
    # so a second input differing in one line finds everything else kept.
    target = Target.of("linux_x86_64", "3.11")
    plan = plan_for(target, default_url=mutable_index.pypi_url, pytorch_base=mutable_index.pytorch_base)
    lines = ["fastapi", "uvicorn[standard]", "requests>=2", "pydantic"]

    def lock(text: str) -> Lock:
        request = LockRequest(
            requirements=parse_requirements(text),
            constraints=(),
            target=target,
            plan=plan,
            options=LockOptions(),
        )
        return resolve(request, client)

    worked_out: list[NormalizedName] = []
    kept = Finder.candidates

    def counted(self: Finder, specifier: SpecifierSet, extra: NormalizedName | None) -> Any:
        worked_out.append(self.name)
        return kept(self, specifier, extra)

    with IndexClient(timeout=10.0) as client:
        first = lock("\n".join(lines) + "\n")
        assert any(p.name == "uvloop" for p in first.packages)  # uvicorn[standard] was resolved
        monkeypatch.setattr(Finder, "candidates", counted)
        again = lock("\n".join(["requests>=2,!=0.0.1", *lines[:2], lines[3]]) + "\n")
    assert again.pins == first.pins
    assert worked_out and set(worked_out) == {"requests"}, worked_out
