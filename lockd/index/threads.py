"""Thread pools for fetching, with every thread started up front.

`ThreadPoolExecutor` starts a thread inside `submit`, holding its lock until the new thread
has run; mid-resolution, with page parsing holding the GIL, that wait is long and every other
`submit` (the prefetch walk announcing dependencies) queues behind it: a fifth of a warm
resolution's samples. Started before the work begins, when nothing competes, all of them cost
a few milliseconds.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["started_pool"]


def started_pool(width: int, name: str) -> ThreadPoolExecutor:
    """A `ThreadPoolExecutor` of `width` threads, all of them already running."""
    pool = ThreadPoolExecutor(max_workers=width, thread_name_prefix=name)
    # Each task waits for all the others, so each `submit` finds no idle thread and starts one.
    everyone = threading.Barrier(width)
    for _ in range(width):
        pool.submit(everyone.wait)
    return pool
