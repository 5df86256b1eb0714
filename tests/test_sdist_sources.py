"""Which source of an sdist's metadata wins: static PKG-INFO, then egg-info, then a sandboxed build."""

from __future__ import annotations

import io
import tarfile
from typing import IO

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from fixtures.legacy_sdists import legacy_sdist
from lockd.errors import SdistNeedsBuild
from lockd.sdist_sources import metadata_source, sdist_core_metadata
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
