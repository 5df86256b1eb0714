"""The fetch threads: started once, shared by every resolution, each resolution's work in its own scope.

`ThreadPoolExecutor` starts a thread inside `submit`, holding its lock until the new thread
has run; mid-resolution, with page parsing holding the GIL, that wait is long and every other
`submit` (the prefetch walk announcing dependencies) queues behind it: a fifth of a warm
resolution's samples. So the threads start up front, once per `WorkerPool` (one per process:
the service's or the CLI's index client), and outlive resolutions. They start on a thread of
their own, one after the other, and take tasks from one queue as soon as each runs: a `submit`
never waits for them. (It used to wait until all 64 ran. In `lockd lock`, whose resolver loads
while they start, each start waits for the GIL, and the first prefetch of a cold 25-pin run
waited 100 ms, a sixth of the run.)

Shared threads raise two questions a pool per resolution answered by itself. Whose deadline:
a task runs in a copy of the context it was submitted from, so `lockd.deadline` (and the scope)
follow it onto the pool thread. Whose work: a resolution submits through its `TaskScope`, which
knows its futures; closing the scope (the resolution ended or failed) cancels what is still
queued and waits for what runs, so none of one resolution's prefetches run during the next,
and work submitted after the close is dropped.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, wait
from contextlib import contextmanager, suppress
from contextvars import ContextVar, copy_context
from typing import Any, TypeVar

__all__ = ["TaskScope", "WorkerPool"]

T = TypeVar("T")
R = TypeVar("R")


class TaskScope:
    """One resolution's share of a `WorkerPool`: what it submitted, cancelled together at `close`."""

    def __init__(self, executor: _Threads) -> None:
        self._executor = executor
        self._lock = threading.Lock()
        self._futures: set[Future[Any]] = set()
        self._closed = False

    def submit(self, function: Callable[..., R], *args: Any) -> Future[R] | None:
        """Runs `function(*args)` on a pool thread under the caller's context; None once closed."""
        context = copy_context()
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


_Task = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class _Threads:
    """`width` threads taking tasks from one queue, started one by one on a thread of their own."""

    def __init__(self, width: int, name: str, then: Callable[[], object] | None) -> None:
        self._queue: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._threads: list[threading.Thread] = []
        self.started = threading.Event()

        def start() -> None:
            try:
                for n in range(width):
                    with self._lock:
                        if self._closed:
                            break
                    thread = threading.Thread(target=self._work, name=f"{name}_{n}", daemon=True)
                    # Outside the lock: a start waits for the new thread to run, and a `submit`
                    # must not wait for that.
                    try:
                        thread.start()
                    except RuntimeError:  # no thread to be had (a process limit): the rest work
                        break
                    with self._lock:
                        self._threads.append(thread)
            finally:
                self.started.set()  # even if the pool was closed meanwhile: nobody waits forever
            if then is not None:
                with suppress(RuntimeError):  # closed meanwhile
                    self.submit(then)

        threading.Thread(target=start, name=f"lockd-start-{name}", daemon=True).start()

    def submit(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the pool is closed")
            self._queue.put((future, function, args))
        return future

    def _work(self) -> None:
        while (task := self._queue.get()) is not None:
            future, function, args = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = function(*args)
            except BaseException as exc:  # the future carries it to whoever waits
                future.set_exception(exc)
            else:
                future.set_result(result)
            del task, future, function, args  # nothing of a finished task stays alive here
        self._queue.put(None)  # the next thread ends too

    def shutdown(self) -> None:
        """Cancels what is queued, lets what runs finish, and ends the threads."""
        with self._lock:
            self._closed = True
        self.started.wait()  # then every thread there is has started and is listed
        threads = list(self._threads)
        while True:
            try:
                task = self._queue.get_nowait()
            except queue.Empty:
                break
            if task is not None:
                task[0].cancel()
        self._queue.put(None)
        for thread in threads:
            thread.join()


class WorkerPool:
    """`width` threads, started in the background, until `close`. Thread-safe."""

    def __init__(self, width: int, name: str, *, warm_up: Callable[[], object] | None = None) -> None:
        """`warm_up` runs on a pool thread once all have started (a table every task will need)."""
        self._executor = _Threads(max(1, width), name, warm_up)
        # Work submitted outside any scope (a prefetch asked for between resolutions).
        self._unscoped = TaskScope(self._executor)

    def wait_started(self) -> None:
        """Returns once every thread runs (or the pool was closed first)."""
        self._executor.started.wait()

    @contextmanager
    def scope(self) -> Iterator[TaskScope]:
        """A scope for one resolution, current (for `submit`) inside the block, closed at its end."""
        tasks = TaskScope(self._executor)
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
        self._unscoped.close()
        self._executor.shutdown()
