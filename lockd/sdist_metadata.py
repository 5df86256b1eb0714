"""Core metadata of a source distribution, when it can be trusted without a build (PEP 643).

An sdist's PKG-INFO is read from the archive (tar or zip; nothing in it is ever executed), and
is used only when its dependency metadata is static: Metadata-Version 2.2 or later, and
Requires-Dist not marked `Dynamic`. Anything else raises `SdistNeedsBuild`. No network I/O:
the index client hands over the archive (a tar may be a stream still arriving: it is read once,
front to back, and only up to its PKG-INFO).

The archive is index-supplied and may be hostile: the walk stops past `max_members` members
(counted from the zip's end record before `zipfile` reads its directory), refuses a member
larger than `max_member_bytes` (skipping it would inflate all of it) and a PKG-INFO larger
than `max_bytes` (`UnusableMetadata`), keeps no list of the members it passed, and checks the
deadline as it goes.
"""

from __future__ import annotations

import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from packaging.version import Version

from lockd.deadline import check_deadline
from lockd.errors import IndexUnavailable, SdistNeedsBuild, UnusableMetadata
from lockd.index_text import header_fields
from lockd.tar_stream import open_tar_stream

if TYPE_CHECKING:
    from lockd.simple import DistFile

__all__ = [
    "ARCHIVE_ERRORS",
    "ArchiveLimits",
    "is_pkg_info",
    "no_pkg_info",
    "static_pkg_info",
    "tar_members",
    "trusted_pkg_info",
    "unreadable_archive",
]

_STATIC_METADATA_VERSION = Version("2.2")
_BUILD_HINT = "lockd never runs build backends; pin a version that has wheels for the target"
_LIMITS_HINT = "an sdist this large is an attack or a mistake; if it is real, raise {}"
_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_CHECK_EVERY = 256
# What a damaged or hostile archive raises while it is read.
ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, zlib.error, struct.error)


def static_pkg_info(
    file: DistFile,
    archive: IO[bytes],
    *,
    max_bytes: int,
    max_members: int = 200_000,
    max_member_bytes: int = 256 * 1024 * 1024,
) -> bytes:
    """The PKG-INFO of the sdist `file` read from `archive`, if its dependencies are static."""
    limits = ArchiveLimits(file, max_bytes, max_members, max_member_bytes)
    return trusted_pkg_info(file, _read_pkg_info(file, archive, limits))


def trusted_pkg_info(file: DistFile, pkg_info: bytes) -> bytes:
    """`pkg_info` itself when PEP 643 lets lockd trust its Requires-Dist, else `SdistNeedsBuild`."""
    headers = header_fields(pkg_info)
    version_text = headers.get("Metadata-Version", "").strip()
    dynamic = {value.strip().lower() for value in headers.get_all("Dynamic") or []}
    try:
        metadata_version = Version(version_text)
    except ValueError:  # InvalidVersion, or a number past Python's 4,300-digit limit
        metadata_version = Version("0")
    if metadata_version < _STATIC_METADATA_VERSION:
        reason = f"its PKG-INFO is Metadata-Version {version_text or 'unknown'} (static metadata needs ≥ 2.2)"
    elif "requires-dist" in dynamic:
        reason = "its PKG-INFO marks Requires-Dist as Dynamic"
    else:
        return pkg_info
    raise SdistNeedsBuild(
        f"{file.name} {file.version} is only available as a source distribution whose dependencies "
        f"are known only after a build: {reason}",
        hint=_BUILD_HINT,
        context=_context(file),
    )


class ArchiveLimits:
    """What one sdist may make lockd walk and read; each refusal names the setting that raises it."""

    def __init__(self, file: DistFile, max_bytes: int, max_members: int, max_member_bytes: int) -> None:
        self.file = file
        self.max_bytes = max_bytes
        self.max_members = max_members
        self.max_member_bytes = max_member_bytes

    def check_count(self, count: int) -> None:
        if count > self.max_members:
            raise self.refuse(f"has more than {self.max_members:,} members", "LOCKD_MAX_ARCHIVE_MEMBERS")
        if count % _CHECK_EVERY == 0:
            check_deadline(f"reading {self.file.filename}")

    def check_size(self, name: str, size: int) -> None:
        if is_pkg_info(name) and size > self.max_bytes:
            raise self.refuse(f"has a PKG-INFO of {size:,} bytes", "LOCKD_MAX_METADATA_BYTES")
        if size > self.max_member_bytes:
            raise self.refuse(f"has a member of {size:,} bytes", "LOCKD_MAX_SDIST_MEMBER_BYTES")

    def read(self, member: IO[bytes]) -> bytes:
        data = member.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            raise self.refuse(f"has a PKG-INFO over {self.max_bytes:,} bytes", "LOCKD_MAX_METADATA_BYTES")
        return data

    def refuse(self, why: str, setting: str) -> UnusableMetadata:
        return UnusableMetadata(
            f"{self.file.filename} {why}; lockd does not read it",
            hint=_LIMITS_HINT.format(setting),
            context={**_context(self.file), "setting": setting},
        )


