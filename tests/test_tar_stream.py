"""`lockd.tar_stream`: a tar.gz walked through isal's inflater gives what tarfile's own walk gives,
inflates no more than one buffer at a time, and fails with the errors the sdist readers handle."""

from __future__ import annotations

import gzip
import io
import random
import tarfile
import tracemalloc
import zlib

import pytest

from lockd import tar_stream
from lockd.sdist_metadata import ARCHIVE_ERRORS
from lockd.tar_stream import Gunzipped, open_tar_stream


def _tar_gz(members: dict[str, bytes], *, level: int = 6) -> bytes:
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(plain.getvalue(), compresslevel=level, mtime=0)


def _walk(tar: tarfile.TarFile) -> list[tuple[str, int, bytes]]:
    walked = []
    with tar:
        for info in tar:
            extracted = tar.extractfile(info)
            walked.append((info.name, info.size, b"" if extracted is None else extracted.read()))
    return walked


def _tarfiles_own_walk(archive: bytes) -> list[tuple[str, int, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r|*") as tar:
        return _walk(tar)


def _inflated_by_tarfile(tar: tarfile.TarFile) -> bool:
    return getattr(tar.fileobj, "comptype", None) == "gz"  # tarfile's stream: what it inflates


def _members(seed: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    members: dict[str, bytes] = {}
    for i in range(rng.randrange(1, 40)):
        kind = rng.randrange(3)
        size = rng.choice([0, 1, 511, 512, 513, rng.randrange(200_000)])
        if kind == 0:  # incompressible, as the jars in pyspark's sdist
            data = rng.randbytes(size)
        elif kind == 1:  # text
            data = (b"Requires-Dist: numpy>=1.21\n" * (size // 27 + 1))[:size]
        else:
            data = bytes(size)
        members[f"pkg-1.0/m{i}.bin"] = data
    members["pkg-1.0/pkg.egg-info/requires.txt"] = b"numpy>=1.21\n[extra]\npandas\n"
    return members


@pytest.mark.skipif(tar_stream.INFLATER != "isal", reason="isal has no wheel for this platform")
@pytest.mark.parametrize("seed", range(12))
def test_a_walk_inflated_by_isal_equals_tarfiles_own(seed: int) -> None:
    archive = _tar_gz(_members(seed), level=random.Random(seed).choice([1, 6, 9]))
    ours = open_tar_stream(io.BufferedReader(io.BytesIO(archive), 8192))
    assert _inflated_by_tarfile(ours) is False  # a plain tar to tarfile: inflated here
    assert _walk(ours) == _tarfiles_own_walk(archive)


def test_without_isal_or_peek_tarfile_inflates_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _tar_gz(_members(1))
    expected = _tarfiles_own_walk(archive)
    no_peek = open_tar_stream(io.BytesIO(archive))
    assert _inflated_by_tarfile(no_peek)
    assert _walk(no_peek) == expected
    monkeypatch.setattr(tar_stream, "_inflater", zlib)
    without_isal = open_tar_stream(io.BufferedReader(io.BytesIO(archive)))
    assert _inflated_by_tarfile(without_isal)
    assert _walk(without_isal) == expected


def test_a_plain_tar_is_not_taken_for_a_gzip() -> None:
    plain = gzip.decompress(_tar_gz(_members(2)))
    assert _walk(open_tar_stream(io.BufferedReader(io.BytesIO(plain)))) == _tarfiles_own_walk(plain)


def test_a_bomb_inflates_one_buffer_at_a_time() -> None:
    bomb = gzip.compress(bytes(200 * 1024 * 1024), compresslevel=9)  # 200 MiB in about 200 KiB
    assert len(bomb) < 300_000
    reader = Gunzipped(io.BytesIO(bomb))
    buffer = bytearray(64 * 1024)
    total = 0
    tracemalloc.start()
    try:
        while n := reader.readinto(buffer):
            assert n <= len(buffer)
            total += n
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 200 * 1024 * 1024
    assert peak < 2 * 1024 * 1024  # never the 200 MiB, nor a 1 MiB-per-KiB burst


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_a_damaged_gzip_fails_with_an_archive_error(damage: str) -> None:
    archive = _tar_gz(_members(3))
    if damage == "truncated":
        broken = archive[: len(archive) // 2]
    else:
        broken = archive[:20] + bytes(b ^ 0x5A for b in archive[20:200]) + archive[200:]
    with pytest.raises(ARCHIVE_ERRORS):
        _walk(open_tar_stream(io.BufferedReader(io.BytesIO(broken))))
