"""A wheel's `.dist-info/METADATA`, read from a zip through byte ranges or front to back (PKWARE APPNOTE 4.3, PEP 427).

`RemoteZip` is given a range-reading callable and the file's size, never a client: it finds
the end of central directory record (zip64 too) in the tail, reads the central directory, then
the chosen member's local header and data, asking `read_range` only for bytes it does not yet
hold; the tail (`tail_bytes`) and a directory read reach far enough that one request, at most
two, usually serve all three. `metadata_from_zip_stream` reads a wheel whose server ignores
`Range` from its first byte, skipping each member's data as it streams past and stopping at the METADATA: only as far as
needed, nothing kept but that member. Both bound what the file can make them hold (members,
central directory, METADATA size: `ResponseTooLarge`) and check the deadline as they walk;
any structure that points outside the file, is cut short or does not decompress raises
`IndexUnavailable` naming the file.
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from lockd.deadline import check_deadline
from lockd.errors import IndexUnavailable, ResponseTooLarge

__all__ = [
    "TAIL_BYTES",
    "RangeReader",
    "RemoteZip",
    "ZipMember",
    "metadata_from_zip_stream",
    "metadata_rank",
    "tail_bytes",
]

RangeReader = Callable[[int, int], bytes]
"""Bytes [start, end) of the file; fewer or more than asked for is treated as a corrupt file."""

# One suffix request usually covers the EOCD, the central directory of an ordinary wheel and,
# because wheel builders write .dist-info last, the METADATA member itself.
TAIL_BYTES = 64 * 1024
# For a file of known size the suffix grows with it: the central directory and RECORD grow with
# the number of members, and a second and third round trip cost more than the bytes. Measured
# on PyPI's big wheels (numpy, pandas, scipy, scikit-learn, mypy, babel), METADATA starts 90-250 KiB
# before the end: 1-2 % of the file, under 256 KiB.
_TAIL_FLOOR = 128 * 1024
_TAIL_CAP = 256 * 1024
_TAIL_DIVISOR = 24
# RECORD (deflated, about half the central directory's size) and METADATA usually sit just in
# front of the central directory: a directory read reaches back this much further (plus its
# size, up to `_MAX_LEAD`).
_DIRECTORY_LEAD = 16 * 1024
_MAX_LEAD = 1024 * 1024

_EOCD = struct.Struct("<4s4H2LH")
_EOCD_SIG = b"PK\x05\x06"
_MAX_COMMENT = 65535
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_LOCATOR_SIG = b"PK\x06\x07"
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_ZIP64_EOCD_SIG = b"PK\x06\x06"
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_CENTRAL_SIG = b"PK\x01\x02"
# The signature and the three lengths that lead to the next entry: all a skipped entry needs.
_CENTRAL_LENGTHS = struct.Struct("<4s24x3H")
_LOCAL = struct.Struct("<4s5H3L2H")
_LOCAL_SIG = b"PK\x03\x04"
_DIST_INFO_METADATA = re.compile(r"^([^/]+)\.dist-info/METADATA$")
_METADATA_SUFFIX = b".dist-info/METADATA"
# A local extra field rarely exceeds this, so one request usually covers header and data.
_LOCAL_SLACK = 256
# Central directory bytes per member at most: real wheels average 100-200 (ansible's 60,000
# members take 9 MB), so a directory past this is padding, not members.
_DIRECTORY_BYTES_PER_MEMBER = 256
_DATA_DESCRIPTOR = 0x08
_LIMIT_HINT = "a wheel this large is an attack or a mistake; if it is real, raise {}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ZipMember:
    """One central directory entry: where its local header is and how its data is stored."""

    name: str
    method: int
    compressed_size: int
    local_offset: int


def tail_bytes(size: int | None) -> int:
    """How many bytes from the end of a wheel of `size` bytes the first range request asks for."""
    if size is None:
        return TAIL_BYTES  # HTML pages give no size; without one the suffix stays small
    return max(_TAIL_FLOOR, min(_TAIL_CAP, size // _TAIL_DIVISOR))


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
        max_members: int = 200_000,
        tail: bytes = b"",
    ) -> None:
        self._read_range = read_range
        self._size = size
        self._name = name
        self._url = url
        self._max_member_bytes = max_member_bytes
        self._max_members = max_members
        self._held: list[tuple[int, bytes]] = [(size - len(tail), tail)] if 0 < len(tail) <= size else []

    def dist_info_metadata(self, project: NormalizedName, version: Version) -> bytes:
        """The `.dist-info/METADATA` of `project` `version`, else of the first `.dist-info` found."""
        members = self._walk(_maybe_dist_info_metadata)
        chosen = min(
            ((rank, name) for name in members if (rank := metadata_rank(name, project, version)) is not None),
            default=None,
        )
        if chosen is None:
            raise _no_metadata(self._name, self._url)
        return self.read(members[chosen[1]])

    def members(self) -> dict[str, ZipMember]:
        """The central directory by member name."""
        return self._walk(None)

    def _walk(self, wanted: Callable[[bytes, int, int], bool] | None) -> dict[str, ZipMember]:
        """Members whose raw name `wanted(directory, start, end)` accepts (None: all); all are counted."""
        offset, size = self._central_directory()
        if size > self._max_members * _DIRECTORY_BYTES_PER_MEMBER:
            raise self._too_large(f"its central directory of {size:,} bytes is implausibly large")
        if not self._holds(offset, offset + size) and 0 <= offset <= self._size:
            # One request for the directory and what usually lies just before it (RECORD, then
            # METADATA), rather than a second one for the member; at most twice the directory.
            lead = min(size, _MAX_LEAD) + _DIRECTORY_LEAD
            self._bytes(max(0, offset - lead), min(offset + size, self._size))
        directory = self._bytes(offset, offset + size)
        members: dict[str, ZipMember] = {}
        pos = count = 0
        while pos + _CENTRAL.size <= len(directory):
            signature, name_len, extra_len, comment_len = _CENTRAL_LENGTHS.unpack_from(directory, pos)
            if signature != _CENTRAL_SIG:
                break
            count += 1
            if count > self._max_members:
                raise self._too_large(f"it has more than {self._max_members:,} members")
            if count % 256 == 0:
                check_deadline(f"reading the central directory of {self._name}")
            start = pos + _CENTRAL.size
            if wanted is not None and not wanted(directory, start, start + name_len):
                pos = start + name_len + extra_len + comment_len
                continue
            fields = _CENTRAL.unpack_from(directory, pos)
            flags, method, csize, usize, local_offset = fields[3], fields[4], fields[8], fields[9], fields[16]
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
            raise self._too_large(f"{member.name} is implausibly large")
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
        return _inflate(raw, name, self._max_member_bytes, self._unreadable, self._too_large)

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

    def _holds(self, start: int, end: int) -> bool:
        return any(held_start <= start and end <= held_start + len(held) for held_start, held in self._held)

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

    def _too_large(self, why: str) -> ResponseTooLarge:
        return _too_large(self._name, self._url, why)


def metadata_from_zip_stream(
    chunks: Iterable[bytes],
    project: NormalizedName,
    version: Version,
    *,
    name: str,
    url: str,
    max_member_bytes: int,
    max_members: int = 200_000,
) -> bytes:
    """`.dist-info/METADATA` of a wheel whose bytes arrive in order, read only up to that member.

    Members whose sizes follow their data (flag bit 3) cannot be skipped without the central
    directory: such a wheel is unreadable this way (wheel builders write seekable files, so
    they do not make them).
    """
    stream = _Stream(iter(chunks), name, url)
    fallback: bytes | None = None
    for count in range(max_members + 1):
        if count % 256 == 0:
            check_deadline(f"reading {name}")
        fields = stream.take(4)
        if fields != _LOCAL_SIG:
            if fields in (_CENTRAL_SIG, _EOCD_SIG) and fallback is not None:
                return fallback
            if fields in (_CENTRAL_SIG, _EOCD_SIG):
                raise _no_metadata(name, url)
            raise stream.unreadable("a local header is missing")
        _sig, _needs, flags, method, _time, _date, _crc, csize, usize, name_len, extra_len = _LOCAL.unpack(
            fields + stream.take(_LOCAL.size - 4)
        )
        member = stream.take(name_len).decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
        csize, _offset = _zip64_sizes(stream.take(extra_len), usize, csize, 0)
        rank = metadata_rank(member, project, version)
        if flags & _DATA_DESCRIPTOR:
            raise stream.unreadable(f"{member} gives its sizes after its data, which needs Range requests")
        if rank is None or (rank == 1 and fallback is not None):
            stream.skip(csize)
            continue
        if csize > max_member_bytes:
            raise _too_large(name, url, f"{member} is implausibly large")
        raw = stream.take(csize)
        if method == zipfile.ZIP_DEFLATED:
            data = _inflate(
                raw, member, max_member_bytes, stream.unreadable, lambda why: _too_large(name, url, why)
            )
        elif method == zipfile.ZIP_STORED:
            data = raw
        else:
            raise stream.unreadable(f"{member} uses unsupported compression {method}")
        if rank == 0:
            return data
        fallback = data
    raise _too_large(name, url, f"it has more than {max_members:,} members")


class _Stream:
    """Bytes taken from the front of a chunk iterator; skipped bytes are never held."""

    def __init__(self, chunks: Iterator[bytes], name: str, url: str) -> None:
        self._chunks = chunks
        self._buffer = bytearray()
        self._name = name
        self._url = url

    def take(self, count: int) -> bytes:
        while len(self._buffer) < count:
            self._buffer += self._next()
        taken = bytes(self._buffer[:count])
        del self._buffer[:count]
        return taken

    def skip(self, count: int) -> None:
        while count > len(self._buffer):
            count -= len(self._buffer)
            self._buffer = bytearray(self._next())
        del self._buffer[:count]

    def _next(self) -> bytes:
        chunk = next(self._chunks, None)
        if chunk is None:
            raise self.unreadable("it ends in the middle of a member")
        return chunk

    def unreadable(self, why: str) -> IndexUnavailable:
        return IndexUnavailable(f"{self._name} is not a readable wheel: {why}", context={"url": self._url})


def _inflate(
    raw: bytes,
    member: str,
    max_bytes: int,
    unreadable: Callable[[str], IndexUnavailable],
    too_large: Callable[[str], ResponseTooLarge],
) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        data = inflater.decompress(raw, max_bytes)
    except zlib.error as exc:
        raise unreadable(f"{member}: {exc}") from None
    if not inflater.eof:
        if len(data) >= max_bytes:
            raise too_large(f"{member} is implausibly large")
        raise unreadable(f"{member} is cut short")
    return data


def _too_large(name: str, url: str, why: str) -> ResponseTooLarge:
    return ResponseTooLarge(
        f"{name} is not a readable wheel: {why}",
        hint=_LIMIT_HINT.format("LOCKD_MAX_METADATA_BYTES or LOCKD_MAX_ARCHIVE_MEMBERS"),
        context={"url": url},
    )


def _no_metadata(name: str, url: str) -> IndexUnavailable:
    return IndexUnavailable(f"{name} has no .dist-info/METADATA", context={"url": url})


def _maybe_dist_info_metadata(directory: bytes, start: int, end: int) -> bool:
    """Whether the raw name at [start, end) can be a top-level `.dist-info/METADATA`: ASCII, the
    same bytes in UTF-8 and cp437, so a big wheel's other members are never decoded (was 3 % of cold)."""
    return directory.endswith(_METADATA_SUFFIX, start, end) and directory.count(b"/", start, end) == 1


def metadata_rank(member: str, project: NormalizedName, version: Version) -> int | None:
    """0 for the project's own `<name>-<version>.dist-info/METADATA`, 1 for another one, None for any other member."""
    match = _DIST_INFO_METADATA.match(member)
    if match is None:
        return None
    stem_name, _, stem_version = match.group(1).rpartition("-")
    return 0 if canonicalize_name(stem_name) == project and _same_version(stem_version, version) else 1


def _same_version(text: str, version: Version) -> bool:
    try:
        return Version(text) == version
    except ValueError:  # InvalidVersion, or a number past Python's 4,300-digit conversion limit
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
