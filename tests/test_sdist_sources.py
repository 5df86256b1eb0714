"""Which source of an sdist's metadata wins: static PKG-INFO, then egg-info, then a sandboxed build."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import time
from collections.abc import Callable
from typing import IO

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from fixtures.legacy_sdists import legacy_sdist
from lockd.errors import IndexUnavailable, LockdError, SdistNeedsBuild, UnusableMetadata
from lockd.sdist_sources import metadata_source, sdist_core_metadata, tar_sdist_metadata
from lockd.simple import DistFile

LIMIT = 1024 * 1024


def _file(project: str = "promise", version: str = "2.3") -> DistFile:
    filename = f"{project}-{version}.tar.gz"
    return DistFile.of(
        name=canonicalize_name(project), version=Version(version), filename=filename,
        url=f"https://files.example/{filename}", kind="sdist", tags=frozenset(), sha256=None, size=None,
        requires_python=None, yanked=None, upload_time=None, metadata_url=None, metadata_sha256=None,
    )  # fmt: skip


def test_egg_info_requires_txt_is_read_as_data() -> None:
    archive = legacy_sdist(
        "promise", "2.3", requires_txt="six\n\n[test]\npytest>=2.7.3\n", requires_python=">=3.6"
    )
    metadata = sdist_core_metadata(_file(), io.BytesIO(archive), max_bytes=LIMIT)
    assert metadata == (
        b"Metadata-Version: 2.1\nName: promise\nVersion: 2.3\nRequires-Python: >=3.6\n"
        b'Requires-Dist: six\nRequires-Dist: pytest>=2.7.3; extra == "test"\nLockd-Metadata-Source: egg-info\n'
    )
    assert metadata_source("sdist", metadata) == "egg-info"


def test_an_egg_info_without_requires_txt_has_no_dependencies() -> None:
    archive = legacy_sdist("promise", "2.3", requires_txt=None)
    metadata = sdist_core_metadata(_file(), io.BytesIO(archive), max_bytes=LIMIT)
    assert b"Requires-Dist" not in metadata and metadata_source("sdist", metadata) == "egg-info"


def test_without_egg_info_the_refusal_stands() -> None:
    archive = legacy_sdist("promise", "2.3", requires_txt="six\n", egg_info=False)
    with pytest.raises(SdistNeedsBuild, match=r"Metadata-Version 2\.1"):
        sdist_core_metadata(_file(), io.BytesIO(archive), max_bytes=LIMIT)


def test_a_sandboxed_build_is_asked_only_after_egg_info() -> None:
    asked: list[str] = []

    def builder(file: DistFile, archive: IO[bytes]) -> bytes:
        asked.append(file.filename)
        return b"Metadata-Version: 2.1\nName: promise\nVersion: 2.3\nRequires-Dist: six\n"

    with_egg = legacy_sdist("promise", "2.3", requires_txt="six\n")
    sdist_core_metadata(_file(), io.BytesIO(with_egg), max_bytes=LIMIT, builder=builder)
    assert asked == []
    without = legacy_sdist("promise", "2.3", requires_txt=None, egg_info=False)
    built = sdist_core_metadata(_file(), io.BytesIO(without), max_bytes=LIMIT, builder=builder)
    assert asked == ["promise-2.3.tar.gz"] and metadata_source("sdist", built) == "sandbox"


def test_static_pkg_info_and_wheels_name_their_source() -> None:
    static = b"Metadata-Version: 2.2\nName: demo\nVersion: 1.0\n"
    assert metadata_source("sdist", static) == "pkg-info"
    assert metadata_source("wheel", static) is None


def _tar(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_the_projects_own_egg_info_one_level_down_is_read() -> None:
    # SQLAlchemy 1.4 keeps lib/SQLAlchemy.egg-info; a vendored project's egg-info there is not its own.
    pkg_info = "Metadata-Version: 2.1\nName: SQLAlchemy\nVersion: 1.4.54\n"
    archive = _tar(
        {
            "SQLAlchemy-1.4.54/PKG-INFO": pkg_info,
            "SQLAlchemy-1.4.54/lib/other.egg-info/requires.txt": "wrong\n",
            "SQLAlchemy-1.4.54/lib/SQLAlchemy.egg-info/PKG-INFO": pkg_info + "Requires-Python: >=2.7\n",
            "SQLAlchemy-1.4.54/lib/SQLAlchemy.egg-info/requires.txt": '[:python_version >= "3"]\ngreenlet!=0.4.17\n',
        }
    )
    metadata = sdist_core_metadata(_file("sqlalchemy", "1.4.54"), io.BytesIO(archive), max_bytes=LIMIT)
    assert b'Requires-Dist: greenlet!=0.4.17; python_version >= "3"\n' in metadata
    assert b"Requires-Python: >=2.7\n" in metadata and b"wrong" not in metadata


# -- one pass over a tar as it arrives (`tar_sdist_metadata`, what the index client reads with) ---


def _one_pass(file: DistFile, archive: bytes, *, member_limit: int = LIMIT) -> bytes:
    return tar_sdist_metadata(
        file, io.BytesIO(archive), max_bytes=LIMIT, max_members=1000, max_member_bytes=member_limit
    )


def _outcome(read: Callable[[], bytes]) -> bytes | str:
    try:
        return read()
    except LockdError as exc:
        return f"{type(exc).__name__}: {exc.message}"


@pytest.mark.parametrize(
    "archive",
    [
        legacy_sdist(
            "promise", "2.3", requires_txt="six\n\n[test]\npytest>=2.7.3\n", requires_python=">=3.6"
        ),
        legacy_sdist("promise", "2.3", requires_txt=None),
        legacy_sdist("promise", "2.3", requires_txt="six\n", egg_info=False),
        legacy_sdist("promise", "2.3", requires_txt="six\n", metadata_version="2.2"),
        legacy_sdist("promise", "2.3", requires_txt="[bad\n"),
        _tar({"promise-2.3/setup.py": "pass\n"}),
        _tar(
            {
                "promise-2.3/PKG-INFO": "Metadata-Version: 2.1\nName: promise\nVersion: 2.3\n",
                "promise-2.3/b.egg-info/requires.txt": "from-b\n",
                "promise-2.3/a.egg-info/requires.txt": "from-a\n",
                "promise-2.3/src/promise/promise.egg-info/requires.txt": "deeper\n",
            }
        ),
    ],
    ids=[
        "egg-info",
        "no-requires-txt",
        "no-egg-info",
        "static",
        "bad-requires-txt",
        "no-pkg-info",
        "two-egg-infos",
    ],
)
def test_one_pass_gives_what_reading_a_copy_gives(archive: bytes) -> None:
    copy = _outcome(lambda: sdist_core_metadata(_file(), io.BytesIO(archive), max_bytes=LIMIT))
    assert _outcome(lambda: _one_pass(_file(), archive)) == copy


def test_one_pass_keeps_egg_info_met_before_pkg_info() -> None:
    pkg_info = "Metadata-Version: 2.1\nName: promise\nVersion: 2.3\n"
    archive = _tar(
        {
            "promise-2.3/promise.egg-info/requires.txt": "six\n",
            "promise-2.3/promise.egg-info/PKG-INFO": pkg_info + "Requires-Python: >=3.6\n",
            "promise-2.3/PKG-INFO": pkg_info,
        }
    )
    metadata = _one_pass(_file(), archive)
    assert b"Requires-Dist: six\n" in metadata and b"Requires-Python: >=3.6\n" in metadata
    assert metadata_source("sdist", metadata) == "egg-info"


class _Watched(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.furthest = 0

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        self.furthest = max(self.furthest, self.tell())
        return data


def _with_noise(members: dict[str, str], noise: int) -> bytes:
    """`members`, then an incompressible member of `noise` bytes, then an egg-info requires.txt."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            archive.addfile(info, io.BytesIO(text.encode()))
        info = tarfile.TarInfo("promise-2.3/data.bin")
        info.size = noise
        archive.addfile(info, io.BytesIO(os.urandom(noise)))
        info = tarfile.TarInfo("promise-2.3/promise.egg-info/requires.txt")
        info.size = 4
        archive.addfile(info, io.BytesIO(b"six\n"))
    return buffer.getvalue()


