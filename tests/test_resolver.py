"""resolve() on the fixture index: each resolution rule, each error, CUDA consistency, cost."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from fixtures.served_index import ControlledIndex, ServedIndex, WatchedIndex
from fixtures.synthetic import SDIST_BUILD_MARKER
from lockd.accelerator import check_consistency
from lockd.errors import (
    CudaMismatch,
    NoMatchingDistribution,
    ResolutionImpossible,
    ResolutionTimeout,
    SdistNeedsBuild,
    UnknownProject,
)
from lockd.index import IndexClient
from lockd.index.threads import WorkerPool
from lockd.inputs import LockOptions, LockRequest, parse_requirements
from lockd.lock import ROOT, Lock
from lockd.resolver import CONSTRAINTS_VIA, resolve
from lockd.routing import plan_for
from lockd.simple import ProjectPage
from lockd.target import Target
from tests.support import PassThroughIndex


def make_request(
    index: ServedIndex,
    text: str,
    *,
    platform: str = "linux_x86_64",
    python: str = "3.11",
    cuda: str | None = None,
    constraints: str = "",
    options: LockOptions | None = None,
) -> LockRequest:
    target = Target.of(platform, python, cuda)
    return LockRequest(
        requirements=parse_requirements(text),
        constraints=parse_requirements(constraints, source="constraints.txt"),
        target=target,
        plan=plan_for(target, default_url=index.pypi_url, pytorch_base=index.pytorch_base),
        options=options or LockOptions(),
    )


@pytest.fixture(scope="module")
def client() -> Iterator[IndexClient]:
    with IndexClient(timeout=10.0) as instance:
        yield instance


def pins(lock: Lock) -> dict[str, str]:
    return {name: str(version) for name, version in lock.pins.items()}


def test_extras_pull_their_dependencies_transitively(
    fixture_index: WatchedIndex, client: IndexClient
) -> None:
    lock = resolve(make_request(fixture_index, "lockd-fx-extras[all]"), client)
    assert pins(lock) == {"lockd-fx-extras": "1.0", "lockd-fx-plain": "1.1", "lockd-fx-speedups": "0.3"}
    speedups = lock.package("lockd-fx-speedups")
    assert speedups is not None and speedups.via == ("lockd-fx-extras",)
    extras = lock.package("lockd-fx-extras")
    assert extras is not None and extras.via == (ROOT,)
    assert extras.dependencies == ("lockd-fx-plain", "lockd-fx-speedups")
    without = resolve(make_request(fixture_index, "lockd-fx-extras"), client)
    assert "lockd-fx-speedups" not in without.pins


@pytest.mark.parametrize(
    ("platform", "python", "expected"),
    [
        ("linux_x86_64", "3.11", set()),
        ("windows_amd64", "3.12", {"lockd-fx-winonly", "lockd-fx-speedups"}),
        ("macos_arm64", "3.11", {"lockd-fx-multiplatform"}),
        ("linux_aarch64", "3.9", {"lockd-fx-multiplatform", "lockd-fx-plain"}),
    ],
)
def test_markers_are_evaluated_for_the_target(
    fixture_index: WatchedIndex, client: IndexClient, platform: str, python: str, expected: set[str]
) -> None:
    lock = resolve(make_request(fixture_index, "lockd-fx-markers", platform=platform, python=python), client)
    assert set(lock.pins) - {"lockd-fx-markers"} == expected
    if "lockd-fx-plain" in expected:
        assert lock.pins[NormalizedName("lockd-fx-plain")] == Version("1.0")


def test_requirement_markers_skip_lines_for_other_targets(
    fixture_index: WatchedIndex, client: IndexClient
) -> None:
    text = 'lockd-fx-plain\nlockd-fx-winonly; sys_platform == "win32"'
    assert pins(resolve(make_request(fixture_index, text), client)) == {"lockd-fx-plain": "1.1"}


@pytest.mark.parametrize(("python", "version"), [("3.11", "1.0"), ("3.12", "2.0")])
def test_requires_python_of_the_target(
    fixture_index: WatchedIndex, client: IndexClient, python: str, version: str
) -> None:
    lock = resolve(make_request(fixture_index, "lockd-fx-pyreq", python=python), client)
    assert pins(lock) == {"lockd-fx-pyreq": version}


def test_yanked_versions_only_when_pinned_exactly(fixture_index: WatchedIndex, client: IndexClient) -> None:
    assert pins(resolve(make_request(fixture_index, "lockd-fx-yanked"), client)) == {"lockd-fx-yanked": "1.0"}
    assert (
        pins(resolve(make_request(fixture_index, "lockd-fx-yanked>=1.0"), client))["lockd-fx-yanked"] == "1.0"
    )
    pinned = resolve(make_request(fixture_index, "lockd-fx-yanked==1.1"), client)
    assert pins(pinned) == {"lockd-fx-yanked": "1.1"}


def test_prereleases_by_pips_rules(fixture_index: WatchedIndex, client: IndexClient) -> None:
    def pre(text: str, *, prereleases: bool = False) -> str:
        options = LockOptions(prereleases=prereleases)
        lock = resolve(make_request(fixture_index, text, options=options), client)
        return str(next(iter(lock.pins.values())))

    assert pre("lockd-fx-pre") == "1.0"
    assert pre("lockd-fx-pre", prereleases=True) == "2.0b1"
    assert pre("lockd-fx-pre>=1.1rc1") == "2.0b1"  # the specifier names a pre-release
    assert pre("lockd-fx-pre<2") == "1.0"
    assert pre("lockd-fx-preonly") == "0.2b2"  # no final version exists at all


def test_as_of_ignores_later_uploads(fixture_index: WatchedIndex, client: IndexClient) -> None:
    before_2_0 = LockOptions(as_of=datetime(2024, 1, 5, 18, 0, tzinfo=UTC))
    lock = resolve(make_request(fixture_index, "lockd-fx-pyreq", python="3.12", options=before_2_0), client)
    assert pins(lock) == {"lockd-fx-pyreq": "1.0"}


def test_constraints_restrict_but_do_not_add(fixture_index: WatchedIndex, client: IndexClient) -> None:
    request = make_request(
        fixture_index, "lockd-fx-extras", constraints="lockd-fx-plain==1.0\nlockd-fx-pre==1.0"
    )
    lock = resolve(request, client)
    assert pins(lock) == {"lockd-fx-extras": "1.0", "lockd-fx-plain": "1.0"}
    plain = lock.package("lockd-fx-plain")
    assert plain is not None and set(plain.via) == {"lockd-fx-extras", CONSTRAINTS_VIA}
    assert lock.constraints == ("lockd-fx-plain==1.0", "lockd-fx-pre==1.0")


def test_conflicting_constraint_is_reported(fixture_index: WatchedIndex, client: IndexClient) -> None:
    request = make_request(fixture_index, "lockd-fx-plain>=1.1", constraints="lockd-fx-plain<1.1")
    with pytest.raises(NoMatchingDistribution) as raised:
        resolve(request, client)
    assert "lockd-fx-plain" in raised.value.message and "constraints" in raised.value.message


def test_sdist_only_with_static_metadata(fixture_index: WatchedIndex, client: IndexClient) -> None:
    lock = resolve(make_request(fixture_index, "lockd-fx-sdist-static"), client)
    assert pins(lock) == {"lockd-fx-sdist-static": "1.0", "lockd-fx-plain": "1.1"}
    package = lock.package("lockd-fx-sdist-static")
    assert package is not None and [f.kind for f in package.files] == ["sdist"]
    plain = lock.package("lockd-fx-plain")
    # Wheels exist for lockd-fx-plain, so its sdist is not listed.
    assert plain is not None and {f.kind for f in plain.files} == {"wheel"}


def test_dynamic_sdist_needs_build_and_is_never_built(
    fixture_index: WatchedIndex, client: IndexClient
) -> None:
    Path(SDIST_BUILD_MARKER).unlink(missing_ok=True)
    with pytest.raises(SdistNeedsBuild) as raised:
        resolve(make_request(fixture_index, "lockd-fx-plain\nlockd-fx-sdist-dynamic"), client)
    assert raised.value.code == "sdist-needs-build"
    assert "lockd-fx-sdist-dynamic 1.0" in raised.value.message
    assert not Path(SDIST_BUILD_MARKER).exists()


def test_no_file_for_the_target(fixture_index: WatchedIndex, client: IndexClient) -> None:
    with pytest.raises(NoMatchingDistribution) as raised:
        resolve(make_request(fixture_index, "lockd-fx-plain\nlockd-fx-winonly"), client)
    assert raised.value.code == "no-matching-distribution"
    message = raised.value.message
    assert "lockd-fx-winonly 1.0 has no file for linux_x86_64, Python 3.11.0" in message
    assert "requirements.in line 2" in message


def test_no_matching_version(fixture_index: WatchedIndex, client: IndexClient) -> None:
    with pytest.raises(NoMatchingDistribution) as raised:
        resolve(make_request(fixture_index, "lockd-fx-plain>=7"), client)
    message = raised.value.message
    assert "no version of lockd-fx-plain matches >=7" in message
    assert "requirements.in line 1 asks for lockd-fx-plain>=7" in message and "1.1, 1.0" in message


def test_no_version_for_the_targets_python(fixture_index: WatchedIndex, client: IndexClient) -> None:
    with pytest.raises(NoMatchingDistribution) as raised:
        resolve(make_request(fixture_index, "lockd-fx-pyreq>=2"), client)
    assert "lockd-fx-pyreq 2.0 requires Python >=3.12, the target has 3.11.0" in raised.value.message


def test_unknown_project(fixture_index: WatchedIndex, client: IndexClient) -> None:
    with pytest.raises(UnknownProject) as raised:
        resolve(make_request(fixture_index, "lockd-fx-plain\nlockd-fx-nope>=1"), client)
    assert "lockd-fx-nope" in raised.value.message
    assert "requirements.in line 2 asks for lockd-fx-nope>=1" in raised.value.message


def test_conflict_is_explained_with_the_chain(fixture_index: WatchedIndex, client: IndexClient) -> None:
    with pytest.raises(ResolutionImpossible) as raised:
        resolve(make_request(fixture_index, "lockd-fx-conflict-a\nlockd-fx-conflict-c"), client)
    message = raised.value.message
    assert "lockd-fx-conflict-a 1.0 requires lockd-fx-conflict-b<2" in message
    assert "lockd-fx-conflict-c 1.0 requires lockd-fx-conflict-b>=2" in message
    conflicts = raised.value.context["conflicts"]
    assert {c["requirement"] for c in conflicts} == {"lockd-fx-conflict-b<2", "lockd-fx-conflict-b>=2"}


def test_torch_conflict_names_the_requirements_line(fixture_index: WatchedIndex, client: IndexClient) -> None:
    request = make_request(fixture_index, "torch==2.4.1\ntorchvision==0.20.1", cuda="cu124")
    with pytest.raises(ResolutionImpossible) as raised:
        resolve(request, client)
    message = raised.value.message
    assert message == (
        "torchvision 0.20.1+cu124 requires torch==2.5.1, but requirements.in line 1 asks for torch==2.4.1"
    )
    assert any(
        c["source"] == {"source": "requirements.in", "line": 1} for c in raised.value.context["conflicts"]
    )


def test_torch_cu124_reads_metadata_without_downloading_wheels(mutable_index: ControlledIndex) -> None:
    request = make_request(mutable_index, "torch==2.5.1\ntorchvision\nfastapi", cuda="cu124")
    with IndexClient(timeout=10.0) as fresh:
        lock = resolve(request, fresh)
        stats = fresh.stats
    got = pins(lock)
    assert got["torch"] == "2.5.1+cu124" and got["torchvision"] == "0.20.1+cu124"
    assert got["nvidia-cuda-runtime-cu12"] == "12.4.127" and got["triton"] == "3.1.0"
    assert lock.package("torch") is not None
    torch = lock.package("torch")
    assert torch is not None and torch.index == mutable_index.variant_url("cu124")
    # numpy is routed to PyPI even though the PyTorch index carries a newer stray copy.
    numpy = lock.package("numpy")
    assert numpy is not None and numpy.index == mutable_index.pypi_url
    time.sleep(0.2)  # the server logs a request after its last byte
    counters = mutable_index.counters()
    assert counters.whole_files == {}, "no file may be downloaded whole to read its metadata"
    pinned_bytes = sum(
        mutable_index.file(f.filename, index=_index_name(p.index, mutable_index)).size
        for p in lock.packages
        for f in p.files
    )
    read = sum(counters.bytes.get(kind, 0) for kind in ("range", "metadata"))
    assert read < pinned_bytes / 20, (read, pinned_bytes)
    assert stats.whole_downloads == 0


def _index_name(index_url: str, index: ServedIndex) -> str:
    if index_url == index.pypi_url:
        return "pypi"
    return index_url.rstrip("/").rsplit("/", 1)[-1]


def test_every_installable_file_is_hashed_including_hashless_links(
    fixture_index: WatchedIndex, client: IndexClient
) -> None:
    lock = resolve(make_request(fixture_index, "torchaudio==2.5.1", python="3.12", cuda="cu124"), client)
    audio = lock.package("torchaudio")
    assert audio is not None
    # The fixture's one hashless link: lockd streamed and hashed it.
    (only,) = audio.files
    assert only.filename == "torchaudio-2.5.1+cu124-cp312-cp312-linux_x86_64.whl"
    assert only.sha256 == hashlib.sha256(fixture_index.content(only.filename, index="cu124")).hexdigest()
    for package in lock.packages:
        assert package.files and all(len(f.sha256) == 64 for f in package.files)


def test_cpu_builds_on_macos_and_aarch64(fixture_index: WatchedIndex, client: IndexClient) -> None:
    mac = resolve(make_request(fixture_index, "torch==2.5.1", platform="macos_arm64", cuda="cpu"), client)
    arm = resolve(make_request(fixture_index, "torch==2.5.1", platform="linux_aarch64", cuda="cpu"), client)
    for lock in (mac, arm):
        assert lock.pins[NormalizedName("torch")] == Version("2.5.1")
        assert not any(name.startswith("nvidia-") for name in lock.pins)
    linux_cpu = resolve(make_request(fixture_index, "torch==2.5.1", cuda="cpu"), client)
    assert linux_cpu.pins[NormalizedName("torch")] == Version("2.5.1+cpu")


def test_resolution_is_deterministic(fixture_index: WatchedIndex) -> None:
    request = make_request(
        fixture_index, "torch==2.5.1\ntorchvision\nfastapi\nlockd-fx-extras[all]", cuda="cu124"
    )
    digests = set()
    for _ in range(2):
        with IndexClient() as fresh:
            digests.add(resolve(request, fresh).digest)
    assert len(digests) == 1


def test_deadline(fixture_index: WatchedIndex, client: IndexClient) -> None:
    with pytest.raises(ResolutionTimeout):
        resolve(make_request(fixture_index, "fastapi"), client, deadline=time.monotonic() - 1)


def test_reporter_sees_every_pin(fixture_index: WatchedIndex, client: IndexClient) -> None:
    seen: list[tuple[str, Version]] = []

    class Recorder:
        def on_pinned(self, name: NormalizedName, version: Version) -> None:
            seen.append((name, version))

        def on_backtrack(self, name: NormalizedName) -> None:
            pass

    lock = resolve(make_request(fixture_index, "lockd-fx-extras[all]"), client, reporter=Recorder())
    assert dict(seen) == lock.pins


def test_cuda_consistency(fixture_index: WatchedIndex, client: IndexClient) -> None:
    lock = resolve(make_request(fixture_index, "torch==2.5.1", cuda="cu124"), client)
    check_consistency(lock)

    def swap(name: str, new_name: str, version: str) -> Lock:
        packages = tuple(
            dataclasses.replace(p, name=canonicalize_name(new_name), version=Version(version))
            if p.name == name
            else p
            for p in lock.packages
        )
        return dataclasses.replace(lock, packages=packages)

    with pytest.raises(CudaMismatch) as raised:
        check_consistency(swap("torch", "torch", "2.5.1+cu121"))
    assert raised.value.context["problems"] == [
        {"package": "torch", "version": "2.5.1+cu121", "expected": "+cu124"}
    ]
    with pytest.raises(CudaMismatch) as raised:
        check_consistency(swap("torch", "torch", "2.5.1"))
    with pytest.raises(CudaMismatch) as raised:
        check_consistency(swap("nvidia-nccl-cu12", "nvidia-nccl-cu11", "2.21.5"))
    assert "nvidia-nccl-cu11 2.21.5 (expected -cu12)" in raised.value.message


class _PageLog(PassThroughIndex):
    """An `IndexSource` that passes everything to a real client and notes which pages were asked for."""

    def __init__(self, client: IndexClient) -> None:
        super().__init__(client)
        self.asked: set[str] = set()
        self.changed = threading.Condition()

    def project_page(self, index_url: str, name: NormalizedName) -> ProjectPage:
        with self.changed:
            self.asked.add(name)
            self.changed.notify_all()
        return self._client.project_page(index_url, name)

    @property
    def workers(self) -> WorkerPool:
        return self._client.workers


def test_the_probable_graph_is_fetched_before_the_resolver_reaches_it(fixture_index: WatchedIndex) -> None:
    # resolvelib asks for grandchildren only after pinning their parents; the prefetch walk must
    # not wait for that, or cold resolution waits one round trip per level of the graph.
    request = make_request(fixture_index, "fastapi")
    with IndexClient(timeout=10.0) as fresh:
        expected = set(resolve(request, fresh).pins)
    assert {"anyio", "pydantic-core", "idna"} <= expected  # three levels below fastapi
    reached_at_first_pin: list[bool] = []

    class HoldFirstPin:
        def on_pinned(self, name: NormalizedName, version: Version) -> None:
            if reached_at_first_pin:
                return
            # The resolving thread is held here, so only the walk can ask for the deeper pages.
            with log.changed:
                reached_at_first_pin.append(log.changed.wait_for(lambda: expected <= log.asked, timeout=10))

        def on_backtrack(self, name: NormalizedName) -> None:
            pass

    with IndexClient(timeout=10.0) as fresh:
        log = _PageLog(fresh)
        lock = resolve(request, log, reporter=HoldFirstPin())
    assert reached_at_first_pin == [True], sorted(expected - log.asked)
    assert set(lock.pins) == expected


def test_a_version_with_unparsable_requires_dist_is_skipped_as_pip_does(
    mutable_index: ControlledIndex,
) -> None:
    # Real PyPI: every celery 4.x wheel says `Requires-Dist: pytz (>dev)`. pip ignores such a
    # version ("it has invalid metadata") and takes an older one; resolving it with the line
    # dropped would lock celery without pytz.
    mutable_index.publish("lockd-fx-badmeta", "1.0", requires_dist=("lockd-fx-plain>=1.0",))
    mutable_index.publish(
        "lockd-fx-badmeta",
        "2.0",
        requires_dist=("lockd-fx-speedups (>dev)", 'lockd-fx-plain>=1.0; extra == "fast"'),
    )
    with IndexClient(timeout=10.0) as fresh:
        lock = resolve(make_request(mutable_index, "lockd-fx-badmeta"), fresh)
        assert pins(lock) == {"lockd-fx-badmeta": "1.0", "lockd-fx-plain": "1.1"}
        with pytest.raises(NoMatchingDistribution) as caught:
            resolve(make_request(mutable_index, "lockd-fx-badmeta>=2"), fresh)
    assert "lockd-fx-badmeta 2.0 has invalid metadata" in caught.value.message
    assert "lockd-fx-speedups (>dev)" in caught.value.message


def test_an_unparsable_requires_python_is_ignored_as_pip_does(mutable_index: ControlledIndex) -> None:
    # Real PyPI: datatest 0.11.1 says `>=2.6.*, !=3.0.*, !=3.1.*`. pip ignores a Requires-Python it
    # cannot parse and installs the file, so pip and uv pin 0.11.1; skipping it took an older one.
    mutable_index.publish("lockd-fx-oddpython", "1.0", requires_python=">=3.6")
    mutable_index.publish("lockd-fx-oddpython", "2.0", requires_python=">=3.6.*")
    with IndexClient(timeout=10.0) as fresh:
        lock = resolve(make_request(mutable_index, "lockd-fx-oddpython", python="3.9"), fresh)
    assert pins(lock) == {"lockd-fx-oddpython": "2.0"}


def test_a_requires_python_only_the_metadata_says_rules_the_version_out_as_pip_does(
    fixture_index: WatchedIndex, client: IndexClient
) -> None:
    # The page lists no requires-python for lockd-fx-metapy 2.0; its metadata says >=3.99. pip
    # reads it as a dependency on Python and takes 1.0; so does the `<python>` criterion here, also
    # when another Requires-Python (lockd-fx-pyreq 1.0's, pinned first: one candidate) joined it first.
    assert pins(resolve(make_request(fixture_index, "lockd-fx-metapy"), client)) == {"lockd-fx-metapy": "1.0"}
    both = pins(resolve(make_request(fixture_index, "lockd-fx-metapy\nlockd-fx-pyreq"), client))
    assert both == {"lockd-fx-metapy": "1.0", "lockd-fx-pyreq": "1.0"}


def test_a_version_whose_wheels_fit_no_lockable_target_is_explained(mutable_index: ControlledIndex) -> None:
    # Such wheels (cp27, ppc64le, win32) are dropped when the page is read; the version is not.
    mutable_index.publish("lockd-fx-foreign", "1.0")
    mutable_index.publish(
        "lockd-fx-foreign", "2.0", wheel_tags=("cp27-cp27mu-manylinux1_x86_64", "cp311-cp311-linux_ppc64le")
    )
    with IndexClient(timeout=10.0) as fresh:
        assert pins(resolve(make_request(mutable_index, "lockd-fx-foreign"), fresh)) == {
            "lockd-fx-foreign": "1.0"
        }
        with pytest.raises(NoMatchingDistribution) as caught:
            resolve(make_request(mutable_index, "lockd-fx-foreign>=2"), fresh)
    assert "lockd-fx-foreign 2.0 has wheels only for platforms or Pythons that no lockd target matches" in (
        caught.value.message
    )
