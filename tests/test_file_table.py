"""`lockd.simple.file_table`: a finder judges a page by its columns, as file by file.

A finder over a page read back from its form (a `FileTable`, files built late) and over the
same page parsed from its body (files built at once, the table made from them) must both judge
as a plain reference does file by file, from the finder's own per-file answers (`installs`,
`installs_on_newer_host`): the same versions in the same order, the same releases (files,
yanked, newer), the same candidates with the same files, for every target and option. And a
finder must build only the files of the releases it is asked for.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from lockd.resolver.finder import Finder, is_exact_pin
from lockd.simple import DistFile, ProjectPage, parse_json_page
from lockd.simple.page_form import decode_page, encode_page
from lockd.target import Target, target_from_spec

_SOURCE = json.dumps(["https://i/simple/demo/", "demo", "0" * 64, "application/vnd.pypi.simple.v1+json"])
_PAGE_URL = "https://i/simple/demo/"

_TARGETS = [
    target_from_spec({"platform": "linux_x86_64", "python": "3.11"}),
    target_from_spec({"platform": "linux_x86_64", "python": "3.12", "glibc": "2.28"}),
    target_from_spec({"platform": "macos_arm64", "python": "3.11"}),
    target_from_spec({"platform": "windows_amd64", "python": "3.9"}),
]
# Equal versions written apart ("1.0", "1.0.0", "1"), pre-releases, an epoch, a local version.
_VERSIONS = ["1.0", "1.0.0", "1", "2.0", "2.1rc1", "1!0.5", "0.9+local.1", "3.0"]
_WHEEL_TAGS = [
    "py3-none-any",
    "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64",
    "cp312-cp312-manylinux_2_34_x86_64",  # only for a newer glibc than 2.28
    "cp311-cp311-manylinux_2_39_x86_64",
    "cp311-abi3-macosx_11_0_arm64",
    "cp311-cp311-macosx_15_0_arm64",
    "cp39-cp39-win_amd64",
    "cp27-cp27mu-manylinux1_x86_64",  # no target: a foreign version
]
_SPECIFIERS = ["", ">=1.0", "==1.0", "==1.0.0", "<2", "!=2.0", ">=2.0a0", "==3.0", "===1"]


@st.composite
def _entries(draw: st.DrawFn) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = []
    for i in range(draw(st.integers(0, 14))):
        version = draw(st.sampled_from(_VERSIONS))
        if draw(st.integers(0, 3)) == 0:
            filename = f"demo-{version}.tar.gz"
        else:
            filename = f"demo-{version}-{i}-{draw(st.sampled_from(_WHEEL_TAGS))}.whl"  # a build tag: unique
        entry: dict[str, object] = {"filename": filename, "url": f"https://files.example/{filename}"}
        entry["hashes"] = {"sha256": f"{i:064x}"}
        if draw(st.booleans()):
            entry["yanked"] = draw(st.sampled_from([True, "broken"]))
        if draw(st.booleans()):
            entry["requires-python"] = draw(st.sampled_from([">=3.10", "<3.10", ">=3.12", "~=3.9"]))
        entry["upload-time"] = f"2024-0{draw(st.integers(1, 9))}-01T00:00:00Z"
        entries.append(entry)
    return entries


def _both(entries: list[dict[str, object]]) -> tuple[ProjectPage, ProjectPage]:
    """The page parsed from its body, and the same page read back from its form."""
    body = json.dumps({"meta": {"api-version": "1.1"}, "files": entries})
    parsed = parse_json_page(body, _PAGE_URL, "demo")
    form = encode_page(parse_json_page(body, _PAGE_URL, "demo"), _SOURCE)
    assert form is not None
    read_back = decode_page(form, _SOURCE)
    assert read_back is not None
    return parsed, read_back


def _judged(finder: Finder) -> object:
    """Everything a resolution reads of a finder, as filenames."""

    def names(files: tuple[object, ...]) -> list[str]:
        return [f.filename for f in files]  # type: ignore[attr-defined]

    releases = []
    for version in finder.versions:
        release = finder.release(version)
        assert release is not None
        releases.append(
            (
                str(version),
                names(release.files),
                names(release.yanked),
                names(release.newer),
                names(release.newer_yanked),
            )
        )
    candidates = {
        text: [
            (str(c.version), names(c.files), names(c.newer))
            for c in finder.candidates(SpecifierSet(text), None)
        ]
        for text in _SPECIFIERS
    }
    return [str(v) for v in finder.versions], releases, candidates


def _reference(page: ProjectPage, target: Target, finder: Finder, prereleases: bool) -> object:
    """`_judged`, file by file: what the finder's columns must come to."""

    def names(files: list[DistFile]) -> list[str]:
        return [f.filename for f in files]

    def rank(file: DistFile) -> tuple[int, int, str]:
        wheel_rank = target.wheel_rank(file.tags) if file.kind == "wheel" else 0
        return (file.kind != "wheel", 1 << 30 if wheel_rank is None else wheel_rank, file.filename)

    installs: dict[Version, list[DistFile]] = {}  # equal versions merged, first appearance first
    newer: dict[Version, list[DistFile]] = {}
    for file in page.files:
        if finder.installs(file):
            installs.setdefault(file.version, []).append(file)
        elif finder.installs_on_newer_host(file):
            newer.setdefault(file.version, []).append(file)
    releases = {}
    for version, files in installs.items():
        files.sort(key=rank)
        later = sorted(newer.get(version, []), key=lambda f: (target.newer_host_rank(f.tags), f.filename))
        releases[version] = (
            [f for f in files if f.yanked is None],
            [f for f in files if f.yanked is not None],
            [f for f in later if f.yanked is None],
            [f for f in later if f.yanked is not None],
        )
    candidates = {}
    for text in _SPECIFIERS:
        specifier = SpecifierSet(text)
        usable = {}
        for version in sorted(releases, reverse=True):
            files, yanked, later, later_yanked = releases[version]
            if files:
                usable[version] = (files, later)
            elif is_exact_pin(specifier, version):
                usable[version] = (yanked, later_yanked)
        matching = specifier.filter(usable, prereleases=True if prereleases else None)
        candidates[text] = [(str(v), names(usable[v][0]), names(usable[v][1])) for v in matching]
    listed = [(str(v), *(names(files) for files in release)) for v, release in releases.items()]
    return [str(v) for v in releases], listed, candidates