def test_one_pass_stops_at_a_static_pkg_info_and_reads_to_the_end_only_for_egg_info() -> None:
    static = _with_noise(
        {"promise-2.3/PKG-INFO": "Metadata-Version: 2.2\nName: promise\nVersion: 2.3\n"}, 2_000_000
    )
    watched = _Watched(static)
    tar_sdist_metadata(_file(), watched, max_bytes=LIMIT, max_members=1000, max_member_bytes=LIMIT * 4)
    assert watched.furthest < len(static) // 4
    legacy = _with_noise(
        {"promise-2.3/PKG-INFO": "Metadata-Version: 2.1\nName: promise\nVersion: 2.3\n"}, 2_000_000
    )
    watched = _Watched(legacy)
    metadata = tar_sdist_metadata(
        _file(), watched, max_bytes=LIMIT, max_members=1000, max_member_bytes=LIMIT * 4
    )
    assert b"Requires-Dist: six\n" in metadata and watched.furthest > len(legacy) * 0.99


def test_one_pass_holds_every_member_to_the_limits_past_pkg_info_too() -> None:
    # Skipping a member inflates all of it: past a non-static PKG-INFO, the walk goes on under
    # the same member limit, so a bomb after it is refused, never inflated.
    archive = _with_noise(
        {"promise-2.3/PKG-INFO": "Metadata-Version: 2.1\nName: promise\nVersion: 2.3\n"}, 300_000
    )
    with pytest.raises(UnusableMetadata, match="has a member of 300,000 bytes"):
        _one_pass(_file(), archive, member_limit=100_000)


