"""`lockd.index.body`: an index's answer read within byte and ratio limits, decoded by lockd a slice at a time."""

from __future__ import annotations

import gzip
import time
import tracemalloc
import zlib
from collections.abc import Iterator

import pytest

from lockd.deadline import deadline_scope
from lockd.errors import IndexUnavailable, ResolutionTimeout, ResponseTooLarge
from lockd.index.answers import Answer
from lockd.index.body import CHUNK, BodyLimit, limited_chunks, read_limited
from lockd.index.stats import FetchCounters

URL = "https://index.example/simple/demo/"
MIB = 1024 * 1024


class _Chunks:
    """A body arriving in the given chunks; `sent` counts the chunks the reader pulled."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.sent += 1
            yield chunk


def _response(chunks: Iterator[bytes], **headers: str) -> tuple[Answer, _Chunks]:
    stream = _Chunks(chunks)
    named = [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    return Answer(200, named, URL, stream), stream


def _read(response: Answer, limit: BodyLimit) -> bytes:
    return read_limited(response, URL, limit, FetchCounters())


def _gzip_bomb(decompressed: int) -> Iterator[bytes]:
    """A gzip stream of `decompressed` spaces, made as it is sent."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * MIB
    for _ in range(decompressed // MIB):
        out = compressor.compress(block)
        if out:
            yield out
    yield compressor.flush()


def test_plain_gzip_and_deflate_bodies_decode() -> None:
    page = b'{"files": []}' * 1000
    limit = BodyLimit(max_bytes=MIB, max_ratio=200)
    assert _read(_response(iter([page[:7], page[7:]]))[0], limit) == page
    assert _read(_response(iter([gzip.compress(page)]), content_encoding="gzip")[0], limit) == page
    assert _read(_response(iter([zlib.compress(page)]), content_encoding="deflate")[0], limit) == page
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw_deflate = raw.compress(page) + raw.flush()
    assert _read(_response(iter([raw_deflate]), content_encoding="deflate")[0], limit) == page


def test_a_body_over_its_limit_stops_being_read() -> None:
    endless = (b"x" * 64 * 1024 for _ in range(10**9))
    response, stream = _response(endless)
    with pytest.raises(ResponseTooLarge) as raised:
        _read(response, BodyLimit(max_bytes=MIB, setting="LOCKD_MAX_PAGE_BYTES"))
    assert raised.value.code == "index-response-too-large" and isinstance(raised.value, IndexUnavailable)
    assert raised.value.message == f"{URL} sent more than 1,048,576 bytes; lockd stopped reading it"
    assert "LOCKD_MAX_PAGE_BYTES" in (raised.value.hint or "")
    assert stream.sent == 17  # 16 chunks fill the limit; the 17th passes it


def test_an_announced_length_over_the_limit_is_refused_before_reading() -> None:
    response, stream = _response(iter([b"x" * 10]), content_length=str(2 * MIB))
    with pytest.raises(ResponseTooLarge, match="announced 2,097,152 bytes"):
        _read(response, BodyLimit(max_bytes=MIB))
    assert stream.sent == 0


def test_a_gzip_bomb_is_stopped_by_its_ratio_holding_little_memory() -> None:
    """A 4 GiB bomb: refused past 200:1, with at most one compressed chunk's worth inflated at a time."""
    response, _ = _response(_gzip_bomb(4 * 1024 * MIB), content_encoding="gzip")
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLarge, match=r"compressed \(over 200:1\)"):
            for _chunk in limited_chunks(
                response, URL, BodyLimit(max_bytes=64 * MIB, max_ratio=200), FetchCounters()
            ):
                pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * MIB, f"peak {peak / MIB:.1f} MiB while inflating"


def test_a_bomb_under_the_ratio_is_stopped_by_the_byte_limit() -> None:
    response, _ = _response(_gzip_bomb(64 * MIB), content_encoding="gzip")
    with pytest.raises(ResponseTooLarge, match="more than 16,777,216 bytes"):
        _read(response, BodyLimit(max_bytes=16 * MIB))


def test_decoded_chunks_are_never_larger_than_one_slice() -> None:
    response, _ = _response(_gzip_bomb(8 * MIB), content_encoding="gzip")
    sizes = [len(c) for c in limited_chunks(response, URL, BodyLimit(max_bytes=16 * MIB), FetchCounters())]
    assert sum(sizes) == 8 * MIB and max(sizes) <= CHUNK


def test_files_are_read_as_sent_whatever_their_encoding_header() -> None:
    archive = gzip.compress(b"a tarball")
    response, _ = _response(iter([archive]), content_encoding="gzip")
    chunks = limited_chunks(response, URL, BodyLimit(max_bytes=MIB), FetchCounters(), decode=False)
    assert b"".join(chunks) == archive


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, gzip"])
def test_encodings_lockd_did_not_ask_for_are_refused(encoding: str) -> None:
    response, _ = _response(iter([b"..."]), content_encoding=encoding)
    with pytest.raises(IndexUnavailable, match="which lockd did not ask for"):
        _read(response, BodyLimit(max_bytes=MIB))


def test_corrupt_compressed_data_is_index_unavailable() -> None:
    response, _ = _response(iter([b"\x1f\x8b\x08\x00garbage" * 10]), content_encoding="gzip")
    with pytest.raises(IndexUnavailable, match="does not decompress"):
        _read(response, BodyLimit(max_bytes=MIB))


def test_reading_stops_at_the_deadline_between_chunks() -> None:
    def slow() -> Iterator[bytes]:
        while True:
            time.sleep(0.01)
            yield b"x"

    response, _ = _response(slow())
    started = time.monotonic()
    with deadline_scope(started + 0.3), pytest.raises(ResolutionTimeout, match=f"while reading {URL}"):
        _read(response, BodyLimit(max_bytes=MIB))
    assert time.monotonic() - started < 0.6


def test_bytes_received_are_counted() -> None:
    counters = FetchCounters()
    compressed = gzip.compress(b"y" * 5000)
    response, _ = _response(iter([compressed]), content_encoding="gzip")
    assert read_limited(response, URL, BodyLimit(max_bytes=MIB), counters) == b"y" * 5000
    assert counters.snapshot().bytes_fetched == len(compressed)
