"""The sandboxed metadata hook: build code runs only under bubblewrap, without network, host files or env."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import shutil
import zipfile
from collections.abc import Sequence
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from fixtures.index import FixtureIndex
from fixtures.legacy_sdists import LEGACY_BUILD_MARKER, legacy_sdist, publish_legacy_sdist
from lockd.config import Settings
from lockd.errors import SdistNeedsBuild
from lockd.sdist_sandbox import BuildWheel, SandboxedMetadataBuilder, SandboxLimits
from lockd.sdist_sources import metadata_source, sdist_core_metadata
from lockd.simple import DistFile
from tests.support import request_for, resolve_offline

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bubblewrap is not installed (.ci/run installs it)"
)


def _file(project: str, version: str) -> DistFile:
    filename = f"{project.replace('-', '_')}-{version}.tar.gz"
    return DistFile.of(
        name=canonicalize_name(project), version=Version(version), filename=filename,
        url=f"https://files.example/{filename}", kind="sdist", tags=frozenset(), sha256=None, size=None,
        requires_python=None, yanked=None, upload_time=None, metadata_url=None, metadata_sha256=None,
    )  # fmt: skip


def _setuptools_wheel() -> BuildWheel:
    """The test venv's setuptools, zipped as a wheel: what lockd would have resolved and hashed."""
    buffer = io.BytesIO()
    spec = importlib.util.find_spec("setuptools")
    assert spec is not None and spec.origin is not None
    root = Path(spec.origin).parent.parent
    with zipfile.ZipFile(buffer, "w") as wheel:
        for top in ("setuptools", "pkg_resources", "_distutils_hack"):
            for path in (root / top).rglob("*"):
                if not path.is_file() or "__pycache__" in path.parts:
                    continue
                wheel.write(path, str(path.relative_to(root)))
    data = buffer.getvalue()
    return ("setuptools-0-py3-none-any.whl", hashlib.sha256(data).hexdigest(), data)


def _summary(metadata: bytes) -> str:
    return str(BytesHeaderParser().parsebytes(metadata)["Summary"])


def test_an_in_tree_backend_runs_without_network_host_files_or_environment() -> None:
    Path(LEGACY_BUILD_MARKER).unlink(missing_ok=True)
    asked: list[Sequence[str]] = []

    def no_requirements(requires: Sequence[str]) -> list[BuildWheel]:
        asked.append(list(requires))
        return []

    archive = legacy_sdist(
        "lockd-fx-probe", "1.0", requires_txt=None, egg_info=False, build="in-tree", requires=("six>=1",)
    )
    os.environ["LOCKD_SECRET_FOR_TEST"] = "x"
    try:
        metadata = sdist_core_metadata(
            _file("lockd-fx-probe", "1.0"),
            io.BytesIO(archive),
            max_bytes=1 << 20,
            builder=SandboxedMetadataBuilder(no_requirements),
        )
    finally:
        del os.environ["LOCKD_SECRET_FOR_TEST"]
    assert asked == [[]]
    assert _summary(metadata) == "wrote-marker network-blocked host-files-hidden env-empty"
    assert BytesHeaderParser().parsebytes(metadata).get_all("Requires-Dist") == ["six>=1"]
    assert metadata_source("sdist", metadata) == "sandbox"
    # The marker went to the sandbox's own /tmp: nothing on the host.
    assert not Path(LEGACY_BUILD_MARKER).exists()


def test_setup_py_runs_under_setuptools_legacy_backend_from_the_wheels_given() -> None:
    Path(LEGACY_BUILD_MARKER).unlink(missing_ok=True)
    wheel = _setuptools_wheel()
    asked: list[Sequence[str]] = []

    def setuptools_only(requires: Sequence[str]) -> list[BuildWheel]:
        asked.append(list(requires))
        return [wheel]

    archive = legacy_sdist("lockd-fx-legacy", "2.0", requires_txt=None, egg_info=False, requires=("idna>=3",))
    builder = SandboxedMetadataBuilder(setuptools_only, limits=SandboxLimits(seconds=120))
    metadata = builder(_file("lockd-fx-legacy", "2.0"), io.BytesIO(archive))
    assert asked == [["setuptools>=40.8.0"]]
    assert BytesHeaderParser().parsebytes(metadata).get_all("Requires-Dist") == ["idna>=3"]
    assert _summary(metadata) == "wrote-marker network-blocked host-files-hidden env-empty"
    assert not Path(LEGACY_BUILD_MARKER).exists()


def test_a_hook_past_its_time_is_refused() -> None:
    archive = legacy_sdist("lockd-fx-legacy", "2.0", requires_txt=None, egg_info=False)
    builder = SandboxedMetadataBuilder(lambda requires: [], limits=SandboxLimits(seconds=0.01))
    with pytest.raises(SdistNeedsBuild, match="ran past"):
        builder(_file("lockd-fx-legacy", "2.0"), io.BytesIO(archive))


def test_a_build_requirement_with_the_wrong_hash_is_refused() -> None:
    filename, _sha256, data = _setuptools_wheel()
    archive = legacy_sdist("lockd-fx-legacy", "2.0", requires_txt=None, egg_info=False)
    builder = SandboxedMetadataBuilder(lambda requires: [(filename, "0" * 64, data)])
    with pytest.raises(SdistNeedsBuild, match="does not match its sha256"):
        builder(_file("lockd-fx-legacy", "2.0"), io.BytesIO(archive))


def test_a_server_in_sandbox_mode_locks_an_sdist_only_its_build_describes(
    mutable_index: FixtureIndex,
) -> None:
    Path(LEGACY_BUILD_MARKER).unlink(missing_ok=True)
    publish_legacy_sdist(
        mutable_index, "lockd-fx-probe", "1.0", requires_txt=None, egg_info=False, build="in-tree",
        requires=("lockd-fx-plain==1.0",),
    )  # fmt: skip
    target = {"platform": "linux_x86_64", "python": "3.11"}
    static = Settings(index_url=mutable_index.pypi_url)
    with pytest.raises(SdistNeedsBuild):
        resolve_offline(static, request_for(static, requirements="lockd-fx-probe", target=target))
    sandbox = Settings(index_url=mutable_index.pypi_url, sdist_metadata="sandbox")
    lock, _stats = resolve_offline(
        sandbox, request_for(sandbox, requirements="lockd-fx-probe", target=target)
    )
    assert {n: str(v) for n, v in lock.pins.items()} == {"lockd-fx-probe": "1.0", "lockd-fx-plain": "1.0"}
    probe = lock.package("lockd-fx-probe")
    assert probe is not None and probe.metadata == "sandbox"
    assert not Path(LEGACY_BUILD_MARKER).exists()
