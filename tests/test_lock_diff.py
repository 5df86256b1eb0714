"""`lockd.lock_diff`: every kind of change with its reasons, the JSON round trip, and each policy."""

from __future__ import annotations

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from lockd.drift import Finding
from lockd.inputs import LockOptions
from lockd.lock import Lock, LockedFile, LockedPackage
from lockd.lock_diff import AUTO_PROMOTE, AutoPromote, LockDiff, as_policy, diff_locks, policy_promotes
from lockd.routing import plan_for
from lockd.target import Target


def _package(name: str, version: str, sha: str = "0") -> LockedPackage:
    wheel = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    file = LockedFile(wheel, f"https://example.invalid/{wheel}", sha * 64, 1, "wheel")
    return LockedPackage(
        canonicalize_name(name),
        Version(version),
        "https://pypi.org/simple/",
        (file,),
        (),
        ("-r requirements.in",),
    )


def _lock(*packages: LockedPackage) -> Lock:
    target = Target.of("linux_x86_64", "3.11")
    return Lock.build(
        input_digest="a" * 64,
        target=target,
        plan=plan_for(target),
        requirements=["x"],
        constraints=[],
        options=LockOptions(),
        packages=packages,
    )


def _yanked(name: str) -> Finding:
    return Finding(kind="yanked", message="yanked", package=canonicalize_name(name))


def test_each_change_and_its_reasons() -> None:
    old = _lock(
        _package("numpy", "2.0.2"),
        _package("pillow", "11.0.0"),
        _package("idna", "3.7"),
        _package("same", "1.0"),
        _package("rehashed", "1.0"),
    )
    new = _lock(
        _package("numpy", "2.1.3"),
        _package("pillow", "10.4.0"),
        _package("certifi", "2024.8.30"),
        _package("same", "1.0"),
        _package("rehashed", "1.0", "f"),
    )
    findings = [
        _yanked("numpy"),
        Finding(kind="tampered", message="t", package=canonicalize_name("rehashed")),
        _yanked("numpy"),
    ]
    diff = diff_locks(old, new, findings)
    assert [(c.name, c.change, c.reasons) for c in diff.changes] == [
        ("certifi", "added", ("required",)),
        ("idna", "removed", ("unrequired",)),
        ("numpy", "upgrade", ("yanked", "newer")),
        ("pillow", "downgrade", ("older",)),
        ("rehashed", "hashes", ("tampered", "files")),
    ]
    assert diff.counts() == {"upgrade": 1, "downgrade": 1, "added": 1, "removed": 1, "hashes": 1}
    assert diff.changes[2].describe() == "numpy 2.0.2 → 2.1.3 (yanked, newer)"
    assert (diff.old_lock_digest, diff.new_lock_digest) == (old.digest, new.digest)
    assert LockDiff.from_json(diff.to_json()) == diff  # equal by value
    assert diff_locks(old, old).empty


@pytest.mark.parametrize(
    ("old", "new", "promotes"),
    [
        ("1.2.3", "1.2.4", {"patch", "minor", "always"}),
        ("1.2.3", "1.3.0", {"minor", "always"}),
        ("1.2", "1.2.1", {"patch", "minor", "always"}),  # 1.2 is 1.2.0
        ("1.2.3", "2.0.0", {"always"}),
        ("1.2.3", "1.2.2", {"always"}),  # a downgrade is never a patch release
    ],
)
def test_policies(old: str, new: str, promotes: set[str]) -> None:
    diff = diff_locks(_lock(_package("a", old)), _lock(_package("a", new)))
    assert {policy for policy in AUTO_PROMOTE if policy_promotes(policy, diff)} == promotes


def test_no_policy_promotes_an_addition_under_patch_or_tampering_at_all() -> None:
    added = diff_locks(_lock(_package("a", "1.0")), _lock(_package("a", "1.0"), _package("b", "1.0")))
    assert not policy_promotes("patch", added) and policy_promotes("always", added)
    tampered = diff_locks(
        _lock(_package("a", "1.0")),
        _lock(_package("a", "1.0.1")),
        [Finding(kind="tampered", message="t", package=canonicalize_name("a"))],
    )
    assert not any(policy_promotes(policy, tampered) for policy in AUTO_PROMOTE)


def test_as_policy_reads_stored_names() -> None:
    expected: list[AutoPromote | None] = [*AUTO_PROMOTE, None, None]
    assert [as_policy(text) for text in (*AUTO_PROMOTE, "sometimes", None)] == expected
