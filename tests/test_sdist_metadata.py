"""`lockd.sdist_metadata`: an sdist's PKG-INFO is used only when PEP 643 says it is static."""

from __future__ import annotations

import io
import random
import tarfile
import zipfile

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from lockd.errors import IndexUnavailable, SdistNeedsBuild, UnusableMetadata
from lockd.sdist_metadata import static_pkg_info, trusted_pkg_info
from lockd.simple import DistFile

LIMIT = 1024 * 1024


def _sdist(filename: str = "demo-1.0.tar.gz") -> DistFile:
    return DistFile.of(
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


def test_an_archive_of_too_many_members_is_refused_as_it_is_walked() -> None:
    members = {f"demo-1.0/m/{n}": b"" for n in range(30)} | {"demo-1.0/PKG-INFO": _pkg_info("2.2")}
    with pytest.raises(UnusableMetadata) as raised:
        static_pkg_info(_sdist(), _tar(members), max_bytes=LIMIT, max_members=20)
    assert raised.value.message == "demo-1.0.tar.gz has more than 20 members; lockd does not read it"
    assert raised.value.context["setting"] == "LOCKD_MAX_ARCHIVE_MEMBERS"
    with pytest.raises(UnusableMetadata, match="more than 20 members"):
        static_pkg_info(_sdist("demo-1.0.zip"), _zip(members), max_bytes=LIMIT, max_members=20)
    assert static_pkg_info(_sdist(), _tar(members), max_bytes=LIMIT, max_members=31) == _pkg_info("2.2")


def test_a_pkg_info_over_the_limit_is_refused_not_cut_short() -> None:
    big = _pkg_info("2.2") + b"Description: " + b"x" * 5000 + b"\n"
    for filename, archive in (("demo-1.0.tar.gz", _tar), ("demo-1.0.zip", _zip)):
        with pytest.raises(UnusableMetadata, match="PKG-INFO") as raised:
            static_pkg_info(_sdist(filename), archive({"demo-1.0/PKG-INFO": big}), max_bytes=4096)
        assert raised.value.context["setting"] == "LOCKD_MAX_METADATA_BYTES"


def test_a_member_too_large_to_walk_past_is_refused() -> None:
    members = {"demo-1.0/data.bin": b"\0" * 10_000, "demo-1.0/PKG-INFO": _pkg_info("2.2")}
    with pytest.raises(UnusableMetadata, match="a member of 10,000 bytes") as raised:
        static_pkg_info(_sdist(), _tar(members), max_bytes=LIMIT, max_member_bytes=4096)
    assert raised.value.context["setting"] == "LOCKD_MAX_SDIST_MEMBER_BYTES"


def test_a_tar_is_read_once_front_to_back_and_only_up_to_its_pkg_info() -> None:
    class _Once(io.BytesIO):
        def seek(self, offset: int, whence: int = 0) -> int:
            raise AssertionError("a tar sdist must be readable as a stream")

    noise = random.Random(13).randbytes(1_000_000)  # incompressible: the archive stays ~1 MB
    archive = _tar({"demo-1.0/PKG-INFO": _pkg_info("2.2"), "demo-1.0/noise.bin": noise})
    stream = _Once(archive.getvalue())
    assert static_pkg_info(_sdist(), stream, max_bytes=LIMIT) == _pkg_info("2.2")
    assert stream.tell() < 100_000 < len(archive.getvalue())


def test_a_zip_with_more_entries_than_the_limit_is_refused_before_zipfile_reads_them() -> None:
    archive = _zip({f"demo-1.0/{n}": b"" for n in range(50)})
    with pytest.raises(UnusableMetadata, match="more than 10 members"):
        static_pkg_info(_sdist("demo-1.0.zip"), archive, max_bytes=LIMIT, max_members=10)
