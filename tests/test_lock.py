"""`lockd.lock`: the lock as a value — JSON both ways, a stable digest, and `Lock.build` ordering."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from fixtures.served_index import WatchedIndex
from lockd.accelerator import VARIANTS
from lockd.errors import InvalidRequest
from lockd.index import IndexClient
from lockd.inputs import LockOptions, LockRequest, parse_requirements
from lockd.lock import ROOT, Lock, LockedFile, LockedPackage
from lockd.resolver import resolve
from lockd.routing import plan_for
from lockd.target import PLATFORMS, Target

TARGET = Target.of("linux_x86_64", "3.11", "cu124")


def _file(name: str, kind: str = "wheel") -> LockedFile:
    return LockedFile(name, f"https://files/{name}", hashlib.sha256(name.encode()).hexdigest(), 10, kind)  # type: ignore[arg-type]


def _lock(packages: list[LockedPackage], target: Target = TARGET) -> Lock:
    return Lock.build(
        input_digest="c" * 64,
        target=target,
        plan=plan_for(target),
        requirements=["torch==2.5.1", "numpy"],
        constraints=["numpy<2.2"],
        options=LockOptions(),
        packages=packages,
    )


PACKAGES = [
    LockedPackage(
        canonicalize_name("torch"),
        Version("2.5.1+cu124"),
        "https://download.pytorch.org/whl/cu124/",
        (_file("torch-2.5.1+cu124-cp311-cp311-linux_x86_64.whl"),),
        (
            canonicalize_name("typing-extensions"),
            canonicalize_name("filelock"),
            canonicalize_name("filelock"),
        ),
        (ROOT,),
        ">=3.8.0",
    ),
    LockedPackage(
        canonicalize_name("numpy"),
        Version("2.1.3"),
        "https://pypi.org/simple/",
        (_file("numpy-2.1.3.tar.gz", "sdist"), _file("numpy-2.1.3-cp311-cp311-manylinux_2_28_x86_64.whl")),
        (),
        ("torch", "-c constraints", ROOT),
    ),
]


def test_build_sorts_packages_files_dependencies_and_via() -> None:
    lock = _lock(PACKAGES)
    assert [p.name for p in lock.packages] == ["numpy", "torch"]
    numpy = lock.package("NumPy")
    assert numpy is not None
    assert [f.filename for f in numpy.files] == [
        "numpy-2.1.3-cp311-cp311-manylinux_2_28_x86_64.whl",
        "numpy-2.1.3.tar.gz",
    ]
    assert numpy.via == ("-c constraints", ROOT, "torch")
    torch = lock.package("torch")
    assert torch is not None and torch.dependencies == ("filelock", "typing-extensions")
    assert torch.pin == "torch==2.5.1+cu124"
    assert lock.requirements == ("numpy", "torch==2.5.1")
    assert lock.pins == {"numpy": Version("2.1.3"), "torch": Version("2.5.1+cu124")}
    assert lock.package("absent") is None
    assert _lock(list(reversed(PACKAGES))) == lock


def test_json_round_trip_gives_the_same_lock_and_bytes() -> None:
    lock = _lock(PACKAGES)
    data = lock.canonical_bytes()
    again = Lock.from_json(data)
    assert again == lock
    assert again.canonical_bytes() == data
    assert Lock.from_json(data.decode()) == lock
    assert Lock.from_json(json.loads(data)) == lock
    assert again.package("torch").version.local == "cu124"  # type: ignore[union-attr]


def test_a_lock_without_variant_round_trips_to_the_same_bytes() -> None:
    lock = _lock(PACKAGES[1:], Target.of("macos_arm64", "3.12"))
    assert Lock.from_json(lock.canonical_bytes()).canonical_bytes() == lock.canonical_bytes()
    assert Lock.from_json(lock.canonical_bytes()) == lock
    assert lock.plan.family == frozenset() == plan_for(lock.target).family


def test_digest_is_the_sha256_of_canonical_json_and_tracks_content() -> None:
    lock = _lock(PACKAGES)
    assert lock.digest == hashlib.sha256(lock.canonical_bytes()).hexdigest()
    assert lock.digest == _lock(PACKAGES).digest
    data = json.loads(lock.canonical_bytes())
    assert data["lockd-lock"] == 1 and "created" not in json.dumps(data)
    assert lock.canonical_bytes() == json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    bumped = [PACKAGES[0], LockedPackage(PACKAGES[1].name, Version("2.1.2"), *_rest(PACKAGES[1]))]
    assert _lock(bumped).digest != lock.digest
    assert _lock(PACKAGES, Target.of("linux_x86_64", "3.11", "cu121")).digest != lock.digest


def test_canonical_bytes_are_worked_out_once_and_not_part_of_the_value() -> None:
    lock = _lock(PACKAGES)
    first = lock.canonical_bytes()
    assert lock.canonical_bytes() is first  # kept: a request digests and renders a lock many times
    assert lock == _lock(PACKAGES) and hash(lock) == hash(_lock(PACKAGES))  # fresh, nothing kept
    assert lock.digest is lock.digest and lock.accelerator_runtime is lock.accelerator_runtime
    assert not any(f" {kept}=" in repr(lock) for kept in ("_canonical", "_digest", "_runtime"))
    # `replace` gives another value, which works out its own bytes, digest and runtime.
    other = replace(lock, constraints=("numpy<2.1",))
    assert other.canonical_bytes() != first
    assert json.loads(other.canonical_bytes())["constraints"] == ["numpy<2.1"]
    assert other.digest == hashlib.sha256(other.canonical_bytes()).hexdigest() != lock.digest


def _rest(
    package: LockedPackage,
) -> tuple[str, tuple[LockedFile, ...], tuple[NormalizedName, ...], tuple[str, ...]]:
    return package.index, package.files, package.dependencies, package.via


# -- round trips: a lock read back from its JSON is an equal value ------------------------

_NAMES = st.sampled_from(["numpy", "torch", "typing-extensions", "zope-interface", "a", "pillow"])
_VERSIONS = st.sampled_from(["1.0", "2.5.1+cu124", "1.0rc1", "2!1.0.post3", "0.0.1.dev4", "3.1.0+cpu"])
_SHA256 = st.binary(min_size=1, max_size=8).map(lambda b: hashlib.sha256(b).hexdigest())
_FILES = st.builds(
    LockedFile,
    filename=st.text(min_size=1, max_size=30),
    url=st.sampled_from(["https://files.example/", "https://download.pytorch.org/whl/"]).map(
        lambda u: u + "f.whl"
    ),
    sha256=_SHA256,
    size=st.none() | st.integers(min_value=0, max_value=2**40),
    kind=st.sampled_from(["wheel", "sdist"]),
)
_PACKAGES = st.builds(
    LockedPackage,
    name=_NAMES.map(canonicalize_name),
    version=_VERSIONS.map(Version),
    index=st.sampled_from(["https://pypi.org/simple/", "https://download.pytorch.org/whl/cu124/"]),
    files=st.lists(_FILES, max_size=3).map(tuple),
    dependencies=st.lists(_NAMES.map(canonicalize_name), max_size=3).map(tuple),
    via=st.lists(st.sampled_from([ROOT, "-c constraints", "torch", "numpy"]), max_size=3).map(tuple),
    requires_python=st.none() | st.sampled_from([">=3.8", ">=3.9, !=3.10.*"]),
)
_PLATFORM_VARIANTS = [
    (name, variant)
    for name in ("linux_x86_64", "linux_aarch64", "windows_amd64")
    for variant in (None, *VARIANTS)
    if variant is None or name in VARIANTS[variant].platforms
]
_TARGETS = (
    st.builds(
        lambda pair, python: Target.of(pair[0], python, pair[1]),
        pair=st.sampled_from(_PLATFORM_VARIANTS),
        python=st.sampled_from(["3.9", "3.11", "3.13.1", "3.14t", "3.15"]),
    )
    | st.builds(
        lambda python, level: Target.of("linux_aarch64", python, **level),
        python=st.sampled_from(["3.12", "3.14t"]),
        level=st.sampled_from([{"glibc": "2.17"}, {"glibc": "2.34"}, {"musl": "1.1"}, {"musl": "1.2"}]),
    )
    | st.builds(
        Target.of, platform=st.sampled_from(["macos_x86_64", "windows_arm64"]), python=st.just("3.13t")
    )
    | st.builds(
        Target.of,
        platform=st.just("macos_arm64"),
        python=st.just("3.12"),
        cuda=st.sampled_from([None, "cpu"]),
    )
)
_OPTIONS = st.builds(
    LockOptions,
    prereleases=st.booleans(),
    as_of=st.none()
    | st.datetimes(min_value=datetime(2000, 1, 1), timezones=st.one_of(st.none(), st.timezones())),
)


@st.composite
def _locks(draw: st.DrawFn) -> Lock:
    target = draw(_TARGETS)
    plan = plan_for(
        target,
        default_url=draw(st.sampled_from(["https://pypi.org/simple/", "https://mirror.example/simple"])),
        family=draw(st.sampled_from([("torch",), ("torch", "torchvision", "triton")])),
    )
    requirements = st.lists(st.sampled_from(["numpy", "torch==2.5.1", 'pywin32; sys_platform == "win32"']))
    return Lock.build(
        input_digest=draw(_SHA256),
        target=target,
        plan=plan,
        requirements=draw(requirements),
        constraints=draw(requirements),
        options=draw(_OPTIONS),
        packages=draw(st.lists(_PACKAGES, max_size=4, unique_by=lambda p: p.name)),
    )


@settings(max_examples=150, deadline=None)
@given(_locks())
def test_every_lock_reads_back_from_its_json_as_an_equal_value(lock: Lock) -> None:
    data = lock.canonical_bytes()
    again = Lock.from_json(data)
    assert again == lock
    assert again.canonical_bytes() == data and again.digest == lock.digest
    assert Lock.from_json(lock.to_json()) == lock


@settings(max_examples=100, deadline=None)
@given(_PACKAGES)
def test_packages_and_files_read_back_from_their_json_as_equal_values(package: LockedPackage) -> None:
    assert LockedPackage.from_json(json.loads(json.dumps(package.to_json()))) == package
    for file in package.files:
        assert LockedFile.from_json(file.to_json()) == file


def test_from_json_refuses_what_is_not_a_lock() -> None:
    lock = _lock(PACKAGES)
    for data in ({**lock.to_json(), "lockd-lock": 2}, b"[]", "{}"):
        with pytest.raises(InvalidRequest):
            Lock.from_json(data)


@pytest.fixture(scope="module")
def client() -> Iterator[IndexClient]:
    with IndexClient(timeout=10.0) as instance:
        yield instance


@pytest.mark.parametrize(
    ("text", "platform", "cuda"),
    [
        ("lockd-fx-extras[all]", "linux_x86_64", None),
        ("torch==2.5.1\ntorchvision", "linux_x86_64", "cu124"),
        ("torch==2.5.1", "macos_arm64", "cpu"),
    ],
)
def test_locks_the_fixture_index_resolves_read_back_as_equal_values(
    fixture_index: WatchedIndex, client: IndexClient, text: str, platform: str, cuda: str | None
) -> None:
    target = Target.of(platform, "3.11", cuda)
    request = LockRequest(
        requirements=parse_requirements(text),
        constraints=(),
        target=target,
        plan=plan_for(target, default_url=fixture_index.pypi_url, pytorch_base=fixture_index.pytorch_base),
    )
    lock = resolve(request, client)
    assert lock.packages and lock.input_digest == request.digest
    assert Lock.from_json(lock.canonical_bytes()) == lock
    assert Lock.from_json(lock.to_json()) == lock
    assert LockRequest.from_json(request.canonical_bytes()) == request
    assert lock.target.platform == PLATFORMS[platform]
