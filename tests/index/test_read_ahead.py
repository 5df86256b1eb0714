"""A download received on its own thread: order, bound, errors in place, the caller's deadline, clean stops."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator

import pytest

from lockd.deadline import deadline_scope, seconds_left
from lockd.index.read_ahead import ReadAhead


def _alive(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name and t.is_alive()]


def test_every_byte_arrives_in_order_and_the_hasher_saw_them_all() -> None:
    chunks = [bytes([i]) * (i + 1) for i in range(200)]
    hasher = hashlib.sha256()
    with ReadAhead(iter(chunks), max_bytes=64, hasher=hasher) as received:
        # Whatever arrived meanwhile is handed over at once: fewer, larger pieces, same bytes.
        assert b"".join(received) == b"".join(chunks)
    assert hasher.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()


def test_the_receiver_stays_within_its_bound_of_the_reader() -> None:
    pulled = [0]

    def source() -> Iterator[bytes]:
        for _ in range(100):
            pulled[0] += 10
            yield b"x" * 10

    taken = 0
    with ReadAhead(source(), max_bytes=30) as received:
        while taken < 400:
            taken += len(next(received))
            time.sleep(0.002)  # time for the receiver to run ahead as far as it may
            # At most 30 bytes held, plus the one chunk it pulled and waits to hold.
            assert pulled[0] - taken <= 30 + 10


def test_an_error_is_raised_where_it_happened_in_the_stream() -> None:
    def source() -> Iterator[bytes]:
        yield b"one"
        yield b"two"
        raise ConnectionResetError("the index hung up")

    got = b""
    with (
        ReadAhead(source(), max_bytes=1024) as received,
        pytest.raises(ConnectionResetError, match="hung up"),
    ):
        while True:
            got += next(received)
    assert got == b"onetwo"  # every byte received before the error, then the error


def test_the_receiver_runs_under_the_callers_deadline() -> None:
    seen: list[float | None] = []

    def source() -> Iterator[bytes]:
        seen.append(seconds_left())
        yield b"x"

    with deadline_scope(time.monotonic() + 30), ReadAhead(source(), max_bytes=8) as received:
        assert list(received) == [b"x"]
    assert seen[0] is not None and 0 < seen[0] <= 30


def test_close_stops_the_receiver_and_ends_its_source_on_its_own_thread() -> None:
    ended: list[str] = []

    def endless() -> Iterator[bytes]:
        try:
            while True:
                yield b"x" * 100
        finally:
            ended.append(threading.current_thread().name)

    received = ReadAhead(endless(), max_bytes=1000, name="lockd-read-ahead-test")
    first = next(received)
    assert first and set(first) == {ord("x")} and len(first) % 100 == 0
    received.close()
    assert ended == ["lockd-read-ahead-test"]
    assert _alive("lockd-read-ahead-test") == []


def test_a_reader_that_leaves_early_on_an_error_leaves_no_thread_behind() -> None:
    def slow() -> Iterator[bytes]:
        for _ in range(1000):
            time.sleep(0.001)
            yield b"y"

    with (
        pytest.raises(ValueError, match="bad archive"),
        ReadAhead(slow(), max_bytes=4, name="lockd-ra-early"),
    ):
        raise ValueError("bad archive")
    assert _alive("lockd-ra-early") == []
