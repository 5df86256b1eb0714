"""Core metadata of a source distribution, when it can be trusted without a build (PEP 643).

An sdist's PKG-INFO is read from the archive (tar or zip; nothing in it is ever executed), and
is used only when its dependency metadata is static: Metadata-Version 2.2 or later, and
Requires-Dist not marked `Dynamic`. Anything else raises `SdistNeedsBuild`. No network I/O:
the index client hands over the downloaded archive.
"""

from __future__ import annotations

import tarfile
import zipfile
import zlib
from email.parser import BytesHeaderParser
from typing import IO

from packaging.version import InvalidVersion, Version

from lockd.errors import IndexUnavailable, SdistNeedsBuild
from lockd.simple import DistFile

__all__ = ["static_pkg_info", "trusted_pkg_info"]

_STATIC_METADATA_VERSION = Version("2.2")
_BUILD_HINT = "lockd never runs build backends; pin a version that has wheels for the target"


def static_pkg_info(file: DistFile, archive: IO[bytes], *, max_bytes: int) -> bytes:
    """The PKG-INFO of the sdist `file` read from `archive`, if its dependencies are static."""
    return trusted_pkg_info(file, _read_pkg_info(file, archive, max_bytes))


def trusted_pkg_info(file: DistFile, pkg_info: bytes) -> bytes:
    """`pkg_info` itself when PEP 643 lets lockd trust its Requires-Dist, else `SdistNeedsBuild`."""
    headers = BytesHeaderParser().parsebytes(pkg_info)
    version_text = headers.get("Metadata-Version", "").strip()
    dynamic = {value.strip().lower() for value in headers.get_all("Dynamic") or []}
    try:
        metadata_version = Version(version_text)
    except InvalidVersion:
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


def _read_pkg_info(file: DistFile, archive: IO[bytes], max_bytes: int) -> bytes:
    """The top-level `<dir>/PKG-INFO` of a tar or zip sdist."""
    try:
        if file.filename.endswith(".zip"):
            with zipfile.ZipFile(archive) as zipped:
                names = [n for n in zipped.namelist() if n.count("/") == 1 and n.endswith("/PKG-INFO")]
                if names:
                    with zipped.open(sorted(names)[0]) as member:
                        return member.read(max_bytes)
        else:
            with tarfile.open(fileobj=archive, mode="r:*") as tarred:
                for info in tarred:
                    if info.isfile() and info.name.count("/") == 1 and info.name.endswith("/PKG-INFO"):
                        extracted = tarred.extractfile(info)
                        if extracted is not None:
                            return extracted.read(max_bytes)
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise IndexUnavailable(
            f"{file.filename} is not a readable source archive: {exc}", context={"url": file.url}
        ) from None
    raise SdistNeedsBuild(
        f"{file.name} {file.version} is a source distribution without PKG-INFO; its dependencies are "
        "known only after a build",
        hint=_BUILD_HINT,
        context=_context(file),
    )


def _context(file: DistFile) -> dict[str, str]:
    return {"project": file.name, "version": str(file.version), "filename": file.filename}