def _read_pkg_info(file: DistFile, archive: IO[bytes], limits: ArchiveLimits) -> bytes:
    """The top-level `<dir>/PKG-INFO` of a tar or zip sdist."""
    try:
        found = (
            _zip_pkg_info(archive, limits)
            if file.filename.endswith(".zip")
            else _tar_pkg_info(archive, limits)
        )
    except ARCHIVE_ERRORS as exc:
        raise unreadable_archive(file, exc) from None
    if found is not None:
        return found
    raise no_pkg_info(file)


def unreadable_archive(file: DistFile, exc: BaseException) -> IndexUnavailable:
    return IndexUnavailable(
        f"{file.filename} is not a readable source archive: {exc}", context={"url": file.url}
    )


def no_pkg_info(file: DistFile) -> SdistNeedsBuild:
    return SdistNeedsBuild(
        f"{file.name} {file.version} is a source distribution without PKG-INFO; its dependencies are "
        "known only after a build",
        hint=_BUILD_HINT,
        context=_context(file),
    )


def is_pkg_info(name: str) -> bool:
    """Whether a member is the sdist's own PKG-INFO: `<dir>/PKG-INFO`."""
    return name.count("/") == 1 and name.endswith("/PKG-INFO")


def tar_members(tarred: tarfile.TarFile, limits: ArchiveLimits) -> Iterator[tarfile.TarInfo]:
    """The members of a tar opened in stream mode, in order, each within `limits` before it is yielded."""
    count = 0
    while (info := tarred.next()) is not None:
        count += 1
        limits.check_count(count)
        # tarfile keeps every member it passes in `members` (not in typeshed); a walk of
        # 200,000 would hold them all, and sequential `next()` never reads them back.
        vars(tarred)["members"].clear()
        limits.check_size(info.name, info.size)
        yield info


def _tar_pkg_info(archive: IO[bytes], limits: ArchiveLimits) -> bytes | None:
    # Stream mode: the archive is read once, front to back, and may be a network stream.
    with open_tar_stream(archive) as tarred:
        for info in tar_members(tarred, limits):
            if info.isfile() and is_pkg_info(info.name):
                extracted = tarred.extractfile(info)
                if extracted is not None:
                    return limits.read(extracted)
    return None


def _zip_pkg_info(archive: IO[bytes], limits: ArchiveLimits) -> bytes | None:
    # zipfile reads the whole central directory into objects first: count its entries before.
    limits.check_count(_zip_entries(archive))
    archive.seek(0)
    with zipfile.ZipFile(archive) as zipped:
        names = sorted(info.filename for info in zipped.infolist() if is_pkg_info(info.filename))
        if not names:
            return None
        info = zipped.getinfo(names[0])
        limits.check_size(info.filename, info.file_size)
        with zipped.open(info) as member:
            return limits.read(member)


def _zip_entries(archive: IO[bytes]) -> int:
    """The entry count of a zip's end of central directory record (or its zip64 twin)."""
    size = archive.seek(0, 2)
    start = max(0, size - _EOCD.size - 65535)
    archive.seek(start)
    tail = archive.read(size - start)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0:
        raise zipfile.BadZipFile("no end of central directory record")
    entries = _EOCD.unpack_from(tail, at)[4]
    if entries != 0xFFFF or at < _ZIP64_LOCATOR.size:
        return int(entries)
    locator = _ZIP64_LOCATOR.unpack_from(tail, at - _ZIP64_LOCATOR.size)
    archive.seek(locator[2])
    record = _ZIP64_EOCD.unpack(archive.read(_ZIP64_EOCD.size))
    return int(record[7])


def _context(file: DistFile) -> dict[str, str]:
    return {"project": file.name, "version": str(file.version), "filename": file.filename}
