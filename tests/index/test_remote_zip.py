"""`lockd.index.remote_zip`: a wheel's METADATA through byte ranges or front to back, from in-memory zips.

Every zip here is built by `zipfile`; the reader sees it only through a range-reading callable
that records what it was asked for, or as chunks that count how many were taken. Whatever a
corrupt or cut-short file does, the reader answers METADATA or `IndexUnavailable`, never
another exception.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.utils import canonicalize_name
from packaging.version import Version

from lockd.errors import IndexUnavailable, ResponseTooLarge
from lockd.index.remote_zip import TAIL_BYTES, RemoteZip, metadata_from_zip_stream, tail_bytes

PROJECT = canonicalize_name("demo")
VERSION = Version("1.0")
METADATA = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nRequires-Dist: idna>=3\n"
LIMIT = 1024 * 1024


@dataclass
class _Ranges:
    """A file served by ranges; `asked` is every [start, end) the reader requested."""

    data: bytes
    asked: list[tuple[int, int]] = field(default_factory=list)

    def __call__(self, start: int, end: int) -> bytes:
        self.asked.append((start, end))
        return self.data[start:end]


def _wheel(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED, padding: int = 0) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        if padding:
            archive.writestr("demo/_payload.bin", bytes(range(256)) * (padding // 256), zipfile.ZIP_STORED)
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _demo_wheel(**options: int) -> bytes:
    return _wheel({"demo/__init__.py": b"", "demo-1.0.dist-info/METADATA": METADATA}, **options)


def _reader(data: bytes, *, tail: bytes = b"", limit: int = LIMIT) -> tuple[RemoteZip, _Ranges]:
    ranges = _Ranges(data)
    return RemoteZip(ranges, len(data), name="demo.whl", url="https://files.example/demo.whl",
                     max_member_bytes=limit, tail=tail), ranges  # fmt: skip


def test_a_deflated_wheel_read_through_ranges_alone() -> None:
    data = _demo_wheel(padding=4 * TAIL_BYTES)
    reader, ranges = _reader(data)
    assert reader.dist_info_metadata(PROJECT, VERSION) == METADATA
    # The EOCD window, then the local header and data: never the payload in front of them.
    assert sum(end - start for start, end in ranges.asked) < 2 * TAIL_BYTES < len(data)


def test_a_held_tail_that_covers_the_metadata_needs_no_request() -> None:
    data = _demo_wheel(padding=4 * TAIL_BYTES)
    reader, ranges = _reader(data, tail=data[-TAIL_BYTES:])
    assert reader.dist_info_metadata(PROJECT, VERSION) == METADATA
    assert ranges.asked == []


def test_stored_members_are_read_as_they_are() -> None:
    reader, _ = _reader(_demo_wheel(compression=zipfile.ZIP_STORED))
    assert reader.dist_info_metadata(PROJECT, VERSION) == METADATA


def test_the_projects_own_dist_info_wins_over_a_vendored_one() -> None:
    vendored = b"Metadata-Version: 2.1\nName: vendored\nVersion: 9\n"
    data = _wheel({"vendored-9.dist-info/METADATA": vendored, "demo-1.0.dist-info/METADATA": METADATA})
    reader, _ = _reader(data)
    assert reader.dist_info_metadata(PROJECT, VERSION) == METADATA
    # No exact match (a wheel whose dist-info names another version): the first in name order.
    assert reader.dist_info_metadata(PROJECT, Version("2.0")) == METADATA
    assert sorted(reader.members()) == ["demo-1.0.dist-info/METADATA", "vendored-9.dist-info/METADATA"]


def test_only_names_that_can_be_metadata_are_decoded() -> None:
    # A big wheel has thousands of members; decoding every name (and building an entry for it)
    # cost ~7 us each. Only a name ending `.dist-info/METADATA` is decoded now, so a broken name
    # elsewhere no longer makes the METADATA unreachable; a broken candidate still does.
    data = _wheel({"demo/\u00e9.py": b"", "demo-1.0.dist-info/METADATA": METADATA})
    broken = data.replace("demo/\u00e9.py".encode(), b"demo/\xff\xfe.py")  # flagged UTF-8, not UTF-8
    assert broken.count(b"demo/\xff\xfe.py") == 2  # local header and central directory
    reader, _ = _reader(broken)
    assert reader.dist_info_metadata(PROJECT, VERSION) == METADATA
    with pytest.raises(IndexUnavailable, match="not valid UTF-8"):
        reader.members()
    candidate = _wheel(
        {"demo-1.0.dist-info/METADATA": METADATA, "d\u00e9mo-1.0.dist-info/METADATA": METADATA}
    )
    reader, _ = _reader(candidate.replace("d\u00e9mo".encode(), b"d\xff\xfemo"))
    with pytest.raises(IndexUnavailable, match="not valid UTF-8"):
        reader.dist_info_metadata(PROJECT, VERSION)


def test_zip64_records_and_extra_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    # zipfile writes zip64 structures past ZIP64_LIMIT; lowering it makes a small zip64 wheel,
    # with sizes and offsets of 0xFFFFFFFF in the central directory and the real ones in extras.
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 16)
    data = _demo_wheel()
    monkeypatch.undo()
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.read("demo-1.0.dist-info/METADATA") == METADATA  # zipfile agrees it is valid
    reader, _ = _reader(data)
    assert reader.dist_info_metadata(PROJECT, VERSION) == METADATA


def test_a_wheel_without_metadata_says_so() -> None:
    reader, _ = _reader(_wheel({"demo/__init__.py": b""}))
    with pytest.raises(IndexUnavailable) as raised:
        reader.dist_info_metadata(PROJECT, VERSION)
    assert raised.value.message == "demo.whl has no .dist-info/METADATA"
    assert raised.value.context == {"url": "https://files.example/demo.whl"}


@pytest.mark.parametrize("keep", [0, 10, 100, -30, -10])
def test_a_cut_short_file_is_unreadable(keep: int) -> None:
    data = _demo_wheel()[:keep] if keep >= 0 else _demo_wheel()[keep:]
    reader, _ = _reader(data)
    with pytest.raises(IndexUnavailable) as raised:
        reader.dist_info_metadata(PROJECT, VERSION)
    assert raised.value.message.startswith("demo.whl is not a readable wheel:")


def test_a_server_answering_the_wrong_number_of_bytes_is_caught() -> None:
    data = _demo_wheel()
    reader = RemoteZip(lambda start, end: data[start : end - 1], len(data), name="demo.whl",
                       url="u", max_member_bytes=LIMIT)  # fmt: skip
    with pytest.raises(IndexUnavailable, match="returned"):
        reader.dist_info_metadata(PROJECT, VERSION)


def test_a_central_directory_pointing_outside_the_file_is_caught() -> None:
    data = bytearray(_demo_wheel())
    eocd = data.rfind(b"PK\x05\x06")
    data[eocd + 16 : eocd + 20] = (len(data) + 100).to_bytes(4, "little")  # central directory offset
    reader, _ = _reader(bytes(data))
    with pytest.raises(IndexUnavailable, match="points outside the file"):
        reader.dist_info_metadata(PROJECT, VERSION)


def test_corrupt_deflate_data_is_unreadable() -> None:
    data = bytearray(_wheel({"demo-1.0.dist-info/METADATA": METADATA * 50}))
    start = data.find(b"demo-1.0.dist-info/METADATA") + len("demo-1.0.dist-info/METADATA")
    data[start : start + 8] = b"\xff" * 8  # the first bytes of the deflate stream
    reader, _ = _reader(bytes(data))
    with pytest.raises(IndexUnavailable, match="not a readable wheel"):
        reader.dist_info_metadata(PROJECT, VERSION)


def test_deflate_data_cut_short_by_the_directory_is_unreadable() -> None:
    data = bytearray(_wheel({"demo-1.0.dist-info/METADATA": METADATA * 50}))
    entry = data.rfind(b"PK\x01\x02")
    compressed = int.from_bytes(data[entry + 20 : entry + 24], "little")
    data[entry + 20 : entry + 24] = (compressed // 2).to_bytes(4, "little")
    reader, _ = _reader(bytes(data))
    with pytest.raises(IndexUnavailable, match="METADATA is cut short"):
        reader.dist_info_metadata(PROJECT, VERSION)


def test_metadata_over_the_limit_is_refused_compressed_or_not() -> None:
    bomb = _wheel({"demo-1.0.dist-info/METADATA": METADATA + b"X" * 200_000})
    reader, _ = _reader(bomb, limit=4096)  # compresses to far less than 4 KiB
    with pytest.raises(IndexUnavailable, match="implausibly large"):
        reader.dist_info_metadata(PROJECT, VERSION)
    stored = _wheel({"demo-1.0.dist-info/METADATA": METADATA + b"X" * 8192}, compression=zipfile.ZIP_STORED)
    reader, _ = _reader(stored, limit=4096)
    with pytest.raises(IndexUnavailable, match="implausibly large"):
        reader.dist_info_metadata(PROJECT, VERSION)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), max_size=6))
def test_any_corruption_gives_metadata_or_index_unavailable(flips: list[tuple[int, int]]) -> None:
    data = bytearray(_demo_wheel())
    for position, value in flips:
        data[position % len(data)] = value
    reader, _ = _reader(bytes(data))
    try:
        metadata = reader.dist_info_metadata(PROJECT, VERSION)
    except IndexUnavailable:
        return
    assert len(metadata) <= LIMIT


@dataclass
class _Chunks:
    """A file arriving `size` bytes at a time; `taken` counts the chunks the reader pulled."""

    data: bytes
    size: int = 7
    taken: int = 0

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self.data), self.size):
            self.taken += 1
            yield self.data[start : start + self.size]


def _streamed(
    data: bytes, *, limit: int = LIMIT, members: int = 1000, size: int = 7
) -> tuple[bytes, _Chunks]:
    chunks = _Chunks(data, size)
    found = metadata_from_zip_stream(chunks, PROJECT, VERSION, name="demo.whl", url="u",
                                     max_member_bytes=limit, max_members=members)  # fmt: skip
    return found, chunks


def test_a_whole_wheel_read_front_to_back() -> None:
    assert _streamed(_demo_wheel())[0] == METADATA
    assert _streamed(_demo_wheel(compression=zipfile.ZIP_STORED))[0] == METADATA
    with pytest.raises(IndexUnavailable, match=r"^demo.whl is not a readable wheel"):
        _streamed(b"not a zip")
    with pytest.raises(IndexUnavailable, match=r"^demo.whl has no .dist-info/METADATA$"):
        _streamed(_wheel({"demo/__init__.py": b""}))


def test_reading_front_to_back_stops_at_the_metadata() -> None:
    metadata_first = _wheel({"demo-1.0.dist-info/METADATA": METADATA, "demo/big.bin": bytes(1 << 20)})
    found, chunks = _streamed(metadata_first, size=1024)
    assert found == METADATA
    assert chunks.taken < 4, "read past the METADATA member"


def test_members_in_front_of_the_metadata_are_skipped_not_held() -> None:
    data = _demo_wheel(padding=8 << 20)  # 8 MiB stored in front of the METADATA
    found, chunks = _streamed(data, limit=4096, size=64 * 1024)
    assert found == METADATA and chunks.taken >= (8 << 20) // (64 * 1024)


def test_the_projects_own_metadata_wins_front_to_back() -> None:
    vendored = b"Metadata-Version: 2.1\nName: vendored\nVersion: 9\n"
    data = _wheel({"vendored-9.dist-info/METADATA": vendored, "demo-1.0.dist-info/METADATA": METADATA})
    assert _streamed(data)[0] == METADATA
    assert _streamed(_wheel({"vendored-9.dist-info/METADATA": vendored}))[0] == vendored


def test_front_to_back_limits_members_and_metadata_size() -> None:
    many = _wheel({f"demo/{i}.py": b"" for i in range(50)} | {"demo-1.0.dist-info/METADATA": METADATA})
    with pytest.raises(ResponseTooLarge, match="more than 20 members"):
        _streamed(many, members=20)
    with pytest.raises(ResponseTooLarge, match="implausibly large"):
        _streamed(_wheel({"demo-1.0.dist-info/METADATA": METADATA + b"X" * 200_000}), limit=4096)


def test_a_member_whose_sizes_follow_its_data_cannot_be_streamed() -> None:
    data = bytearray(_demo_wheel())
    data[6] |= 0x08  # general purpose flag bit 3 of the first local header: a data descriptor follows
    with pytest.raises(IndexUnavailable, match="gives its sizes after its data"):
        _streamed(bytes(data))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), max_size=6))
def test_any_corruption_front_to_back_gives_metadata_or_index_unavailable(
    flips: list[tuple[int, int]],
) -> None:
    data = bytearray(_demo_wheel())
    for position, value in flips:
        data[position % len(data)] = value
    try:
        metadata = _streamed(bytes(data))[0]
    except IndexUnavailable:
        return
    assert len(metadata) <= LIMIT


def test_central_directory_limits() -> None:
    many = _wheel({f"demo/{i}.py": b"" for i in range(50)} | {"demo-1.0.dist-info/METADATA": METADATA})
    reader = RemoteZip(_Ranges(many), len(many), name="demo.whl", url="u", max_member_bytes=LIMIT,
                       max_members=20)  # fmt: skip
    with pytest.raises(ResponseTooLarge, match=r"implausibly large|more than 20 members"):
        reader.dist_info_metadata(PROJECT, VERSION)
    small_directory = RemoteZip(_Ranges(many), len(many), name="demo.whl", url="u", max_member_bytes=LIMIT,
                                max_members=40)  # fmt: skip
    with pytest.raises(ResponseTooLarge, match="more than 40 members"):
        small_directory.dist_info_metadata(PROJECT, VERSION)


def test_a_directory_beyond_the_tail_is_read_with_the_metadata_in_front_of_it() -> None:
    # Big wheels (numpy, pandas, scipy) have central directories past the first suffix read;
    # .dist-info comes last, so the directory read that reaches back covers METADATA too.
    members = {f"demo/module_{n:05}.py": b"x = 1\n" for n in range(3000)}
    members["demo-1.0.dist-info/METADATA"] = METADATA
    members["demo-1.0.dist-info/RECORD"] = b"".join(
        f"demo/module_{n:05}.py,,\n".encode() for n in range(3000)
    )
    data = _wheel(members, padding=4 * TAIL_BYTES)
    reader, ranges = _reader(data, tail=data[-TAIL_BYTES:])
    assert reader.dist_info_metadata(PROJECT, VERSION) == METADATA
    assert len(ranges.asked) == 1, ranges.asked


def test_the_first_suffix_grows_with_the_file_within_bounds() -> None:
    assert tail_bytes(None) == TAIL_BYTES
    assert tail_bytes(10_000) == 128 * 1024  # the whole of a small wheel
    assert tail_bytes(4 * 1024 * 1024) == 4 * 1024 * 1024 // 24
    assert tail_bytes(800 * 1024 * 1024) == 256 * 1024
