"""The drift schedule: cron and interval ticks, the scheduler thread, settings."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from lockd.config import InvalidConfiguration, Settings
from lockd.drift import DriftRunInProgress
from lockd.errors import IndexUnavailable
from lockd.scheduler import (
    CronSchedule,
    DriftScheduler,
    IntervalSchedule,
    parse_cron,
    schedule_from_settings,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 3 * * *", "2025-01-01T02:59:30", "2025-01-01T03:00:00"),
        ("0 3 * * *", "2025-01-01T03:00:00", "2025-01-02T03:00:00"),  # strictly after
        ("*/15 * * * *", "2025-01-01T10:07:00", "2025-01-01T10:15:00"),
        ("*/15 * * * *", "2025-01-01T23:59:00", "2025-01-02T00:00:00"),
        ("30 9 * * mon-fri", "2025-01-03T10:00:00", "2025-01-06T09:30:00"),  # Fri after 9:30 → Mon
        ("0 0 * * 7", "2025-01-01T00:00:00", "2025-01-05T00:00:00"),  # 7 is Sunday
        ("0 0 1 jan *", "2025-03-01T00:00:00", "2026-01-01T00:00:00"),
        ("0 12 29 feb *", "2025-01-01T00:00:00", "2028-02-29T12:00:00"),
        # both day fields restricted: either matches (Vixie cron); 2025-01-13 is a Monday
        ("0 0 15 * mon", "2025-01-10T00:00:00", "2025-01-13T00:00:00"),
        ("5,10-12/2 * * * *", "2025-01-01T00:10:30", "2025-01-01T00:12:00"),
    ],
)
def test_cron_next_tick(expression: str, after: str, expected: str) -> None:
    assert parse_cron(expression).next_after(at(after)) == at(expected)


@pytest.mark.parametrize(
    "expression",
    ["", "* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "*/0 * * * *", "a * * * *", "5-1 * * * *"],
)
def test_bad_cron_is_a_configuration_error(expression: str) -> None:
    with pytest.raises(InvalidConfiguration) as info:
        parse_cron(expression)
    assert info.value.code == "invalid-configuration"
    assert "LOCKD_DRIFT_CRON" in (info.value.hint or "")


def test_cron_that_never_fires_says_so() -> None:
    schedule = parse_cron("0 0 31 2 *")
    with pytest.raises(InvalidConfiguration, match="never fires"):
        schedule.next_after(at("2025-01-01T00:00:00"))


def test_interval_ticks_are_aligned_so_replicas_agree() -> None:
    schedule = IntervalSchedule(600)
    assert schedule.next_after(at("2025-01-01T10:07:13")) == at("2025-01-01T10:10:00")
    assert schedule.next_after(at("2025-01-01T10:10:00")) == at("2025-01-01T10:20:00")


def test_schedule_is_off_by_default_and_read_from_settings() -> None:
    assert schedule_from_settings(Settings()) is None
    cron = schedule_from_settings(Settings(drift_cron="0 4 * * *"))
    assert isinstance(cron, CronSchedule) and cron.hours == {4}
    assert schedule_from_settings(Settings(drift_interval=3600)) == IntervalSchedule(3600)
    with pytest.raises(InvalidConfiguration, match="not both"):
        schedule_from_settings(Settings(drift_interval=60, drift_cron="* * * * *"))
    with pytest.raises(InvalidConfiguration):
        schedule_from_settings(Settings(drift_cron="every day"))


def test_scheduler_runs_each_tick_and_survives_failures() -> None:
    ticks: list[datetime] = []
    done = threading.Event()

    def run(tick: datetime) -> None:
        ticks.append(tick)
        if len(ticks) == 1:
            raise DriftRunInProgress("another replica has it")
        if len(ticks) == 2:
            raise IndexUnavailable("index down")
        if len(ticks) == 3:
            raise RuntimeError("a bug")
        done.set()

    scheduler = DriftScheduler(IntervalSchedule(0.05), run)
    scheduler.start()
    try:
        assert done.wait(5), f"only {len(ticks)} ticks ran"
    finally:
        scheduler.stop()
    assert not scheduler.running
    assert len(ticks) >= 4
    assert ticks == sorted(ticks) and len(set(ticks)) == len(ticks)


def test_stop_returns_promptly_while_waiting_for_a_distant_tick() -> None:
    scheduler = DriftScheduler(parse_cron("0 0 1 1 *"), lambda tick: None)
    scheduler.start()
    assert scheduler.running
    started = time.monotonic()
    scheduler.stop()
    assert time.monotonic() - started < 2
    assert not scheduler.running
    assert scheduler.runs_attempted == 0
