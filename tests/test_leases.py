"""The lease protocol on SQLite and PostgreSQL: one holder works, waiters share its outcome or its
error, renewal ends at the work's deadline, and an expired lease is taken over."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TypeVar

import pytest
from sqlalchemy import Connection, Engine

from lockd.errors import IndexUnavailable, InvalidRequest, LockdError, ResolutionTimeout
from lockd.leases import HeldLease, Leases
from lockd.store import InputRecord, leases, open_engine, queries, transaction

KEY = "a" * 64
T = TypeVar("T")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    opened = open_engine(database_url)
    yield opened
    opened.dispose()


def _stored(conn: Connection, _released: bool) -> InputRecord | None:
    return queries.get_input(conn, KEY)


def _nothing_stored(_conn: Connection, _released: bool) -> None:
    return None


def _when_released(_conn: Connection, released: bool) -> str | None:
    return "shared" if released else None


def _wait_for(condition: Callable[[], T | None], what: str, timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found is not None and found is not False:
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class _Waiter:
    """`take_turn` on a thread of its own; `.outcome` is what it returned or raised."""

    def __init__(self, run: Callable[[], object]) -> None:
        self.outcome: object = None
        self.done = threading.Event()

        def body() -> None:
            try:
                self.outcome = run()
            except LockdError as exc:
                self.outcome = exc
            finally:
                self.done.set()

        threading.Thread(target=body, daemon=True).start()

    def result(self) -> object:
        assert self.done.wait(10), "the waiter never returned"
        return self.outcome


def _holders(engine: Engine) -> Callable[[], str | None]:
    def holder() -> str | None:
        with transaction(engine, write=False) as conn:
            found = leases.get(conn, "resolution", KEY)
        return None if found is None else found.holder

    return holder


def test_two_holders_one_waits_and_shares_the_stored_outcome(engine: Engine) -> None:
    board = Leases(engine, "resolution", ttl=30)
    first = board.take_turn(KEY, _stored, budget=30, wait=10)
    assert isinstance(first, HeldLease)
    waiter = _Waiter(lambda: board.take_turn(KEY, _stored, budget=30, wait=10))
    assert not waiter.done.wait(0.3), "the second caller must wait while the first holds the lease"
    with transaction(engine, write=True) as conn:
        queries.put_input(
            conn,
            KEY,
            b'{"target": {"platform": "linux_x86_64", "python": "3.11.0", "cuda": null}}',
            datetime.now(UTC),
        )
        first.release(conn)
    shared = waiter.result()
    assert isinstance(shared, InputRecord) and shared.digest == KEY
    assert _holders(engine)() is None


def test_work_stored_nowhere_is_shared_once_its_holder_releases(engine: Engine) -> None:
    board = Leases(engine, "resolution", ttl=30)
    first = board.take_turn(KEY, _when_released, budget=30, wait=10)
    assert isinstance(first, HeldLease)
    waiter = _Waiter(lambda: board.take_turn(KEY, _when_released, budget=30, wait=10))
    assert not waiter.done.wait(0.3), "work stored nowhere is not done until its holder releases"
    first.release()
    assert waiter.result() == "shared"


def test_a_failure_reaches_the_waiters_and_a_transient_one_lets_a_newcomer_retry(engine: Engine) -> None:
    board = Leases(engine, "resolution", ttl=30)
    first = board.take_turn(KEY, _nothing_stored, budget=30, wait=10)
    assert isinstance(first, HeldLease)
    waiter = _Waiter(lambda: board.take_turn(KEY, _nothing_stored, budget=30, wait=10))
    assert not waiter.done.wait(0.3)
    first.fail(IndexUnavailable("the index answered 503", context={"url": "https://pypi.invalid/"}))
    shared = waiter.result()
    assert isinstance(shared, IndexUnavailable) and shared.message == "the index answered 503"
    assert shared.context == {"url": "https://pypi.invalid/"}
    # an index failure may be transient: a caller arriving after it takes the lease and tries again
    retry = board.take_turn(KEY, _nothing_stored, budget=30, wait=10)
    assert isinstance(retry, HeldLease)
    # the input's own fault (4xx) is shared with newcomers while it is visible
    retry.fail(InvalidRequest("no such extra"))
    with pytest.raises(InvalidRequest, match="no such extra"):
        board.take_turn(KEY, _nothing_stored, budget=30, wait=10)


def test_the_wait_is_bounded(engine: Engine) -> None:
    board = Leases(engine, "resolution", ttl=30)
    first = board.take_turn(KEY, _nothing_stored, budget=30, wait=10)
    assert isinstance(first, HeldLease)
    started = time.monotonic()
    with pytest.raises(ResolutionTimeout):
        board.take_turn(KEY, _nothing_stored, budget=30, wait=0.3)
    assert time.monotonic() - started < 5
    first.release()


def test_renewal_keeps_a_lease_alive_and_stops_at_the_works_deadline(engine: Engine) -> None:
    board = Leases(engine, "resolution", ttl=1.0, renew_every=0.1)
    unbounded = board.try_take(KEY, budget=None)
    assert unbounded is not None
    with transaction(engine, write=False) as conn:
        taken = leases.get(conn, "resolution", KEY)
    assert taken is not None

    def renewed_past_its_first_ttl() -> bool:
        with transaction(engine, write=False) as conn:
            now = leases.get(conn, "resolution", KEY)
        return now is not None and now.expires_at > taken.expires_at + 1.0

    with unbounded.renewing():
        _wait_for(renewed_past_its_first_ttl, "the lease to be renewed")
        assert board.try_take(KEY, budget=None) is None
    unbounded.release()

    bounded = board.try_take(KEY, budget=0.5)
    assert bounded is not None and bounded.deadline is not None
    with bounded.renewing():
        successor = _wait_for(lambda: board.try_take(KEY, budget=None), "the lease to expire")
        # renewed every 0.1 s with a 1 s TTL: only an end to renewal lets it expire
        assert time.monotonic() >= bounded.deadline
    assert not bounded.lost
    successor.release()


def test_an_expired_lease_is_taken_over_and_its_old_holder_learns_it_lost(engine: Engine) -> None:
    board = Leases(engine, "resolution", ttl=0.3, renew_every=0.05)
    stale = board.take_turn(KEY, _nothing_stored, budget=30, wait=10)
    assert isinstance(stale, HeldLease)  # and never renewed: its holder hangs, or died
    successor = board.take_turn(KEY, _nothing_stored, budget=30, wait=10)
    assert isinstance(successor, HeldLease) and successor.holder != stale.holder
    with stale.renewing():
        _wait_for(lambda: stale.lost, "the old holder to notice")
    stale.release()  # no effect on the lease it lost
    assert _holders(engine)() == successor.holder
    successor.release()
    assert _holders(engine)() is None


def test_the_drift_lease_is_one_row_taken_without_waiting(engine: Engine) -> None:
    board = Leases(engine, "drift", ttl=30)
    run = board.try_take("drift", budget=None)
    assert run is not None
    assert board.try_take("drift", budget=None) is None
    run.fail(IndexUnavailable("down"))  # a drift run records failures on its run row: this releases
    again = board.try_take("drift", budget=None)
    assert again is not None
    again.release()
