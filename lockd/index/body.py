"""An index's answer read within limits: bytes decoded, the compression ratio, and the deadline.

lockd asks for gzip or deflate only (`ACCEPT_ENCODING`) and decodes them itself from the raw
bytes, a bounded slice at a time, so a small compressed body never inflates past its limit in
memory (generic decoders, httpx's among them, hand over whatever one chunk inflates to: a 10 MB gzip bomb became
10 GB). The limit is checked before the bytes are kept, the ratio once the body is past 1 MiB,
the deadline between chunks. Anything over a limit raises `ResponseTooLarge`, naming the setting
that raises it.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from lockd.deadline import check_deadline
from lockd.errors import IndexUnavailable, ResponseTooLarge
from lockd.index.stats import FetchCounters

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from lockd.index.answers import Answer

__all__ = ["ACCEPT_ENCODING", "BodyLimit", "HashedStream", "Hasher", "limited_chunks", "read_limited"]

ACCEPT_ENCODING = "gzip, deflate"
CHUNK = 256 * 1024
# Below this a body's ratio is not judged: a small page of repeated entries compresses very well.
_RATIO_FLOOR = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class BodyLimit:
    """At most `max_bytes` decoded, at most `max_ratio` decoded bytes per byte received."""

    max_bytes: int
    setting: str | None = None  # the LOCKD_* variable that raises `max_bytes`, for the hint
    max_ratio: int | None = None


def read_limited(response: Answer, url: str, limit: BodyLimit, counters: FetchCounters) -> bytes:
    """The whole decoded body, or `ResponseTooLarge` as soon as it passes `limit`."""
    return b"".join(limited_chunks(response, url, limit, counters))


def limited_chunks(
    response: Answer, url: str, limit: BodyLimit, counters: FetchCounters, *, decode: bool = True
) -> Iterator[bytes]:
    """The body as it arrives (decoded in slices of at most `CHUNK` bytes), within `limit` and the deadline.

    Files are read with `decode=False`: their bytes are what the hash is of, whatever
    Content-Encoding a server claims (pip reads them the same way).
    """
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit.max_bytes:
        raise _too_large(url, limit, f"it announced {int(declared):,} bytes")
    encoding = response.headers.get("content-encoding", "").strip().lower() if decode else ""
    inflater = _inflater(encoding, url)
    received = decoded = 0
    for raw in response.iter_raw():
        check_deadline(f"reading {url}")
        received += len(raw)
        counters.add("bytes_fetched", len(raw))
        pieces = [raw] if inflater is None else inflater.feed(raw)
        for piece in pieces:
            decoded += len(piece)
            _check(url, limit, decoded, received if inflater is not None else decoded)
            yield piece


def _check(url: str, limit: BodyLimit, decoded: int, received: int) -> None:
    if decoded > limit.max_bytes:
        raise _too_large(url, limit, f"more than {limit.max_bytes:,} bytes")
    ratio = limit.max_ratio
    if ratio is not None and decoded > _RATIO_FLOOR and decoded > ratio * received:
        raise _too_large(url, limit, f"{decoded:,} bytes from {received:,} compressed (over {ratio}:1)")


def _too_large(url: str, limit: BodyLimit, what: str) -> ResponseTooLarge:
    if limit.setting is None:
        hint = "the index sent more than lockd asked for; it is broken or hostile"
    else:
        hint = f"an index answer this large is an attack or a mistake; if it is real, raise {limit.setting}"
    return ResponseTooLarge(
        f"{url} sent {what}; lockd stopped reading it",
        hint=hint,
        context={"url": url, "limit_bytes": limit.max_bytes, "setting": limit.setting},
    )


class Hasher(Protocol):
    """What `HashedStream` needs of a sha256 (`hashlib.sha256()`)."""

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


class HashedStream(io.RawIOBase):
    """A file's chunks as a read-only stream (for `tarfile`'s stream mode), hashed as they pass.

    A reader may stop anywhere; `drain` reads the rest to give the whole file's sha256, or None
    when the chunks broke off (a failed read): a partial hash proves nothing.
    """

    def __init__(self, chunks: Iterator[bytes], *, hashed_by: Hasher | None = None) -> None:
        """`hashed_by`: a sha256 that whatever yields `chunks` updates with each (`ReadAhead`)."""
        self._chunks = chunks
        self._pending = memoryview(b"")
        self._hasher = hashlib.sha256() if hashed_by is None else hashed_by
        self._hashes = hashed_by is None
        self._broken = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        while not self._pending:
            chunk = self._next()
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        target = memoryview(buffer).cast("B")
        count = min(len(target), len(self._pending))
        target[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def drain(self) -> str | None:
        """The sha256 of the whole file, reading whatever is left of it; None if reading failed."""
        while not self._broken and self._next() is not None:
            pass
        return None if self._broken else self._hasher.hexdigest()

    def _next(self) -> bytes | None:
        if self._broken:
            return None
        try:
            chunk = next(self._chunks, None)
        except BaseException:
            self._broken = True
            raise
        if chunk is not None and self._hashes:
            self._hasher.update(chunk)
        return chunk


class _Inflater:
    """gzip or zlib-wrapped (or, for `deflate`, raw) deflate, `CHUNK` bytes of output at a time."""

    def __init__(self, url: str, *, raw_fallback: bool) -> None:
        self._url = url
        self._raw_fallback = raw_fallback
        self._started = False
        # 32 + 15: a gzip or zlib header, detected from the stream.
        self._zlib = zlib.decompressobj(32 + zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            yield from self._inflate(data)
        except zlib.error as exc:
            if self._started or not self._raw_fallback:
                raise IndexUnavailable(f"{self._url} sent a body that does not decompress: {exc}") from None
            # Servers that say `deflate` often mean raw deflate without the zlib wrapper.
            self._raw_fallback = False
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            yield from self.feed(data)

    def _inflate(self, data: bytes) -> Iterator[bytes]:
        while not self._zlib.eof:
            out = self._zlib.decompress(data, CHUNK)
            if out:
                self._started = True
                yield out
            data = self._zlib.unconsumed_tail
            # A full slice may leave output pending inside zlib even with no input left.
            if not data and len(out) < CHUNK:
                return


def _inflater(encoding: str, url: str) -> _Inflater | None:
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return _Inflater(url, raw_fallback=False)
    if encoding == "deflate":
        return _Inflater(url, raw_fallback=True)
    raise IndexUnavailable(
        f"{url} answered with Content-Encoding {encoding[:40]!r}, which lockd did not ask for",
        context={"url": url, "content_encoding": encoding[:40]},
    )
