"""The in-process drift schedule: an interval or a 5-field cron expression, on one thread.

Off unless `LOCKD_DRIFT_INTERVAL` (seconds) or `LOCKD_DRIFT_CRON` is set. Every replica runs
a scheduler; the run itself takes a database lease, so at most one drift run happens at a
time across replicas, and the run callable is told which tick it serves so that a replica
waking late does not repeat a run another replica already made for the same tick.

Cron expressions are the classic five fields (minute hour day-of-month month day-of-week),
evaluated in UTC, with `*`, lists, ranges, steps, month and weekday names, 0 or 7 for
Sunday, and Vixie cron's rule that a restricted day-of-month and a restricted day-of-week
match when either does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from lockd.config import InvalidConfiguration, Settings
from lockd.drift import DriftRunInProgress
from lockd.errors import LockdError
from lockd.service import Service, run_drift

__all__ = [
    "CronSchedule",
    "DriftScheduler",
    "IntervalSchedule",
    "Schedule",
    "parse_cron",
    "schedule_from_settings",
    "start_drift_scheduler",
]

log = logging.getLogger(__name__)

_MONTHS = {
    name: n
    for n, name in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}
_WEEKDAYS = {name: n for n, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
# Beyond this a cron expression never fires (e.g. `0 0 31 2 *`); looking further is pointless.
_SEARCH_DAYS = 366 * 5


class Schedule(Protocol):
    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after `moment` (aware, UTC)."""
        ...


@dataclass(frozen=True, slots=True)
class IntervalSchedule:
    """Every `seconds`, on multiples of it since the epoch, so replicas agree on the ticks."""

    seconds: float

    def next_after(self, moment: datetime) -> datetime:
        now = moment.timestamp()
        tick = (now // self.seconds + 1) * self.seconds
        return datetime.fromtimestamp(tick, UTC)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    def _day_matches(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        by_day = day.day in self.days
        by_weekday = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return by_day or by_weekday
        return by_day and by_weekday

    def next_after(self, moment: datetime) -> datetime:
        start = moment.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.replace(hour=0, minute=0)
        for _ in range(_SEARCH_DAYS):
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        candidate = day.replace(hour=hour, minute=minute)
                        if candidate >= start:
                            return candidate
            day += timedelta(days=1)
        raise InvalidConfiguration(
            f"the cron expression {self.expression!r} never fires",
            hint="check LOCKD_DRIFT_CRON (e.g. `0 3 * * *` for 03:00 UTC daily)",
            context={"expression": self.expression},
        )


def _value(text: str, names: dict[str, int], expression: str) -> int:
    lowered = text.lower()
    if lowered in names:
        return names[lowered]
    if not text.isdigit():
        raise _bad(expression, f"{text!r} is not a number")
    return int(text)


def _bad(expression: str, why: str) -> InvalidConfiguration:
    return InvalidConfiguration(
        f"invalid cron expression {expression!r}: {why}",
        hint="LOCKD_DRIFT_CRON takes five fields: minute hour day-of-month month day-of-week",
        context={"expression": expression},
    )


def _field(text: str, low: int, high: int, names: dict[str, int], expression: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        spec, _, step_text = part.partition("/")
        step = _value(step_text, {}, expression) if step_text else 1
        if step < 1:
            raise _bad(expression, f"step {step_text!r} must be at least 1")
        if spec == "*":
            first, last = low, high
        elif "-" in spec:
            first_text, _, last_text = spec.partition("-")
            first, last = _value(first_text, names, expression), _value(last_text, names, expression)
        else:
            first = _value(spec, names, expression)
            last = high if step_text else first
        if not low <= first <= last <= high:
            raise _bad(expression, f"{part!r} is outside {low}-{high}")
        values.update(range(first, last + 1, step))
    return frozenset(values)


def parse_cron(expression: str) -> CronSchedule:
    """A 5-field cron expression, or `InvalidConfiguration` saying which part is wrong."""
    fields = expression.split()
    if len(fields) != 5:
        raise _bad(expression, f"expected 5 fields, got {len(fields)}")
    minute, hour, day, month, weekday = fields
    weekdays = _field(weekday, 0, 7, _WEEKDAYS, expression)
    return CronSchedule(
        expression=expression,
        minutes=_field(minute, 0, 59, {}, expression),
        hours=_field(hour, 0, 23, {}, expression),
        days=_field(day, 1, 31, {}, expression),
        months=_field(month, 1, 12, _MONTHS, expression),
        weekdays=frozenset(d % 7 for d in weekdays),
        days_restricted=not day.startswith("*"),
        weekdays_restricted=not weekday.startswith("*"),
    )


def schedule_from_settings(settings: Settings) -> Schedule | None:
    """The configured schedule, or None (the default: drift runs only when asked)."""
    if settings.drift_cron and settings.drift_interval:
        raise InvalidConfiguration(
            "set LOCKD_DRIFT_CRON or LOCKD_DRIFT_INTERVAL, not both",
            context={"cron": settings.drift_cron, "interval": settings.drift_interval},
        )
    if settings.drift_cron:
        return parse_cron(settings.drift_cron)
    if settings.drift_interval:
        return IntervalSchedule(settings.drift_interval)
    return None


class DriftScheduler:
    """Calls `run(tick)` at each tick of `schedule` on a daemon thread until `stop()`.

    `run` is expected to take the cross-replica lease itself; `DriftRunInProgress` means
    another replica has this tick and is logged quietly. Any other failure is logged and
    the schedule carries on: one bad run must not stop drift detection for good.
    """

    def __init__(
        self,
        schedule: Schedule,
        run: Callable[[datetime], object],
        *,
        clock: Callable[[], float] = time.time,
        name: str = "lockd-drift-scheduler",
    ) -> None:
        self._schedule = schedule
        self._run = run
        self._clock = clock
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.runs_attempted = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stops waiting for the next tick; a run in progress finishes on its own."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _loop(self) -> None:
        tick = self._schedule.next_after(self._now())
        log.info("drift scheduler started; next run at %s", tick.isoformat())
        while not self._stopping.is_set():
            wait = (tick - self._now()).total_seconds()
            if wait > 0:
                # Wake at least once a minute so a clock jump cannot strand the schedule.
                self._stopping.wait(min(wait, 60.0))
                continue
            self._fire(tick)
            tick = self._schedule.next_after(max(tick, self._now()))
            log.info("next drift run at %s", tick.isoformat())

    def _fire(self, tick: datetime) -> None:
        self.runs_attempted += 1
        try:
            self._run(tick)
        except DriftRunInProgress:
            log.info("drift run for %s skipped: another run holds the lease", tick.isoformat())
        except LockdError as exc:
            log.error("scheduled drift run for %s failed: %s (%s)", tick.isoformat(), exc.message, exc.code)
        except Exception:
            log.exception("scheduled drift run for %s crashed", tick.isoformat())


def start_drift_scheduler(settings: Settings, service: Service) -> DriftScheduler | None:
    """Start the configured schedule for `service` (the app's lifespan calls this); None when off."""
    schedule = schedule_from_settings(settings)
    if schedule is None:
        return None
    scheduler = DriftScheduler(
        schedule, lambda tick: run_drift(service, trigger="schedule", scheduled_for=tick)
    )
    scheduler.start()
    return scheduler
