"""`lockd.deadline`: one deadline for the work under way, nested scopes, loops and pool threads."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from lockd.deadline import (
    carry_deadline,
    check_deadline,
    current_deadline,
    deadline_scope,
    seconds_left,
    within_deadline,
)
from lockd.errors import ResolutionTimeout


def test_no_deadline_means_no_limit() -> None:
    assert current_deadline() is None and seconds_left() is None
    check_deadline("anything")
    assert list(within_deadline(range(1000), "counting")) == list(range(1000))


def test_a_scope_sets_the_deadline_and_an_inner_one_only_shortens_it() -> None:
    now = time.monotonic()
    with deadline_scope(now + 60):
        assert current_deadline() == now + 60
        with deadline_scope(now + 120):
            assert current_deadline() == now + 60  # an inner scope never extends the outer one
        with deadline_scope(now + 30):
            assert current_deadline() == now + 30
        with deadline_scope(None):
            assert current_deadline() == now + 60
        left = seconds_left()
        assert left is not None and 59 < left <= 60
    assert current_deadline() is None


def test_past_the_deadline_checks_and_loops_raise_resolution_timeout() -> None:
    with deadline_scope(time.monotonic() - 1):
        with pytest.raises(ResolutionTimeout) as raised:
            check_deadline("parsing a page")
        assert raised.value.code == "resolution-timeout"
        assert raised.value.message == "resolution exceeded its time budget while parsing a page"
        with pytest.raises(ResolutionTimeout):
            list(within_deadline(range(10), "walking"))


def test_a_loop_stops_within_a_few_hundred_items_of_the_deadline() -> None:
    seen = 0
    with deadline_scope(time.monotonic() + 0.05), pytest.raises(ResolutionTimeout):
        for _ in within_deadline(range(10**9), "walking"):
            seen += 1
            time.sleep(0.0001)
    assert 0 < seen < 2000


def test_pool_threads_get_the_deadline_only_when_carried() -> None:
    deadline = time.monotonic() + 30
    with ThreadPoolExecutor(max_workers=1) as pool, deadline_scope(deadline):
        assert pool.submit(current_deadline).result() is None  # threads do not inherit context variables
        assert pool.submit(carry_deadline(current_deadline)).result() == deadline

        def deadline_of(_item: int) -> float | None:
            return current_deadline()

        assert list(pool.map(carry_deadline(deadline_of), range(3))) == [deadline] * 3
        assert pool.submit(current_deadline).result() is None  # and the worker does not keep it