@settings(max_examples=300, deadline=None)
@given(
    _entries(),
    st.sampled_from(_TARGETS),
    st.booleans(),
    st.booleans(),
    st.sampled_from([None, datetime(2024, 5, 1, tzinfo=UTC)]),
)
def test_a_finder_judges_by_columns_as_file_by_file_read_back_or_parsed(
    entries: list[dict[str, object]],
    target: Target,
    prereleases: bool,
    only_binary: bool,
    as_of: datetime | None,
) -> None:
    parsed, read_back = _both(entries)
    for page in (parsed, read_back):
        finder = Finder(
            page.name, page, target, as_of=as_of, prereleases=prereleases, only_binary=only_binary
        )
        assert _judged(finder) == _reference(page, target, finder, prereleases)
    assert read_back == parsed


def test_a_finder_builds_only_the_files_of_the_releases_it_is_asked_for() -> None:
    # Forty versions of three files each: the resolver reads the newest's.
    entries: list[dict[str, object]] = [
        {"filename": f"demo-1.{minor}-{tag}.whl", "url": f"https://files.example/demo-1.{minor}-{tag}.whl"}
        for minor in range(40)
        for tag in ("py3-none-any", "cp311-cp311-manylinux_2_17_x86_64", "cp311-cp311-win_amd64")
    ]
    parsed, read_back = _both(entries)
    target = _TARGETS[0]
    finder = Finder(read_back.name, read_back, target, as_of=None, prereleases=False)
    candidates = finder.candidates(SpecifierSet(">=1.5"), None)
    assert [str(c.version) for c in candidates] == [f"1.{minor}" for minor in range(39, 4, -1)]
    assert read_back.table.files_built == 0
    newest = candidates[0]
    assert [f.filename for f in newest.files] == [
        "demo-1.39-cp311-cp311-manylinux_2_17_x86_64.whl",
        "demo-1.39-py3-none-any.whl",
    ]
    assert read_back.table.files_built == 2  # the windows wheel is judged by its tags alone
    # Reading the page's files later gives the same objects the finder built: one file, one object.
    built = newest.files
    assert read_back.files[118] is built[0] and read_back.files[117] is built[1]
    assert read_back.table.files_built == len(entries)
    assert read_back == parsed


def test_a_yanked_version_is_a_candidate_only_for_an_exact_pin_read_back_or_parsed() -> None:
    entries: list[dict[str, object]] = [
        {"filename": "demo-1.0-py3-none-any.whl", "url": "https://f/demo-1.0-py3-none-any.whl"},
        {
            "filename": "demo-2.0-py3-none-any.whl",
            "url": "https://f/demo-2.0-py3-none-any.whl",
            "yanked": "bad",
        },
    ]
    for page in _both(entries):
        finder = Finder(page.name, page, _TARGETS[0], as_of=None, prereleases=False)
        assert [c.version for c in finder.candidates(SpecifierSet(), None)] == [Version("1.0")]
        pinned = finder.candidates(SpecifierSet("==2.0"), None)
        assert [(c.version, [f.yanked for f in c.files]) for c in pinned] == [(Version("2.0"), ["bad"])]
