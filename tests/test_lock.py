"""`lockd.lock`: the lock as a value — JSON both ways, a stable digest, and `Lock.build` ordering."""

from __future__ import annotations

import hashlib
import json

from packaging.utils import canonicalize_name
from packaging.version import Version

from lockd.inputs import LockOptions
from lockd.lock import ROOT, Lock, LockedFile, LockedPackage
from lockd.routing import plan_for
from lockd.target import Target

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
        (canonicalize_name("typing-extensions"), canonicalize_name("filelock"), canonicalize_name("filelock")),
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
    assert [f.filename for f in numpy.files] == ["numpy-2.1.3-cp311-cp311-manylinux_2_28_x86_64.whl", "numpy-2.1.3.tar.gz"]
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


def _rest(package: LockedPackage) -> tuple[str, tuple[LockedFile, ...], tuple[str, ...], tuple[str, ...]]:
    return package.index, package.files, package.dependencies, package.via
