"""Single-flight across threads and processes: one holder does a piece of work, the others wait.

The protocol, over a lease row in the database (`lockd.store.leases`):

1. `Leases.take_turn(key, outcome)` waits for a turn. It returns the work's outcome as soon as
   one is stored (another holder finished it), raises the error a holder recorded while this
   caller waited, or returns a `HeldLease` once the lease is free, failed or expired. The wait
   is bounded: past it, `ResolutionTimeout`.
2. The holder works inside `lease.renewing()`: the lease is renewed every `renew_every`
   seconds until the work ends, the lease is lost, or the work's deadline passes, after which
   the lease expires `ttl` seconds later and another caller may take over.
3. The holder ends with `lease.release(conn)` in the transaction that stores the outcome (so
   waiters see both at once), or `lease.fail(error)`, which leaves the error for the waiters
   for `FAILURE_VISIBLE` seconds. When the database cannot take the release, it is retried in
   the background until it succeeds or the lease has expired anyway.

Lock resolution and refresh use the resolution leases (one per input digest); drift runs use
the one drift lease, which they take without waiting (`try_take`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection, Engine

from lockd.errors import LockdError, ResolutionTimeout
from lockd.periodic import Periodic
from lockd.store import leases as rows
from lockd.store import transaction
from lockd.store.leases import LeaseRecord, LeaseSpace

__all__ = ["FAILURE_VISIBLE", "HeldLease", "LeaseSpace", "Leases", "Outcome"]

log = logging.getLogger(__name__)

T = TypeVar("T")
# `outcome(conn, released)`: the work's stored result, or None while there is none yet.
# `released` is True once a holder this caller waited for has released its lease, that is,
# finished its work: work that is not stored under its key (a refresh) is then done too.
Outcome = Callable[[Connection, bool], T | None]

# A failed holder's error is kept this long for the waiters that were polling it.
FAILURE_VISIBLE = 10.0
_POLL_FIRST = 0.02
_POLL_MAX = 0.25
_RELEASE_RETRY = 1.0


class HeldLease:
    """A lease this process holds on `key`, with the deadline of the work it covers."""

    def __init__(self, leases: Leases, key: str, holder: str, deadline: float | None) -> None:
        self._leases = leases
        self.key = key
        self.holder = holder
        self.deadline = deadline  # time.monotonic() seconds; None: as long as the holder lives
        self.lost = False  # renewal found the lease taken over: the work should stop

    @contextmanager
    def renewing(self, also: Callable[[Connection], object] | None = None) -> Iterator[HeldLease]:
        """Keeps the lease alive while the block runs; `also(conn)` joins each renewal's transaction."""
        name = f"lockd-lease-{self._leases.space}-{self.key[:12]}"
        with Periodic(name, self._leases.renew_every, lambda: self._renew(also)):
            yield self

    def _renew(self, also: Callable[[Connection], object] | None) -> bool:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            log.warning("lease past its work's deadline: no longer renewed", extra={"lease": self.key})
            return False
        try:
            with transaction(self._leases.engine, write=True) as conn:
                kept = rows.renew(
                    conn, self._leases.space, self.key, self.holder, expires_at=time.time() + self._leases.ttl
                )
                if also is not None:
                    also(conn)
        except LockdError as exc:
            log.warning("could not renew a lease: %s", exc.message, extra={"lease": self.key})
            return True
        if not kept:
            self.lost = True
            log.error("lost a lease to another holder", extra={"lease": self.key})
        return kept

    def release(self, conn: Connection | None = None) -> None:
        """Drop the lease: in `conn`'s transaction (with the outcome), or on its own."""
        if conn is not None:
            rows.release(conn, self._leases.space, self.key, self.holder)
            return
        self._write_or_retry(lambda c: rows.release(c, self._leases.space, self.key, self.holder))

    def fail(self, error: LockdError) -> None:
        """Leave `error` for the waiters; a caller arriving later may take the lease at once."""
        expires_at = time.time() + FAILURE_VISIBLE
        self._write_or_retry(
            lambda c: rows.fail(
                c, self._leases.space, self.key, self.holder, error.to_json(), expires_at=expires_at
            )
        )

    def _write_or_retry(self, write: Callable[[Connection], None]) -> None:
        try:
            with transaction(self._leases.engine, write=True) as conn:
                write(conn)
        except LockdError as exc:
            log.warning("could not end a lease: %s", exc.message, extra={"lease": self.key})
            self._release_when_possible()

    def _release_when_possible(self) -> None:
        """Keep trying to drop the lease in the background once the database is back.

        Without this, a database blip at the end of the work leaves a lease that makes every
        later caller for the same key wait until it expires. Past its TTL it has expired anyway.
        """
        give_up = time.monotonic() + self._leases.ttl

        def attempt() -> bool:
            if time.monotonic() > give_up:
                return False
            try:
                with transaction(self._leases.engine, write=True) as conn:
                    rows.release(conn, self._leases.space, self.key, self.holder)
            except LockdError:
                return True
            log.info("released a lease after a database failure", extra={"lease": self.key})
            return False

        Periodic(f"lockd-lease-release-{self.key[:12]}", _RELEASE_RETRY, attempt).start()


