from __future__ import annotations

import threading
import time

from lockd.periodic import Periodic


def _wait_for(condition: threading.Event, seconds: float = 5.0) -> bool:
    return condition.wait(seconds)


def test_runs_repeatedly_until_stopped_and_stop_is_prompt() -> None:
    calls: list[float] = []
    third = threading.Event()

    def tick() -> None:
        calls.append(time.monotonic())
        if len(calls) == 3:
            third.set()

    task = Periodic("test-tick", 0.01, tick).start()
    assert _wait_for(third)
    started = time.monotonic()
    task.stop()
    assert time.monotonic() - started < 1.0
    assert not task.running
    seen = len(calls)
    time.sleep(0.05)
    assert len(calls) == seen


def test_a_failing_tick_is_logged_and_the_loop_goes_on() -> None:
    calls = []
    second = threading.Event()

    def tick() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        second.set()

    with Periodic("test-failing", 0.01, tick):
        assert _wait_for(second)


def test_returning_false_ends_the_loop_from_inside() -> None:
    done = threading.Event()

    def tick() -> bool:
        done.set()
        return False

    task = Periodic("test-once", 0.01, tick, first_delay=0).start()
    assert _wait_for(done)
    deadline = time.monotonic() + 5
    while task.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not task.running


def test_a_long_interval_does_not_delay_stop() -> None:
    task = Periodic("test-slow", 3600, lambda: None).start()
    started = time.monotonic()
    task.stop()
    assert time.monotonic() - started < 1.0
