"""Work items run a few at a time, each on a thread of its own with its own deadline, and never
waited for past it.

`run_within_deadlines` hands each item's result to `on_done` in the caller's thread, as it
arrives. An item still running at its deadline is handed to `on_overdue` and no longer waited
for: its thread is a daemon that ends on its own (Python cannot stop a thread) and its late
result is dropped. Once `max_stuck` such threads are still running, whatever the items are
waiting on is not answering at all: the items not yet started go to `on_skipped` without
running, so the whole run ends within about `(max_stuck / workers + 1)` deadlines even then.
An exception raised by an item's work is raised again in the caller, and the run stops.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["run_within_deadlines"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True, kw_only=True)
class _Running(Generic[T]):
    item: T
    deadline: float
    thread: threading.Thread


def _run_into(
    index: int, item: T, work: Callable[[T], R], finished: queue.SimpleQueue[tuple[int, R | BaseException]]
) -> None:
    try:
        outcome: R | BaseException = work(item)
    except BaseException as exc:
        outcome = exc
    finished.put((index, outcome))


def run_within_deadlines(
    items: Sequence[T],
    work: Callable[[T], R],
    *,
    workers: int,
    budget: float,
    max_stuck: int,
    on_done: Callable[[T, R], None],
    on_overdue: Callable[[T], None],
    on_skipped: Callable[[T, int], None],
    name: str = "lockd-work",
) -> None:
    """Run `work(item)` for every item, `workers` at a time, each within `budget` seconds."""
    waiting = deque(enumerate(items))
    finished: queue.SimpleQueue[tuple[int, R | BaseException]] = queue.SimpleQueue()
    running: dict[int, _Running[T]] = {}
    stuck: list[threading.Thread] = []
    while waiting or running:
        stuck = [thread for thread in stuck if thread.is_alive()]
        while waiting and len(running) < workers:
            index, item = waiting.popleft()
            if len(stuck) >= max_stuck:
                on_skipped(item, len(stuck))
                continue
            thread = threading.Thread(
                target=_run_into, args=(index, item, work, finished), name=f"{name}-{index}", daemon=True
            )
            thread.start()
            running[index] = _Running(item=item, deadline=time.monotonic() + budget, thread=thread)
        if not running:
            continue
        nearest = min(entry.deadline for entry in running.values())
        try:
            index, outcome = finished.get(timeout=max(0.0, nearest - time.monotonic()))
        except queue.Empty:
            now = time.monotonic()
            for index, entry in list(running.items()):
                if entry.deadline <= now:
                    del running[index]
                    stuck.append(entry.thread)
                    on_overdue(entry.item)
            continue
        done = running.pop(index, None)
        if done is None:
            continue  # an item given up on that answered after all
        if isinstance(outcome, BaseException):
            raise outcome
        on_done(done.item, outcome)