class Leases:
    """The leases of one space (`resolution` or `drift`) over one database."""

    def __init__(
        self, engine: Engine, space: LeaseSpace, *, ttl: float, renew_every: float | None = None
    ) -> None:
        self.engine = engine
        self.space: LeaseSpace = space
        self.ttl = ttl
        self.renew_every = ttl / 3 if renew_every is None else renew_every

    def try_take(self, key: str, *, budget: float | None, conn: Connection | None = None) -> HeldLease | None:
        """The lease on `key` if it is free, failed or expired, else None; in `conn`'s transaction if given."""
        holder = uuid.uuid4().hex
        if conn is None:
            with transaction(self.engine, write=True) as own:
                return self.try_take(key, budget=budget, conn=own)
        if not rows.acquire(conn, self.space, key, holder, now=time.time(), ttl=self.ttl):
            return None
        return HeldLease(self, key, holder, None if budget is None else time.monotonic() + budget)

    def take_turn(self, key: str, outcome: Outcome[T], *, budget: float, wait: float) -> T | HeldLease:
        """The stored outcome of the work on `key`, or the lease to do it (see the module docstring).

        `budget` is the holder's time for the work (its lease is renewed no longer); `wait` bounds
        how long this call waits for other holders before it raises `ResolutionTimeout`.
        """
        give_up = time.monotonic() + wait
        pause = _POLL_FIRST
        waited = seen_holder = False
        while True:
            with transaction(self.engine, write=False) as conn:
                lease = rows.get(conn, self.space, key)
                found = outcome(conn, seen_holder and lease is None)
            if found is not None:
                return found
            if lease is not None and lease.state == "failed" and lease.error is not None:
                error = LockdError.from_json(lease.error)
                # It failed while we waited: its answer is ours too. A caller arriving just after
                # shares it only when the input itself is at fault (4xx); an index or time-out
                # failure (5xx) may be transient, so a newcomer tries again.
                if waited or (error.status < 500 and lease.expires_at >= time.time()):
                    raise error
            if _free(lease):
                with transaction(self.engine, write=True) as conn:
                    found = outcome(conn, seen_holder and lease is None)
                    held = None if found is not None else self.try_take(key, budget=budget, conn=conn)
                if found is not None:
                    return found
                if held is not None:
                    return held
            seen_holder = seen_holder or (lease is not None and lease.state == "running")
            if time.monotonic() + pause > give_up:
                raise ResolutionTimeout(
                    f"waited {wait:g} s for another resolution of the same input to finish",
                    hint="retry later: the other resolution is still running",
                    context={"wait_seconds": wait},
                )
            time.sleep(pause)
            waited = True
            pause = min(pause * 1.5, _POLL_MAX)


def _free(lease: LeaseRecord | None) -> bool:
    return lease is None or lease.state == "failed" or lease.expires_at < time.time()
