"""Wheels named by URL: only from allowed hosts, read with the index client's limits, hashed, drift-checked."""

from __future__ import annotations

import hashlib

import pytest

from fixtures.index import FixtureIndex
from lockd.config import Settings
from lockd.drift import check_files
from lockd.errors import TamperedFile, UnsupportedRequirement
from lockd.index import IndexClient
from lockd.inputs import LockRequest, parse_requirements
from lockd.lock import Lock
from lockd.render.pylock import render_pylock_toml
from lockd.render.requirements_txt import render_requirements_txt
from tests.support import request_for, resolve_offline

_TARGET = {"platform": "linux_x86_64", "python": "3.11"}
_WHEEL = "lockd_fx_urlwheel-3.0-py3-none-any.whl"


def _wheel_url(index: FixtureIndex) -> str:
    index.publish("lockd-fx-urlwheel", "3.0", requires_dist=("lockd-fx-plain==1.0",))
    return f"{index.url}/files/pypi/lockd-fx-urlwheel/{_WHEEL}"


def _settings(index: FixtureIndex) -> Settings:
    return Settings(index_url=index.pypi_url, url_hosts=f"files.example.org, {index.url}")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (
            "x @ https://elsewhere.example/x-1.0-py3-none-any.whl",
            "elsewhere.example is not a host this server",
        ),
        ("x @ https://files.example.org/x-1.0.tar.gz", "lockable only for wheels (.whl)"),
        (
            "x @ http://files.example.org/x-1.0-py3-none-any.whl",
            "files.example.org is not a host this server",
        ),
        ("x @ https://files.example.org/x-1.0-py3-none-any.whl#md5=00", "#sha256=<64 hex digits>"),
        ("x @ git+https://files.example.org/x.git", "lockable only as https:// wheel URLs"),
    ],
)
def test_only_wheels_from_allowed_hosts_are_accepted(line: str, problem: str) -> None:
    with pytest.raises(UnsupportedRequirement) as raised:
        parse_requirements(line, url_hosts=frozenset({"files.example.org"}))
    assert problem in raised.value.message
    allowed = parse_requirements(
        "X @ https://files.example.org/x-1.0-py3-none-any.whl", url_hosts={"files.example.org"}
    )
    assert allowed[0].canonical == "x @ https://files.example.org/x-1.0-py3-none-any.whl"


def test_a_url_wheel_locks_as_a_direct_reference(mutable_index: FixtureIndex) -> None:
    url = _wheel_url(mutable_index)
    digest = hashlib.sha256(mutable_index.content(_WHEEL)).hexdigest()
    settings = _settings(mutable_index)
    for line in (f"lockd-fx-urlwheel @ {url}", f"lockd-fx-urlwheel @ {url}#sha256={digest}"):
        request = request_for(settings, requirements=line, target=_TARGET)
        assert LockRequest.from_json(request.canonical_bytes()) == request
        lock, _stats = resolve_offline(settings, request)
        assert {n: str(v) for n, v in lock.pins.items()} == {
            "lockd-fx-urlwheel": "3.0",
            "lockd-fx-plain": "1.0",
        }
        package = lock.package("lockd-fx-urlwheel")
        assert package is not None and package.direct and package.index == ""
        assert [(f.url, f.sha256) for f in package.files] == [(url, digest)]
        assert Lock.from_json(lock.canonical_bytes()) == lock
        text = render_requirements_txt(lock)
        assert f"lockd-fx-urlwheel @ {url} \\\n    --hash=sha256:{digest}\n" in text
        assert f"--extra-index-url {url}" not in text
        assert f'archive = {{ url = "{url}", hashes = {{ sha256 = "{digest}" }} }}' in render_pylock_toml(
            lock
        )


def test_a_wrong_sha256_in_the_url_is_refused(mutable_index: FixtureIndex) -> None:
    url = _wheel_url(mutable_index)
    settings = _settings(mutable_index)
    request = request_for(
        settings, requirements=f"lockd-fx-urlwheel @ {url}#sha256={'0' * 64}", target=_TARGET
    )
    with pytest.raises(TamperedFile):
        resolve_offline(settings, request)


def test_drift_checks_a_url_wheel_at_its_url(mutable_index: FixtureIndex) -> None:
    url = _wheel_url(mutable_index)
    settings = _settings(mutable_index)
    request = request_for(settings, requirements=f"lockd-fx-urlwheel @ {url}", target=_TARGET)
    lock, _stats = resolve_offline(settings, request)
    with IndexClient(timeout=10.0) as client:
        assert check_files(lock, client) == []
    mutable_index.replace_content(_WHEEL)
    with IndexClient(timeout=10.0) as client:
        assert [f.kind for f in check_files(lock, client)] == ["tampered"]
    mutable_index.delete(_WHEEL)
    with IndexClient(timeout=10.0) as client:
        assert [f.kind for f in check_files(lock, client)] == ["missing"]
