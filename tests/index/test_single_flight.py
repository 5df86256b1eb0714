"""`lockd.index.single_flight`: concurrent callers of one key share one computation."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from lockd.index.single_flight import SingleFlight

_DEADLINE = 10.0


class _CountingLock:
    """The flight's lock, counting how often it was taken: each `run` takes it once on entry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._taken = 0
        self._changed = threading.Condition()

    def __enter__(self) -> None:
        self._lock.acquire()
        with self._changed:
            self._taken += 1
            self._changed.notify_all()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def wait_until_taken(self, times: int) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._taken >= times, timeout=_DEADLINE)


def test_concurrent_callers_share_one_computation_and_its_result(monkeypatch: pytest.MonkeyPatch) -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    lock = _CountingLock()
    monkeypatch.setattr(flight, "_lock", lock)
    started, release = threading.Event(), threading.Event()
    runs: list[int] = []

    def compute() -> object:
        runs.append(1)
        started.set()
        assert release.wait(_DEADLINE)
        return object()

    with ThreadPoolExecutor(max_workers=4) as pool:
        first = pool.submit(flight.run, "k", compute)
        assert started.wait(_DEADLINE)
        joined = [pool.submit(flight.run, "k", compute) for _ in range(3)]
        assert lock.wait_until_taken(4)  # the owner and three callers have found the flight
        release.set()
        results = [first.result(_DEADLINE)] + [future.result(_DEADLINE) for future in joined]
    assert runs == [1]
    assert all(result is results[0] for result in results)
    assert not flight.is_running("k")


def test_an_error_reaches_every_waiter_and_the_key_is_free_again(monkeypatch: pytest.MonkeyPatch) -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    lock = _CountingLock()
    monkeypatch.setattr(flight, "_lock", lock)
    started, release = threading.Event(), threading.Event()

    def fail() -> int:
        started.set()
        assert release.wait(_DEADLINE)
        raise ValueError("index down")

    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(flight.run, "k", fail)
        assert started.wait(_DEADLINE)
        waiter = pool.submit(flight.run, "k", lambda: 1)
        assert lock.wait_until_taken(2)
        release.set()
        with pytest.raises(ValueError, match="index down"):
            first.result(_DEADLINE)
        with pytest.raises(ValueError, match="index down"):
            waiter.result(_DEADLINE)
    assert not flight.is_running("k")
    assert flight.run("k", lambda: 2) == 2


def test_different_keys_run_side_by_side() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    both = threading.Barrier(2, timeout=_DEADLINE)

    def compute(key: str) -> str:
        both.wait()  # only returns once the other key's computation runs too
        return key

    with ThreadPoolExecutor(max_workers=2) as pool:
        a = pool.submit(flight.run, "a", lambda: compute("a"))
        b = pool.submit(flight.run, "b", lambda: compute("b"))
        assert (a.result(_DEADLINE), b.result(_DEADLINE)) == ("a", "b")
