"""A wheel's `.dist-info/METADATA`, read from a zip through byte ranges (PKWARE APPNOTE 4.3, PEP 427).

`RemoteZip` is given a range-reading callable and the file's size, never a client: it finds
the end of central directory record (zip64 too) in the tail, reads the central directory, then
the chosen member's local header and data, asking `read_range` only for bytes it does not yet
hold. Any structure that points outside the file, is cut short or does not decompress raises
`IndexUnavailable` naming the file. `metadata_from_zip_file` does the same for a wheel that had
to be downloaded whole (a server that ignores `Range`).
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from lockd.errors import IndexUnavailable

__all__ = ["TAIL_BYTES", "RangeReader", "RemoteZip", "ZipMember", "metadata_from_zip_file"]

RangeReader = Callable[[int, int], bytes]
"""Bytes [start, end) of the file; fewer or more than asked for is treated as a corrupt file."""

# One suffix request usually covers the EOCD, the central directory of an ordinary wheel and,
# because wheel builders write .dist-info last, the METADATA member itself.
TAIL_BYTES = 64 * 1024

_EOCD = struct.Struct("<4s4H2LH")
_EOCD_SIG = b"PK\x05\x06"
_MAX_COMMENT = 65535
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_LOCATOR_SIG = b"PK\x06\x07"
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_ZIP64_EOCD_SIG = b"PK\x06\x06"
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_CENTRAL_SIG = b"PK\x01\x02"
_LOCAL = struct.Struct("<4s5H3L2H")
_LOCAL_SIG = b"PK\x03\x04"
_DIST_INFO_METADATA = re.compile(r"^([^/]+)\.dist-info/METADATA$")
# A local extra field rarely exceeds this, so one request usually covers header and data.
_LOCAL_SLACK = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class ZipMember:
    """One central directory entry: where its local header is and how its data is stored."""

    name: str
    method: int
    compressed_size: int
    local_offset: int


class RemoteZip:
    """Reads members of a zip of `size` bytes through `read_range`; `tail` is its last bytes, if held."""

    def __init__(
        self,
        read_range: RangeReader,
        size: int,
        *,
        name: str,
        url: str,
        max_member_bytes: int,
        tail: bytes = b"",
    ) -> None:
        self._read_range = read_range
        self._size = size
        self._name = name
        self._url = url
        self._max_member_bytes = max_member_bytes
        self._held: list[tuple[int, bytes]] = [(size - len(tail), tail)] if 0 < len(tail) <= size else []

    def dist_info_metadata(self, project: NormalizedName, version: Version) -> bytes:
        """The `.dist-info/METADATA` of `project` `version`, else of the first `.dist-info` found."""
        members = self.members()
        chosen = _choose_metadata(members, project, version)
        if chosen is None:
            raise _no_metadata(self._name, self._url)
        return self.read(members[chosen])

    def members(self) -> dict[str, ZipMember]:
        """The central directory by member name."""
        offset, size = self._central_directory()
        directory = self._bytes(offset, offset + size)
        members: dict[str, ZipMember] = {}
        pos = 0
        while pos + _CENTRAL.size <= len(directory):
            fields = _CENTRAL.unpack_from(directory, pos)
            if fields[0] != _CENTRAL_SIG:
                break
            flags, method, csize, usize = fields[3], fields[4], fields[8], fields[9]
            name_len, extra_len, comment_len, local_offset = fields[10], fields[11], fields[12], fields[16]
            start = pos + _CENTRAL.size
            extra = directory[start + name_len : start + name_len + extra_len]
            name = self._member_name(directory[start : start + name_len], flags)
            csize, local_offset = _zip64_sizes(extra, usize, csize, local_offset)
            members[name] = ZipMember(
                name=name, method=method, compressed_size=csize, local_offset=local_offset
            )
            pos = start + name_len + extra_len + comment_len
        return members

    def read(self, member: ZipMember) -> bytes:
        """The member's uncompressed bytes (stored or deflated, as wheels are)."""
        if member.compressed_size > self._max_member_bytes:
            raise self._unreadable(f"{member.name} is implausibly large")
        guess_end = member.local_offset + _LOCAL.size + len(member.name.encode()) + _LOCAL_SLACK
        self._bytes(member.local_offset, min(guess_end + member.compressed_size, self._size))
        fields = _LOCAL.unpack(self._bytes(member.local_offset, member.local_offset + _LOCAL.size))
        if fields[0] != _LOCAL_SIG:
            raise self._unreadable(f"bad local header for {member.name}")
        data_start = member.local_offset + _LOCAL.size + fields[9] + fields[10]
        raw = self._bytes(data_start, data_start + member.compressed_size)
        if member.method == zipfile.ZIP_STORED:
            return raw
        if member.method == zipfile.ZIP_DEFLATED:
            return self._inflate(member.name, raw)
        raise self._unreadable(f"{member.name} uses unsupported compression {member.method}")

    def _inflate(self, name: str, raw: bytes) -> bytes:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            data = inflater.decompress(raw, self._max_member_bytes)
        except zlib.error as exc:
            raise self._unreadable(f"{name}: {exc}") from None
        if not inflater.eof:
            why = "is implausibly large" if len(data) >= self._max_member_bytes else "is cut short"
            raise self._unreadable(f"{name} {why}")
        return data

    def _central_directory(self) -> tuple[int, int]:
        """(offset, size) of the central directory, from the EOCD record or its zip64 twin."""
        tail_start, tail = self._eocd_window()
        at = tail.rfind(_EOCD_SIG)
        if at < 0 or len(tail) - at < _EOCD.size:
            raise self._unreadable("no end of central directory record")
        eocd_offset = tail_start + at
        fields = _EOCD.unpack_from(tail, at)
        entries, cd_size, cd_offset = fields[4], fields[5], fields[6]
        if cd_offset != 0xFFFFFFFF and cd_size != 0xFFFFFFFF and entries != 0xFFFF:
            return cd_offset, cd_size
        locator = self._bytes(eocd_offset - _ZIP64_LOCATOR.size, eocd_offset)
        signature, _disk, record_offset, _disks = _ZIP64_LOCATOR.unpack(locator)
        if signature != _ZIP64_LOCATOR_SIG:
            raise self._unreadable("zip64 locator missing")
        record = _ZIP64_EOCD.unpack(self._bytes(record_offset, record_offset + _ZIP64_EOCD.size))
        if record[0] != _ZIP64_EOCD_SIG:
            raise self._unreadable("zip64 end of central directory missing")
        return record[9], record[8]

    def _eocd_window(self) -> tuple[int, bytes]:
        """The held tail when it has the EOCD signature, else the longest tail an EOCD can need."""
        if self._held and self._held[0][0] + len(self._held[0][1]) == self._size:
            start, tail = self._held[0]
            if _EOCD_SIG in tail or start == 0:
                return start, tail
        start = max(0, self._size - _EOCD.size - _MAX_COMMENT)
        return start, self._bytes(start, self._size)

    def _bytes(self, start: int, end: int) -> bytes:
        """Bytes [start, end): from what is held, else by exactly one range request."""
        if start < 0 or end > self._size or start > end:
            raise self._unreadable(f"zip structure points outside the file ({start}-{end})")
        for held_start, held in self._held:
            if held_start <= start and end <= held_start + len(held):
                return held[start - held_start : end - held_start]
        data = self._read_range(start, end)
        if len(data) != end - start:
            raise self._unreadable(f"range {start}-{end} returned {len(data)} bytes")
        self._held.append((start, data))
        return data

    def _member_name(self, raw: bytes, flags: int) -> str:
        try:
            return raw.decode("utf-8" if flags & 0x800 else "cp437")
        except UnicodeDecodeError:
            raise self._unreadable("a member name is not valid UTF-8") from None

    def _unreadable(self, why: str) -> IndexUnavailable:
        return IndexUnavailable(f"{self._name} is not a readable wheel: {why}", context={"url": self._url})


