"""`lockd.index.single_flight`: concurrent callers of one key share one computation."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from lockd.deadline import carry_deadline, check_deadline, deadline_scope, seconds_left
from lockd.errors import ResolutionTimeout
from lockd.index.single_flight import SingleFlight
from tests.support import wait_until

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


def test_a_caller_waits_for_a_joined_computation_only_until_its_own_deadline() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        assert release.wait(_DEADLINE)
        return "page"

    with ThreadPoolExecutor(max_workers=1) as pool:
        owner = pool.submit(flight.run, "k", slow)  # no deadline: it may take its time
        assert started.wait(_DEADLINE)
        began = time.monotonic()
        with deadline_scope(began + 0.3), pytest.raises(ResolutionTimeout, match="while fetching k"):
            flight.run_within_deadline("k", slow, "fetching k")
        assert time.monotonic() - began < 1.0
        release.set()
        assert owner.result(_DEADLINE) == "page"  # the owner was not disturbed


def test_a_computation_ended_by_another_callers_deadline_is_run_again_under_ones_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    lock = _CountingLock()
    monkeypatch.setattr(flight, "_lock", lock)
    started, release = threading.Event(), threading.Event()
    runs: list[float | None] = []
    hurried_deadline = time.monotonic() + 0.2

    def fetch() -> str:
        runs.append(seconds_left())
        if len(runs) == 1:
            started.set()
            assert release.wait(_DEADLINE)
            check_deadline("fetching k")  # released only once the first caller's deadline passed
        return "page"

    def hurried() -> str:
        with deadline_scope(hurried_deadline):
            return flight.run_within_deadline("k", fetch, "fetching k")

    with ThreadPoolExecutor(max_workers=2) as pool, deadline_scope(time.monotonic() + 30):
        first = pool.submit(hurried)
        assert started.wait(_DEADLINE)
        patient = pool.submit(carry_deadline(flight.run_within_deadline), "k", fetch, "fetching k")
        assert lock.wait_until_taken(2)  # the patient caller has joined the hurried one's fetch
        wait_until(lambda: time.monotonic() > hurried_deadline, _DEADLINE, "the first deadline never passed")
        release.set()
        assert patient.result(_DEADLINE) == "page"
        with pytest.raises(ResolutionTimeout):
            first.result(_DEADLINE)
    assert len(runs) == 2 and runs[1] is not None and runs[1] > 25  # the rerun had the patient's deadline
