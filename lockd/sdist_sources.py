"""Which source of an sdist's dependency metadata wins, without running its code by default.

In order, the first that gives an answer:

1. PKG-INFO when PEP 643 says it is static (`lockd.sdist_metadata`): used as it is.
2. `<name>.egg-info/requires.txt` (with its PKG-INFO for `Requires-Python`), read as data
   (`lockd.egg_info`): setuptools wrote it when the sdist was made. An egg-info directory
   without requires.txt means no dependencies, since setuptools deletes an empty one.
3. The PEP 517 metadata hook run in a sandbox, only when the operator enables it
   (`LOCKD_SDIST_METADATA=sandbox`): a `MetadataBuilder` given by the caller, never run in
   the server process.
4. The operator's per-package override (`lockd.resolver`, from `LockOptions`), applied by the
   resolver when all of the above refused (`SdistNeedsBuild`).

Whatever wins is one core-metadata document; 2 and 3 carry a `Lockd-Metadata-Source` header
naming their source, so the answer, cached by the sdist's sha256 with the metadata, says
where it came from (`metadata_source`), and every lock records it.
"""

from __future__ import annotations

import tarfile
import zipfile
from typing import IO, TYPE_CHECKING, Protocol

from packaging.utils import canonicalize_name

from lockd.egg_info import RequiresTxtError, core_metadata, requires_dist
from lockd.errors import SdistNeedsBuild
from lockd.index_text import header_fields
from lockd.sdist_metadata import (
    ARCHIVE_ERRORS,
    ArchiveLimits,
    is_pkg_info,
    no_pkg_info,
    static_pkg_info,
    tar_members,
    trusted_pkg_info,
    unreadable_archive,
)
from lockd.tar_stream import open_tar_stream

if TYPE_CHECKING:
    from lockd.simple import DistFile

__all__ = [
    "SOURCE_HEADER",
    "MetadataBuilder",
    "metadata_source",
    "metadata_without_pkg_info",
    "sdist_core_metadata",
    "tar_sdist_metadata",
]

SOURCE_HEADER = "Lockd-Metadata-Source"


class MetadataBuilder(Protocol):
    """Runs an sdist's metadata hook somewhere safe; returns its METADATA or raises `SdistNeedsBuild`."""

    def __call__(self, file: DistFile, archive: IO[bytes]) -> bytes: ...


def metadata_source(kind: str, raw: bytes) -> str | None:
    """Where a file's metadata came from: None for a wheel, else `pkg-info`, `egg-info`, `sandbox`…"""
    if kind == "wheel":
        return None
    stamped = header_fields(raw).get(SOURCE_HEADER)
    return str(stamped).strip() if stamped else "pkg-info"


def sdist_core_metadata(
    file: DistFile, archive: IO[bytes], *, max_bytes: int, builder: MetadataBuilder | None = None
) -> bytes:
    """The sdist's core metadata from the first source that has it (see the module docstring)."""
    try:
        return static_pkg_info(file, archive, max_bytes=max_bytes)
    except SdistNeedsBuild as refusal:
        return metadata_without_pkg_info(file, archive, refusal, max_bytes=max_bytes, builder=builder)


def metadata_without_pkg_info(
    file: DistFile,
    archive: IO[bytes],
    refusal: SdistNeedsBuild,
    *,
    max_bytes: int,
    builder: MetadataBuilder | None = None,
) -> bytes:
    """The sources after static PKG-INFO: egg-info, then the builder; `refusal` if neither gives it."""
    archive.seek(0)
    from_egg_info = _egg_info_metadata(file, archive, max_bytes)
    if from_egg_info is not None:
        return from_egg_info
    if builder is None:
        raise refusal
    archive.seek(0)
    try:
        built = builder(file, archive)
    except SdistNeedsBuild as failed:
        raise SdistNeedsBuild(
            f"{refusal.message}; the sandboxed build did not give metadata either: {failed.message}",
            hint=refusal.hint,
            context=refusal.context,
        ) from None
    return built + f"{SOURCE_HEADER}: sandbox\n".encode()


def _egg_info_metadata(file: DistFile, archive: IO[bytes], max_bytes: int) -> bytes | None:
    found = _EggInfo(file.name)
    try:
        if file.filename.endswith(".zip"):
            with zipfile.ZipFile(archive) as zipped:
                for info in zipped.infolist():
                    if not info.is_dir() and found.wanted(info.filename):
                        with zipped.open(info) as member:
                            found.keep(info.filename, member.read(max_bytes))
        else:
            with tarfile.open(fileobj=archive, mode="r:*") as tarred:
                for entry in tarred:
                    if entry.isfile() and found.wanted(entry.name):
                        found.keep(entry.name, _read_tar(tarred, entry, max_bytes))
    except ARCHIVE_ERRORS:
        return None  # the static reader already said what is wrong with the archive
    return found.metadata(file)


