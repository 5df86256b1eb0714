"""`lockd.resolver.finder` and the lock's files: hashes for every machine of the target.

A lock lists every file a machine of the target's platform, architecture, Python and ABI could
install at the target's minimum libc / macOS level or any newer one, plus the sdist where the
minimum level builds it. The vllm case: llguidance's only Linux wheels are `manylinux_2_31`,
so a glibc 2.28 lock lists its sdist *and* that wheel, and a glibc 2.36 host never builds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from packaging.specifiers import SpecifierSet
from packaging.tags import parse_tag
from packaging.utils import canonicalize_name
from packaging.version import Version

from fixtures.index import FixtureIndex
from lockd.drift import check_files
from lockd.errors import NoMatchingDistribution, SdistNeedsBuild
from lockd.index import IndexClient
from lockd.inputs import LockOptions, LockRequest, parse_requirements
from lockd.lock import Lock
from lockd.render import render
from lockd.resolver import resolve
from lockd.resolver.finder import Finder
from lockd.resolver.releases import VERSION_ORDER
from lockd.routing import plan_for
from lockd.simple import DistFile, ProjectPage
from lockd.target import Target, target_from_spec


def _lock(index: FixtureIndex, client: IndexClient, text: str, target: Target) -> Lock:
    request = LockRequest(
        requirements=parse_requirements(text),
        constraints=(),
        target=target,
        plan=plan_for(target, default_url=index.pypi_url, pytorch_base=index.pytorch_base),
        options=LockOptions(),
    )
    return resolve(request, client)


def _files(lock: Lock, name: str) -> list[str]:
    package = lock.package(name)
    assert package is not None
    return [f.filename for f in package.files_best_first(lock.target)]


@pytest.fixture
def published(mutable_index: FixtureIndex) -> Iterator[tuple[FixtureIndex, IndexClient]]:
    index = mutable_index
    # llguidance's shape: Linux wheels only for glibc 2.31, macOS wheels only for 14.0, an sdist.
    index.publish(
        "lockd-fx-newlibc",
        "1.0",
        requires_dist=("lockd-fx-plain>=1.0",),
        wheel_tags=(
            "cp39-abi3-manylinux_2_31_x86_64",
            "cp39-abi3-macosx_14_0_arm64",
            "cp39-abi3-win_amd64",
            "cp39-abi3-musllinux_1_2_x86_64",
        ),
        sdist=True,
    )
    # Only a newer machine installs it, and there is no sdist: no lock at the default level.
    index.publish("lockd-fx-wheelonly", "2.0", wheel_tags=("cp311-cp311-manylinux_2_34_x86_64",))
    index.publish("lockd-fx-wheelonly", "1.0", wheel_tags=("py3-none-any",))
    with IndexClient(timeout=10.0) as client:
        yield index, client


def test_a_default_level_lock_lists_the_sdist_and_the_newer_wheel(
    published: tuple[FixtureIndex, IndexClient],
) -> None:
    index, client = published
    lock = _lock(index, client, "lockd-fx-newlibc", Target.of("linux_x86_64", "3.11"))
    assert _files(lock, "lockd-fx-newlibc") == [
        "lockd_fx_newlibc-1.0.tar.gz",  # what a glibc 2.28 machine installs: first
        "lockd_fx_newlibc-1.0-cp39-abi3-manylinux_2_31_x86_64.whl",
    ]
    # its dependencies come from the wheel's METADATA: no sdist rules needed
    assert "lockd-fx-plain" in lock.pins
    assert render(lock, "requirements.txt").decode().count("--hash=sha256:") == len(lock.packages) + 1


def test_a_level_that_has_the_wheel_needs_no_sdist(published: tuple[FixtureIndex, IndexClient]) -> None:
    index, client = published
    lock = _lock(index, client, "lockd-fx-newlibc", Target.of("linux_x86_64", "3.11", glibc="2.31"))
    assert _files(lock, "lockd-fx-newlibc") == ["lockd_fx_newlibc-1.0-cp39-abi3-manylinux_2_31_x86_64.whl"]
    musl = _lock(index, client, "lockd-fx-newlibc", Target.of("linux_x86_64", "3.12", musl="1.2"))
    assert _files(musl, "lockd-fx-newlibc") == ["lockd_fx_newlibc-1.0-cp39-abi3-musllinux_1_2_x86_64.whl"]
    musl_old = _lock(index, client, "lockd-fx-newlibc", Target.of("linux_x86_64", "3.12", musl="1.1"))
    assert _files(musl_old, "lockd-fx-newlibc") == [
        "lockd_fx_newlibc-1.0.tar.gz",
        "lockd_fx_newlibc-1.0-cp39-abi3-musllinux_1_2_x86_64.whl",
    ]


def test_macos_minimum_13_lists_the_macos_14_wheel(published: tuple[FixtureIndex, IndexClient]) -> None:
    index, client = published
    lock = _lock(index, client, "lockd-fx-newlibc", Target.of("macos_arm64", "3.13"))
    assert _files(lock, "lockd-fx-newlibc") == [
        "lockd_fx_newlibc-1.0.tar.gz",
        "lockd_fx_newlibc-1.0-cp39-abi3-macosx_14_0_arm64.whl",
    ]
    raised = _lock(index, client, "lockd-fx-newlibc", Target.of("macos_arm64", "3.13", macos="14.2"))
    assert _files(raised, "lockd-fx-newlibc") == ["lockd_fx_newlibc-1.0-cp39-abi3-macosx_14_0_arm64.whl"]
    # conda-lock names the one file pip takes at the minimum level: the sdist
    assert b"lockd_fx_newlibc-1.0.tar.gz" in render(lock, "conda-lock.yml")


def test_windows_and_other_platforms_list_only_their_own_files(
    published: tuple[FixtureIndex, IndexClient],
) -> None:
    index, client = published
    lock = _lock(index, client, "lockd-fx-newlibc", Target.of("windows_amd64", "3.12"))
    assert _files(lock, "lockd-fx-newlibc") == ["lockd_fx_newlibc-1.0-cp39-abi3-win_amd64.whl"]
    # No wheel for Windows on ARM, and abi3 does not install on a free-threaded interpreter: the
    # sdist is all that is left there, and its dependencies are not static (Metadata-Version 2.1).
    for target in (Target.of("windows_arm64", "3.12"), Target.of("linux_x86_64", "3.14t")):
        with pytest.raises(SdistNeedsBuild):
            _lock(index, client, "lockd-fx-newlibc", target)


def test_a_version_only_newer_machines_install_is_not_a_candidate(
    published: tuple[FixtureIndex, IndexClient],
) -> None:
    index, client = published
    default = _lock(index, client, "lockd-fx-wheelonly", Target.of("linux_x86_64", "3.11"))
    assert default.pins[canonicalize_name("lockd-fx-wheelonly")].public == "1.0"
    newer = _lock(index, client, "lockd-fx-wheelonly", Target.of("linux_x86_64", "3.11", glibc="2.34"))
    assert newer.pins[canonicalize_name("lockd-fx-wheelonly")].public == "2.0"
    with pytest.raises(NoMatchingDistribution):
        _lock(index, client, "lockd-fx-wheelonly==2.0", Target.of("linux_x86_64", "3.11"))


def test_drift_checks_the_newer_hosts_wheels_too(published: tuple[FixtureIndex, IndexClient]) -> None:
    index, client = published
    lock = _lock(index, client, "lockd-fx-newlibc", Target.of("linux_x86_64", "3.11"))
    assert check_files(lock, client) == []
    index.delete("lockd_fx_newlibc-1.0-cp39-abi3-manylinux_2_31_x86_64.whl")
    with IndexClient(timeout=10.0) as fresh:
        findings = check_files(lock, fresh)
    assert [(f.kind, f.filename) for f in findings] == [
        ("missing", "lockd_fx_newlibc-1.0-cp39-abi3-manylinux_2_31_x86_64.whl")
    ]


def _wheel(filename: str, version: str, tags: str, yanked: str | None = None) -> DistFile:
    return DistFile.of(
        name=canonicalize_name("demo"), version=Version(version), filename=filename,
        url=f"https://files.example/{filename}", kind="wheel", tags=frozenset(parse_tag(tags)),
        sha256=None, size=None, requires_python=None, yanked=yanked, upload_time=None,
        metadata_url=None, metadata_sha256=None,
    )  # fmt: skip


def test_equal_versions_and_tag_sets_as_distinct_objects_make_one_release() -> None:
    # The finder judges tag sets by value and groups files by version object, then merges equal
    # versions: a page whose parsed values are not shared objects gives the same releases.
    target = target_from_spec({"platform": "linux_x86_64", "python": "3.11"})
    files = (
        _wheel("demo-1.0-py3-none-any.whl", "1.0", "py3-none-any"),
        _wheel("demo-2.0-py3-none-any.whl", "2.0", "py3-none-any"),
        _wheel(
            "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "1.0.0", "cp311-cp311-manylinux_2_17_x86_64"
        ),
        _wheel("demo-1.0-cp311-cp311-manylinux_2_39_x86_64.whl", "1.0", "cp311-cp311-manylinux_2_39_x86_64"),
        _wheel("demo-1.0-1-py3-none-any.whl", "1", "py3-none-any", yanked=""),
        _wheel("demo-1.0-cp311-cp311-win_amd64.whl", "1.0", "cp311-cp311-win_amd64"),
    )
    page = ProjectPage(canonicalize_name("demo"), "https://files.example/simple/demo/", files)
    finder = Finder(canonicalize_name("demo"), page, target, as_of=None, prereleases=False)
    assert finder.versions == (Version("1.0"), Version("2.0"))
    one = finder.release(Version("1.0"))
    assert one is not None
    assert [f.filename for f in one.files] == [
        "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "demo-1.0-py3-none-any.whl"
    ]  # fmt: skip
    assert [f.filename for f in one.yanked] == ["demo-1.0-1-py3-none-any.whl"]
    assert [f.filename for f in one.newer] == ["demo-1.0-cp311-cp311-manylinux_2_39_x86_64.whl"]
    two = finder.release(Version("2.0"))
    assert two is not None
    assert [f.filename for f in two.files] == ["demo-2.0-py3-none-any.whl"]


def test_versions_sort_as_they_compare() -> None:
    # A finder's releases sort by packaging's comparison key, in C; a packaging without it by `<`.
    assert VERSION_ORDER is not None  # this packaging has the key
    texts = [
        "1.0",
        "1.0.0",
        "1.0rc1",
        "1!0.1",
        "1.0.post1",
        "1.0.dev2",
        "1.0+local.1",
        "0.9",
        "1.0a1.post2.dev3",
        "2",
    ]
    versions = [Version(t) for t in texts]
    assert sorted(versions, key=VERSION_ORDER, reverse=True) == sorted(versions, reverse=True)


def test_a_specifier_set_asked_again_gets_the_same_candidates_and_its_prerelease_rule() -> None:
    # The finder keeps each set's text by the set's identity (a requirement's own set comes back
    # at every find_matches); what `prereleases` says is read at every ask, since a set's
    # override can be changed after it was first asked about.
    target = target_from_spec({"platform": "linux_x86_64", "python": "3.11"})
    files = tuple(_wheel(f"demo-{v}-py3-none-any.whl", v, "py3-none-any") for v in ("1.0", "1.1", "2.0b1"))
    page = ProjectPage(canonicalize_name("demo"), "https://files.example/simple/demo/", files)
    finder = Finder(canonicalize_name("demo"), page, target, as_of=None, prereleases=False)
    spec = SpecifierSet(">=1.0")

    def versions(specifier: SpecifierSet) -> list[str]:
        return [str(c.version) for c in finder.candidates(specifier, None)]

    assert versions(spec) == ["1.1", "1.0"]
    assert versions(spec) == ["1.1", "1.0"]
    spec.prereleases = True
    assert versions(spec) == ["2.0b1", "1.1", "1.0"]
    assert versions(SpecifierSet(">=1.0")) == ["1.1", "1.0"]  # an equal set, another object
    assert versions(SpecifierSet(">=1.1,<2")) == ["1.1"]
    for n in range(300):  # past the sets kept: forgotten, then asked again as new
        assert versions(SpecifierSet(f">=1.0,!=0.0.{n}")) == ["1.1", "1.0"]
    assert versions(spec) == ["2.0b1", "1.1", "1.0"]


def test_sets_combined_by_matching_give_what_their_combination_gives() -> None:
    # `matching` keeps what it found by the sets' identities, so a requirement met again in
    # another resolution costs no combining; the answer must stay `candidates` of the combination,
    # pre-release rule included: a set naming a pre-release admits them for the whole combination,
    # and a combination no final release satisfies falls back to pre-releases.
    target = target_from_spec({"platform": "linux_x86_64", "python": "3.11"})
    texts = ("1.0", "1.1", "2.0b1", "2.0", "3.0rc1")
    files = tuple(_wheel(f"demo-{v}-py3-none-any.whl", v, "py3-none-any") for v in texts)
    page = ProjectPage(canonicalize_name("demo"), "https://files.example/simple/demo/", files)
    finder = Finder(canonicalize_name("demo"), page, target, as_of=None, prereleases=False)
    sets = [SpecifierSet(s) for s in ("", ">=1.0", "<3", ">=2.0b1", "!=2.0", ">2.0", ">=1.1,<2.0")]

    def combined(specifiers: list[SpecifierSet]) -> SpecifierSet:
        result = SpecifierSet()
        for specifier in specifiers:
            result &= specifier
        return result

    for first in sets:
        for second in sets:
            for third in sets:
                chosen = [first, second, third]
                expected = [str(c.version) for c in finder.candidates(combined(chosen), None)]
                for _ in range(2):  # found, then kept
                    found = finder.matching(chosen, None)
                    assert [str(c.version) for c in found] == expected, [str(s) for s in chosen]
                    assert isinstance(found, tuple)  # the kept answer, shared: no caller can change it
    assert [str(c.version) for c in finder.matching([sets[5]], None)] == ["3.0rc1"]
    assert [str(c.version) for c in finder.matching([sets[3], sets[2]], None)] == ["2.0", "2.0b1"]
