"""Thread pools for fetching, with every thread started up front.

`ThreadPoolExecutor` starts a thread inside `submit`, holding its lock until the new thread
has run; mid-resolution, with page parsing holding the GIL, that wait is long and every other
`submit` (the prefetch walk announcing dependencies) queues behind it: a fifth of a warm
resolution's samples. Started before the work begins, when nothing competes, all of them cost
a few milliseconds — of a thread that is not the caller's when `starting_pool` starts them,
since `lockd lock` builds its index client on the way to its first request.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["started_pool", "starting_pool"]


def started_pool(width: int, name: str) -> ThreadPoolExecutor:
    """A `ThreadPoolExecutor` of `width` threads, all of them already running."""
    pool = ThreadPoolExecutor(max_workers=width, thread_name_prefix=name)
    # Each task waits for all the others, so each `submit` finds no idle thread and starts one.
    everyone = threading.Barrier(width)
    for _ in range(width):
        pool.submit(everyone.wait)
    return pool


def starting_pool(width: int, name: str) -> Future[ThreadPoolExecutor]:
    """`started_pool`, its threads started by a thread of their own while the caller goes on.

    Nothing is submitted to the pool before all its threads run (the future's result), so no
    task of the caller's takes a thread the start-up is waiting for.
    """
    ready: Future[ThreadPoolExecutor] = Future()

    def start() -> None:
        try:
            ready.set_result(started_pool(width, name))
        except BaseException as exc:  # `result()` raises it where the pool is asked for
            ready.set_exception(exc)

    threading.Thread(target=start, name=f"{name}-start", daemon=True).start()
    return ready
