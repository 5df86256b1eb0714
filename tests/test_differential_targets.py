"""lockd's pins against uv's for each new kind of target, on the fixture index.

The target kinds of issue 14, each given to uv the way uv takes it: a glibc level as
`--python-platform x86_64-manylinux_2_34`, musl as `aarch64-unknown-linux-musl`, a macOS minimum
in `MACOSX_DEPLOYMENT_TARGET`, Windows on ARM as `aarch64-pc-windows-msvc`, Python 3.14 and 3.15
as `--python-version`, and a free-threaded Python as an interpreter that reports free threading
(`tests.peers.free_threaded_interpreter`: uv has no flag for it). Every lock is also downloaded
by pip for the target (`--platform` tags of the target's level, `--abi cp314t` where free-threaded).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.served_index import WatchedIndex
from lockd.errors import LockdError
from lockd.index import IndexClient
from lockd.inputs import LockOptions, LockRequest, parse_requirements
from lockd.lock import Lock
from lockd.resolver import resolve
from lockd.routing import plan_for
from lockd.target import Target
from tests.peers import PeerFailed, UvIndexes, pip_download_lock, uv_compile

TARGETS = {
    "glibc-2.34": Target.of("linux_x86_64", "3.12", glibc="2.34"),
    "musl-aarch64": Target.of("aarch64-unknown-linux-musl", "3.12"),
    "macos-x86_64-14": Target.of("macos_x86_64", "3.13", macos="14.0"),
    "windows-arm64": Target.of("windows_arm64", "3.13"),
    "python-3.14": Target.of("linux_x86_64", "3.14"),
    "python-3.15": Target.of("macos_arm64", "3.15"),
    "python-3.14t": Target.of("linux_x86_64", "3.14t"),
}
CASES = {
    "web": "fastapi\nuvicorn[standard]\npydantic>=2",
    "markers": "lockd-fx-markers\nlockd-fx-pyreq",
    "extras": "lockd-fx-extras[all]\nrequests",
}


@pytest.fixture(scope="module")
def client() -> Iterator[IndexClient]:
    with IndexClient(timeout=20.0) as instance:
        yield instance


@pytest.fixture(scope="module")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uv-cache")


def _resolve(index: WatchedIndex, client: IndexClient, requirements: str, target: Target) -> Lock:
    request = LockRequest(
        requirements=parse_requirements(requirements),
        constraints=(),
        target=target,
        plan=plan_for(target, default_url=index.pypi_url, pytorch_base=index.pytorch_base),
        options=LockOptions(),
    )
    return resolve(request, client)


@pytest.mark.parametrize("target_name", list(TARGETS))
@pytest.mark.parametrize("case", list(CASES))
def test_pins_equal_uv_for_each_new_target_kind(  # noqa: PLR0917 - pytest passes fixtures by position
    fixture_index: WatchedIndex,
    client: IndexClient,
    case: str,
    target_name: str,
    tmp_path: Path,
    uv_cache: Path,
) -> None:
    target = TARGETS[target_name]
    indexes = UvIndexes(fixture_index.pypi_url)
    try:
        lock = _resolve(fixture_index, client, CASES[case], target)
    except LockdError as refused:
        # Where lockd finds no installable file (the fixture has no wheel for that target and no
        # sdist), uv must not find a resolution either.
        with pytest.raises(PeerFailed) as failed:
            uv_compile(CASES[case], target, indexes, tmp_path, uv_cache=uv_cache)
        assert refused.context.get("project") or "has no file for" in refused.message, refused
        assert "no wheels" in str(failed.value) or "not satisfiable" in str(failed.value), failed.value
        return
    expected = uv_compile(CASES[case], target, indexes, tmp_path, uv_cache=uv_cache)
    assert {name: str(version) for name, version in lock.pins.items()} == expected
    downloaded = pip_download_lock(lock, tmp_path)
    assert downloaded, "pip found no wheel of the lock for the target"
