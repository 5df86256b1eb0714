"""`lockd.sdist_metadata`: an sdist's PKG-INFO is used only when PEP 643 says it is static."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from lockd.errors import IndexUnavailable, SdistNeedsBuild
from lockd.sdist_metadata import static_pkg_info, trusted_pkg_info
from lockd.simple import DistFile

LIMIT = 1024 * 1024


def _sdist(filename: str = "demo-1.0.tar.gz") -> DistFile:
    return DistFile(
        name=canonicalize_name("demo"), version=Version("1.0"), filename=filename,
        url=f"https://files.example/{filename}", kind="sdist", tags=frozenset(), sha256=None, size=None,
        requires_python=None, yanked=None, upload_time=None, metadata_url=None, metadata_sha256=None,
    )  # fmt: skip


def _pkg_info(metadata_version: str, *dynamic: str) -> bytes:
    lines = [f"Metadata-Version: {metadata_version}", "Name: demo", "Version: 1.0", "Requires-Dist: idna>=3"]
    lines += [f"Dynamic: {field}" for field in dynamic]
    return ("\n".join(lines) + "\n").encode()


def _tar(members: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    buffer.seek(0)
    return buffer


def _zip(members: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize(
    "pkg_info",
    [
        _pkg_info("2.2"),
        _pkg_info("2.4", "Classifier", "License-Expression"),
        _pkg_info("2.3", "requires-python"),
    ],
)
def test_static_dependencies_are_trusted(pkg_info: bytes) -> None:
    assert trusted_pkg_info(_sdist(), pkg_info) is pkg_info


@pytest.mark.parametrize(
    ("pkg_info", "reason"),
    [
        (_pkg_info("2.1"), "its PKG-INFO is Metadata-Version 2.1 (static metadata needs ≥ 2.2)"),
        (_pkg_info("two"), "its PKG-INFO is Metadata-Version two (static metadata needs ≥ 2.2)"),
        (b"Name: demo\n", "its PKG-INFO is Metadata-Version unknown (static metadata needs ≥ 2.2)"),
        (_pkg_info("2.2", "Requires-Dist"), "its PKG-INFO marks Requires-Dist as Dynamic"),
        (_pkg_info("2.4", "requires-dist "), "its PKG-INFO marks Requires-Dist as Dynamic"),
    ],
)
def test_dependencies_known_only_after_a_build_are_refused(pkg_info: bytes, reason: str) -> None:
    with pytest.raises(SdistNeedsBuild) as raised:
        trusted_pkg_info(_sdist(), pkg_info)
    assert raised.value.message == (
        "demo 1.0 is only available as a source distribution whose dependencies are known only "
        f"after a build: {reason}"
    )
    assert raised.value.context == {"project": "demo", "version": "1.0", "filename": "demo-1.0.tar.gz"}


def test_pkg_info_is_read_from_the_top_directory_of_a_tar_or_zip() -> None:
    static = _pkg_info("2.2")
    nested = {"demo-1.0/src/demo.egg-info/PKG-INFO": _pkg_info("2.1"), "demo-1.0/PKG-INFO": static}
    assert static_pkg_info(_sdist(), _tar(nested), max_bytes=LIMIT) == static
    assert static_pkg_info(_sdist("demo-1.0.zip"), _zip(nested), max_bytes=LIMIT) == static


def test_an_sdist_without_pkg_info_needs_a_build() -> None:
    with pytest.raises(SdistNeedsBuild, match="without PKG-INFO"):
        static_pkg_info(_sdist(), _tar({"demo-1.0/setup.py": b"raise SystemExit"}), max_bytes=LIMIT)
    with pytest.raises(SdistNeedsBuild, match="without PKG-INFO"):
        static_pkg_info(_sdist("demo-1.0.zip"), _zip({"PKG-INFO": _pkg_info("2.2")}), max_bytes=LIMIT)


@pytest.mark.parametrize("filename", ["demo-1.0.tar.gz", "demo-1.0.zip"])
def test_an_unreadable_archive_is_index_unavailable(filename: str) -> None:
    with pytest.raises(IndexUnavailable) as raised:
        static_pkg_info(_sdist(filename), io.BytesIO(b"\x1f\x8b not really an archive"), max_bytes=LIMIT)
    assert raised.value.message.startswith(f"{filename} is not a readable source archive:")
    assert raised.value.context == {"url": f"https://files.example/{filename}"}