def tar_sdist_metadata(
    file: DistFile, archive: IO[bytes], *, max_bytes: int, max_members: int, max_member_bytes: int
) -> bytes:
    """Static PKG-INFO, else egg-info metadata, of a tar sdist read once, front to back.

    `archive` may be a network stream still arriving. The walk stops at a static PKG-INFO, as
    `static_pkg_info` does; past one that is not static, it goes on to the end for the egg-info
    members, collecting those it met before too, within the same member limits. So a tar that
    needs its egg-info is inflated once, as it arrives, never copied to disk and read again.
    No builder here: a caller with one reads a copy of the archive (`metadata_without_pkg_info`).
    """
    limits = ArchiveLimits(file, max_bytes, max_members, max_member_bytes)
    found = _EggInfo(file.name)
    refusal: SdistNeedsBuild | None = None
    try:
        # tarfile's own 10 KiB reads: it slices its inflated buffer on every 512-byte header read,
        # so reads of 1 MiB of a well-compressed tar (400,000 empty members) went quadratic.
        with open_tar_stream(archive) as tarred:
            for info in tar_members(tarred, limits):
                if not info.isfile():
                    continue
                if refusal is None and is_pkg_info(info.name):
                    extracted = tarred.extractfile(info)
                    if extracted is None:
                        continue
                    try:
                        return trusted_pkg_info(file, limits.read(extracted))
                    except SdistNeedsBuild as exc:
                        refusal = exc
                elif found.wanted(info.name):
                    found.keep(info.name, _read_tar(tarred, info, max_bytes))
    except ARCHIVE_ERRORS as exc:
        if refusal is None:
            raise unreadable_archive(file, exc) from None
        raise refusal from None  # as when the egg-info walk of a copy fails
    from_egg_info = found.metadata(file)
    if from_egg_info is not None:
        return from_egg_info
    raise no_pkg_info(file) if refusal is None else refusal


class _EggInfo:
    """The PKG-INFO and requires.txt of each egg-info directory an archive walk passes."""

    def __init__(self, project: str) -> None:
        self._project = project
        self._found: dict[str, dict[str, bytes]] = {}
        self._dirs: set[str] = set()  # a set: a hostile tar may hold 200,000 egg-info directories

    def wanted(self, path: str) -> bool:
        """Notes the egg-info directory of `path`; True for the two members worth reading."""
        directory = _egg_info_dir(path, self._project)
        if directory is None:
            return False
        self._dirs.add(directory)
        return path[len(directory) + 1 :] in ("PKG-INFO", "requires.txt")

    def keep(self, path: str, data: bytes) -> None:
        directory = _egg_info_dir(path, self._project)
        assert directory is not None
        self._found.setdefault(directory, {})[path[len(directory) + 1 :]] = data

    def metadata(self, file: DistFile) -> bytes | None:
        """Core metadata from the shallowest egg-info directory (then by name); None without one."""
        if not self._dirs:
            return None
        chosen = sorted(self._dirs, key=lambda d: (d.count("/"), d))[0]
        members = self._found.get(chosen, {})
        pkg_info, requires_txt = members.get("PKG-INFO", b""), members.get("requires.txt", b"")
        try:
            requires = requires_dist(requires_txt.decode("utf-8", "replace"))
        except RequiresTxtError:
            return None  # not what setuptools writes: trust none of it
        requires_python = header_fields(pkg_info).get("Requires-Python") if pkg_info else None
        return core_metadata(
            name=file.name,
            version=str(file.version),
            requires=requires,
            requires_python=str(requires_python).strip() if requires_python else None,
            source="egg-info",
            source_header=SOURCE_HEADER,
        )


def _egg_info_dir(path: str, project: str) -> str | None:
    """`pkg-1.0/pkg.egg-info`, or deeper (`lib/`, `src/python/pkg/`) when named for the project."""
    parts = path.split("/")
    if len(parts) > 2 and parts[1].endswith(".egg-info"):
        return "/".join(parts[:2])
    # Deeper only for the project's own: SQLAlchemy keeps it in lib/, grpcio in src/python/grpcio/.
    for depth in range(2, min(len(parts) - 1, 6)):
        part = parts[depth]
        if part.endswith(".egg-info") and canonicalize_name(part.removesuffix(".egg-info")) == project:
            return "/".join(parts[: depth + 1])
    return None


def _read_tar(tarred: tarfile.TarFile, member: tarfile.TarInfo, max_bytes: int) -> bytes:
    extracted = tarred.extractfile(member)
    return b"" if extracted is None else extracted.read(max_bytes)
