"""The fetch threads: started once, shared by every resolution, each resolution's work in its own scope.

`ThreadPoolExecutor` starts a thread inside `submit`, holding its lock until the new thread
has run; mid-resolution, with page parsing holding the GIL, that wait is long and every other
`submit` (the prefetch walk announcing dependencies) queues behind it: a fifth of a warm
resolution's samples. So all threads start up front, when nothing competes. Starting 64 of them
still costs milliseconds, a tenth of a fully cached resolution, so they start once per
`WorkerPool` (one per process: the service's or the CLI's index client) and outlive resolutions.
They start on a thread of their own: `lockd lock` builds its client on the way to its first
request, which it sends while they start; a `submit` waits until all of them run, so no task
takes a thread the start-up is waiting for.

Shared threads raise two questions a pool per resolution answered by itself. Whose deadline:
a task runs in a copy of the context it was submitted from, so `lockd.deadline` (and the scope)
follow it onto the pool thread. Whose work: a resolution submits through its `TaskScope`, which
knows its futures; closing the scope (the resolution ended or failed) cancels what is still
queued and waits for what runs, so none of one resolution's prefetches run during the next,
and work submitted after the close is dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from contextvars import ContextVar, copy_context
from typing import Any, TypeVar

__all__ = ["TaskScope", "WorkerPool"]

T = TypeVar("T")
R = TypeVar("R")


class TaskScope:
    """One resolution's share of a `WorkerPool`: what it submitted, cancelled together at `close`."""

    def __init__(self, executor: ThreadPoolExecutor, started: threading.Event) -> None:
        self._executor = executor
        self._started = started
        self._lock = threading.Lock()
        self._futures: set[Future[Any]] = set()
        self._closed = False

    def submit(self, function: Callable[..., R], *args: Any) -> Future[R] | None:
        """Runs `function(*args)` on a pool thread under the caller's context; None once closed."""
        context = copy_context()
        self._started.wait()
        with self._lock:
            if self._closed:
                return None
            try:
                future = self._executor.submit(context.run, function, *args)
            except RuntimeError:
                return None  # the pool is shutting down
            self._futures.add(future)
        # Outside the lock: a future already done runs the callback here, and it takes the lock.
        future.add_done_callback(self._forget)
        return future

    def map(self, function: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """`function` of every item, in parallel, in order; on the caller's thread once the pool is gone."""
        futures = [(item, self.submit(function, item)) for item in items]
        return [function(item) if future is None else future.result() for item, future in futures]

    def close(self) -> None:
        """Cancels the queued tasks, waits for the running ones and refuses new ones."""
        with self._lock:
            self._closed = True
            futures = list(self._futures)
        # `cancel` runs `_forget`, which takes the lock: not under it.
        running = [future for future in futures if not future.cancel()]
        wait(running)

    def _forget(self, future: Future[Any]) -> None:
        with self._lock:
            self._futures.discard(future)


_current: ContextVar[TaskScope | None] = ContextVar("lockd_task_scope", default=None)


class WorkerPool:
    """`width` threads, all running from the start, until `close`. Thread-safe."""

    def __init__(self, width: int, name: str, *, warm_up: Callable[[], object] | None = None) -> None:
        """`warm_up` runs on a pool thread once all have started (a table every task will need)."""
        self._executor = ThreadPoolExecutor(max_workers=width, thread_name_prefix=name)
        self._started = threading.Event()
        # Work submitted outside any scope (a prefetch asked for between resolutions).
        self._unscoped = TaskScope(self._executor, self._started)

        def start() -> None:
            # Each task waits for all the others, so each `submit` finds no idle thread and starts one.
            everyone = threading.Barrier(width)
            try:
                wait([self._executor.submit(everyone.wait) for _ in range(width)])
            finally:
                self._started.set()  # even if the pool was shut down meanwhile: nobody waits forever
            if warm_up is not None:
                self._unscoped.submit(warm_up)

        threading.Thread(target=start, name=f"lockd-start-{name}", daemon=True).start()

    def wait_started(self) -> None:
        """Returns once every thread runs (or the pool was closed first)."""
        self._started.wait()

    @contextmanager
    def scope(self) -> Iterator[TaskScope]:
        """A scope for one resolution, current (for `submit`) inside the block, closed at its end."""
        tasks = TaskScope(self._executor, self._started)
        token = _current.set(tasks)
        try:
            yield tasks
        finally:
            _current.reset(token)
            tasks.close()

    def submit(self, function: Callable[..., object], *args: Any) -> None:
        """Runs `function(*args)` in the current scope of this pool (else unscoped), unless it is closed."""
        tasks = _current.get()
        if tasks is None or tasks._executor is not self._executor:
            tasks = self._unscoped
        tasks.submit(function, *args)

    def close(self) -> None:
        """Cancels queued work, waits for running work, and ends the threads."""
        self.wait_started()
        self._unscoped.close()
        self._executor.shutdown(wait=True, cancel_futures=True)