def metadata_from_zip_file(
    data: IO[bytes], project: NormalizedName, version: Version, *, name: str, url: str, max_bytes: int
) -> bytes:
    """`.dist-info/METADATA` of a whole wheel held locally (at most `max_bytes` of it)."""

    try:
        with zipfile.ZipFile(data) as archive:
            best = _choose_metadata(archive.namelist(), project, version)
            if best is None:
                raise _no_metadata(name, url)
            with archive.open(best) as member:
                return member.read(max_bytes)
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, zlib.error, NotImplementedError) as exc:
        why = str(exc) or type(exc).__name__
        raise IndexUnavailable(f"{name} is not a readable wheel: {why}", context={"url": url}) from None


def _no_metadata(name: str, url: str) -> IndexUnavailable:
    return IndexUnavailable(f"{name} has no .dist-info/METADATA", context={"url": url})


def _choose_metadata(names: Iterable[str], project: NormalizedName, version: Version) -> str | None:
    """Which `.dist-info/METADATA` to read: the one named after the project and version comes first."""
    scored: list[tuple[int, str]] = []
    for name in names:
        match = _DIST_INFO_METADATA.match(name)
        if match is None:
            continue
        stem_name, _, stem_version = match.group(1).rpartition("-")
        exact = canonicalize_name(stem_name) == project and _same_version(stem_version, version)
        scored.append((0 if exact else 1, name))
    return min(scored)[1] if scored else None


def _same_version(text: str, version: Version) -> bool:
    try:
        return Version(text) == version
    except InvalidVersion:
        return False


def _zip64_sizes(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int]:
    """Compressed size and local header offset, taking the zip64 extra field into account."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + size]
        if tag == 0x0001:
            values = [struct.unpack_from("<Q", body, i)[0] for i in range(0, len(body) - 7, 8)]
            if usize == 0xFFFFFFFF and values:
                values.pop(0)
            if csize == 0xFFFFFFFF and values:
                csize = values.pop(0)
            if offset == 0xFFFFFFFF and values:
                offset = values.pop(0)
            break
        pos += 4 + size
    return csize, offset
