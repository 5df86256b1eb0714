"""The in-process drift schedule: an interval or a 5-field cron expression, on one thread.

Off unless `LOCKD_DRIFT_INTERVAL` (seconds) or `LOCKD_DRIFT_CRON` is set. Every replica runs
a scheduler; the run itself takes a database lease, so at most one drift run happens at a
time across replicas, and the run callable is told which tick it serves so that a replica
waking late does not repeat a run another replica already made for the same tick.

`start_drift_helper` runs in every replica on PostgreSQL: it claims batches of the run in
progress, whichever replica started it, so N replicas take about 1/N of a run.

Cron expressions are the classic five fields (minute hour day-of-month month day-of-week),
evaluated in UTC by `croniter`: `*`, lists, ranges, steps, month and weekday names, 0 or 7
for Sunday, and Vixie cron's rule that a restricted day-of-month and a restricted day-of-week
match when either does. Ranges must run upwards (`5-1` is refused, as classic cron does).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from lockd.config import InvalidConfiguration, Settings
from lockd.drift import DriftRunInProgress
from lockd.drift_runs import DriftRuns
from lockd.errors import LockdError
from lockd.periodic import Periodic

__all__ = [
    "CronSchedule",
    "DriftScheduler",
    "IntervalSchedule",
    "Schedule",
    "parse_cron",
    "schedule_from_settings",
    "start_drift_helper",
    "start_drift_scheduler",
]

log = logging.getLogger(__name__)

# (low, high) of minute, hour, day of month, month, day of week: what `*` expands to.
_FIELD_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_NAMES = {
    **{
        name: n
        for n, name in enumerate(
            ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
        )
    },
    **{name: n for n, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
}
_RANGE = re.compile(r"(\w+)-(\w+)")
# The longest gap between two ticks that lockd looks for before saying an expression never fires.
_SEARCH_YEARS = 5


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
    """A parsed cron expression, with the values each field allows (0 = Sunday)."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]

    def next_after(self, moment: datetime) -> datetime:
        start = moment.astimezone(UTC)
        try:
            tick: datetime = croniter(
                self.expression, start, max_years_between_matches=_SEARCH_YEARS
            ).get_next(datetime)
        except CroniterBadDateError:
            raise InvalidConfiguration(
                f"the cron expression {self.expression!r} never fires",
                hint="check LOCKD_DRIFT_CRON (e.g. `0 3 * * *` for 03:00 UTC daily)",
                context={"expression": self.expression},
            ) from None
        return tick.astimezone(UTC)


def _bad(expression: str, why: str) -> InvalidConfiguration:
    return InvalidConfiguration(
        f"invalid cron expression {expression!r}: {why}",
        hint="LOCKD_DRIFT_CRON takes five fields: minute hour day-of-month month day-of-week",
        context={"expression": expression},
    )


def _check_ranges_ascend(expression: str, fields: list[str]) -> None:
    # croniter reads `5-1` as a range that wraps around; classic cron refuses it, and so do we.
    for field in fields:
        for first, last in _RANGE.findall(field):
            low, high = (int(v) if v.isdigit() else _NAMES.get(v.lower(), -1) for v in (first, last))
            if low > high >= 0:
                raise _bad(expression, f"the range {first}-{last} runs backwards")


def parse_cron(expression: str) -> CronSchedule:
    """A 5-field cron expression, or `InvalidConfiguration` saying which part is wrong."""
    fields = expression.split()
    if len(fields) != 5:
        raise _bad(expression, f"expected 5 fields, got {len(fields)}")
    _check_ranges_ascend(expression, fields)
    try:
        expanded = croniter.expand(expression)[0]
    except CroniterBadCronError as exc:
        raise _bad(expression, str(exc)) from None
    allowed = [
        frozenset(range(low, high + 1)) if values == ["*"] else frozenset(int(v) for v in values)
        for values, (low, high) in zip(expanded, _FIELD_RANGES, strict=False)
    ]
    minutes, hours, days, months, weekdays = allowed
    return CronSchedule(
        expression=" ".join(fields),
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=frozenset(day % 7 for day in weekdays),
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
        self._tick: datetime | None = None
        self._periodic = Periodic(name, self._until_next_tick, self._step)
        self.runs_attempted = 0

    def start(self) -> None:
        self._tick = self._schedule.next_after(self._now())
        log.info("drift scheduler started; next run at %s", self._tick.isoformat())
        self._periodic.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stops waiting for the next tick; a run in progress finishes on its own."""
        self._periodic.stop(timeout)

    @property
    def running(self) -> bool:
        return self._periodic.running

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _until_next_tick(self) -> float:
        assert self._tick is not None
        # Wake at least once a minute so a clock jump cannot strand the schedule.
        return min(max(0.0, (self._tick - self._now()).total_seconds()), 60.0)

    def _step(self) -> None:
        tick = self._tick
        assert tick is not None
        if self._now() < tick:
            return
        self._fire(tick)
        self._tick = self._schedule.next_after(max(tick, self._now()))
        log.info("next drift run at %s", self._tick.isoformat())

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


def start_drift_scheduler(settings: Settings, runs: DriftRuns) -> DriftScheduler | None:
    """Start the configured schedule for `runs` (the app's lifespan calls this); None when off."""
    schedule = schedule_from_settings(settings)
    if schedule is None:
        return None
    scheduler = DriftScheduler(schedule, lambda tick: runs.run(trigger="schedule", scheduled_for=tick))
    scheduler.start()
    return scheduler


def start_drift_helper(settings: Settings, runs: DriftRuns) -> Periodic | None:
    """Every LOCKD_DRIFT_HELP_INTERVAL seconds, claim batches of a drift run another replica
    started (`DriftRuns.help_running`), so N replicas share a run. PostgreSQL only: on SQLite
    one process runs the whole run, writes being serialised anyway. None when off."""
    if settings.drift_help_interval <= 0 or not settings.database_url.startswith("postgresql"):
        return None

    def help_once() -> None:
        try:
            runs.help_running()
        except LockdError as exc:
            log.warning("could not help with a drift run: %s (%s)", exc.message, exc.code)

    return Periodic("lockd-drift-helper", settings.drift_help_interval, help_once).start()
