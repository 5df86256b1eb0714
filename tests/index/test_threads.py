"""`lockd.index.threads`: threads started once, each scope's tasks under its own deadline, cancelled with it."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pytest

from lockd.deadline import current_deadline, deadline_scope
from lockd.index.threads import WorkerPool

_WAIT_S = 10.0


def _pool_threads(name: str) -> set[int]:
    return {t.ident for t in threading.enumerate() if t.name.startswith(name) and t.ident is not None}


def test_every_thread_runs_from_the_start_and_scopes_reuse_them_until_close() -> None:
    pool = WorkerPool(4, "test-reuse")
    pool.wait_started()  # started on a thread of their own, while the caller goes on
    started = _pool_threads("test-reuse")
    assert len(started) == 4
    seen: set[int] = set()
    for _ in range(3):
        with pool.scope() as tasks:
            seen.update(tasks.map(lambda _: threading.get_ident(), range(16)))
    assert seen <= started and _pool_threads("test-reuse") == started
    pool.close()
    assert _pool_threads("test-reuse") == set()


def test_each_task_runs_under_the_deadline_of_the_scope_that_submitted_it() -> None:
    pool = WorkerPool(2, "test-deadline")
    try:
        both_running = threading.Barrier(2)
        seen: dict[str, float | None] = {}

        def resolution(name: str, deadline: float) -> None:
            with deadline_scope(deadline), pool.scope() as tasks:

                def note() -> None:
                    both_running.wait(_WAIT_S)  # one on each thread, at the same time
                    seen[name] = current_deadline()

                future = tasks.submit(note)
                assert future is not None
                future.result(_WAIT_S)

        now = time.monotonic()
        runs = [threading.Thread(target=resolution, args=(n, now + d)) for n, d in (("a", 60), ("b", 120))]
        for run in runs:
            run.start()
        for run in runs:
            run.join(_WAIT_S)
        assert seen == {"a": now + 60, "b": now + 120}
        with pool.scope() as tasks:
            assert tasks.map(lambda _: current_deadline(), range(4)) == [None] * 4  # nothing stays behind
    finally:
        pool.close()


def test_closing_a_scope_cancels_its_queued_tasks_and_drops_later_ones() -> None:
    pool = WorkerPool(1, "test-cancel")
    ran: list[int] = []
    try:
        holding = threading.Event()
        all_cancelled = threading.Event()
        cancelled: list[Future[None]] = []

        def hold() -> bool:
            # Running while the scope closes: the close must cancel the queued tasks before it
            # waits for this one, or this waits in vain and the queued ones run after it.
            holding.set()
            return all_cancelled.wait(_WAIT_S)

        def note(future: Future[None]) -> None:
            if future.cancelled():
                cancelled.append(future)
                if len(cancelled) == 5:
                    all_cancelled.set()

        with pool.scope() as tasks:
            held = tasks.submit(hold)
            assert held is not None and holding.wait(_WAIT_S)
            for n in range(5):
                queued = tasks.submit(ran.append, n)
                assert queued is not None
                queued.add_done_callback(note)
        assert held.result() is True and ran == []
        assert tasks.submit(ran.append, 99) is None
        with pool.scope() as later:
            later.map(ran.append, [100])
        assert ran == [100]
    finally:
        pool.close()


def test_work_outside_a_scope_runs_until_the_pool_closes() -> None:
    pool = WorkerPool(2, "test-unscoped")
    done = threading.Event()
    other = WorkerPool(1, "test-other")
    try:
        with other.scope():
            pool.submit(done.set)  # another pool's scope is not this pool's
            assert done.wait(_WAIT_S)
    finally:
        other.close()
        pool.close()
    pool.submit(done.clear)  # dropped: the pool is closed
    assert done.is_set()


def test_a_task_submitted_while_the_threads_start_runs_on_the_first_without_waiting_for_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The pool's second thread does not start until the task has run: a submit that waited for
    # every thread (as it once did), or for a thread being started, would wait here in vain.
    release = threading.Event()

    class _Held(threading.Thread):
        def start(self) -> None:
            if self.name.startswith("test-early_") and self.name != "test-early_0":
                release.wait(_WAIT_S)
            super().start()

    monkeypatch.setattr(threading, "Thread", _Held)  # the module the pool starts its threads with
    pool = WorkerPool(8, "test-early")
    try:
        ran: Future[str] = Future()
        with pool.scope() as tasks:  # at once: the starting thread may not have started any yet
            tasks.submit(lambda: ran.set_result(threading.current_thread().name))
            assert ran.result(timeout=_WAIT_S) == "test-early_0"
            assert not release.is_set() and len(_pool_threads("test-early")) == 1
        release.set()
        pool.wait_started()
        assert len(_pool_threads("test-early")) == 8
    finally:
        release.set()
        pool.close()
    assert _pool_threads("test-early") == set()


def test_a_thread_that_cannot_start_leaves_the_pool_working_on_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class _Refused(threading.Thread):
        def start(self) -> None:
            if self.name.startswith("test-refused_") and self.name not in (
                "test-refused_0",
                "test-refused_1",
            ):
                raise RuntimeError("can't start new thread")
            super().start()

    monkeypatch.setattr(threading, "Thread", _Refused)
    pool = WorkerPool(8, "test-refused")
    try:
        pool.wait_started()
        assert len(_pool_threads("test-refused")) == 2
        with pool.scope() as tasks:
            assert sorted(tasks.map(lambda n: n * 2, range(10))) == [n * 2 for n in range(10)]
    finally:
        pool.close()  # joins the two that run, and no other
    assert _pool_threads("test-refused") == set()