def test_one_pass_reports_a_broken_archive_as_the_reading_a_copy_does() -> None:
    legacy = legacy_sdist("promise", "2.3", requires_txt="six\n")
    raw = gzip.decompress(legacy)
    # Cut inside the members after PKG-INFO: the static reader read a PKG-INFO that needs a
    # build, so that refusal stands, as when the walk of a copy failed.
    cut = gzip.compress(raw[: raw.index(b"promise.egg-info") + 700])
    with pytest.raises(SdistNeedsBuild, match=r"Metadata-Version 2\.1"):
        _one_pass(_file(), cut)
    with pytest.raises(IndexUnavailable, match="not a readable source archive"):
        _one_pass(_file(), b"\x1f\x8b\x08 not a tar at all")


def test_one_pass_over_many_egg_info_directories_stays_linear() -> None:
    # A hostile tar may name a new egg-info directory in every member: noting each must not
    # compare it with all those before (30,000 members: ~4.5e8 comparisons that way).
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        pkg_info = b"Metadata-Version: 2.1\nName: promise\nVersion: 2.3\n"
        info = tarfile.TarInfo("promise-2.3/PKG-INFO")
        info.size = len(pkg_info)
        archive.addfile(info, io.BytesIO(pkg_info))
        for i in range(30_000):
            archive.addfile(tarfile.TarInfo(f"promise-2.3/d{i}.egg-info/SOURCES.txt"), io.BytesIO(b""))
    started = time.monotonic()
    metadata = tar_sdist_metadata(
        _file(), io.BytesIO(buffer.getvalue()), max_bytes=LIMIT, max_members=100_000, max_member_bytes=LIMIT
    )
    assert time.monotonic() - started < 5.0
    assert metadata_source("sdist", metadata) == "egg-info" and b"Requires-Dist" not in metadata
