"""When a schedule fires: ``every``, ``at`` + ``on``, and ``cron``, in a schedule's own
time zone, with daylight-saving changes handled on purpose rather than by accident.

``build_trigger`` returns the APScheduler trigger the long-running scheduler uses;
``next_runs`` and ``runs_between`` iterate that same object, so the ``--next`` table and
what really happens cannot disagree.

All three are wall-clock schedules: each names local times, and the daylight-saving
policy below turns them into instants (each matching wall-clock time runs once):

* a wall time the clocks skip (02:30 on 8 Mar 2026 in New York) runs once, the gap's length
  later (03:30), noted as moved; if that lands on a time the schedule also has, it runs once;
* a wall time the clocks repeat (01:30 on 1 Nov 2026 in New York) runs once, at the first
  occurrence, noted as such.

``every: N`` names the local wall times 00:00 on 1 Jan 2000 + k × N (k = 0, 1, 2 …), counted
on the wall clock with every day 24 hours long. An N that divides a day therefore gives the
same grid every local day, starting at 00:00 (every 15 minutes: :00, :15, :30, :45; every
24 hours: 00:00), whatever offset the zone had in 2000; any other N continues its count
across midnight (every 7 hours: 00:00, 07:00, 14:00, 21:00, then 04:00 …; every 2 days:
00:00 on every other day). The count never depends on when the service started. (It used
to be real elapsed time from the instant of that midnight, which put `every: 24 hours` at
23:00 in São Paulo, whose offset has changed since 2000.)

APScheduler 3.11's ``CronTrigger`` is not used for ``cron``: ``from_crontab`` numbers Monday 0
(so "1" means Tuesday and "7" is rejected), ANDs day-of-month with day-of-week, and fires a
repeated wall time twice when clocks go back. ``WallClockTrigger`` replaces it.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import re
import zoneinfo
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from apscheduler.triggers.base import BaseTrigger

UTC = dt.UTC
MAX_RUNS = 1000
# The longest `every`: a leap year. Longer intervals served no schedule and overflowed
# the date arithmetic (`every: 1000000000 hours` reached the year 116079).
MAX_EVERY = dt.timedelta(days=366)
EVERY_ANCHOR = dt.datetime(2000, 1, 1)  # a local wall time, read in each schedule's own zone
# The longest wait a valid schedule can have: 29 Feb, across 2100 (not a leap year).
_SEARCH_DAYS = 366 * 9
_ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Every:
    """Every ``interval``: the local wall times ``EVERY_ANCHOR`` + k × ``interval``."""

    interval: dt.timedelta


@dataclass(frozen=True)
class AtTimes:
    """At each local wall-clock time in ``times`` on each ISO weekday in ``days``
    (1 = Monday … 7 = Sunday; all seven for ``daily``)."""

    times: tuple[dt.time, ...]
    days: frozenset[int]


@dataclass(frozen=True)
class Cron:
    """A standard five-field crontab expression (0 and 7 are Sunday)."""

    expression: str


TriggerSpec = Every | AtTimes | Cron


@dataclass(frozen=True)
class PlannedRun:
    """One future run: the instant (UTC), the wall clock it shows there, and a note for
    comms staff when daylight saving moved it or made its time ambiguous."""

    at: dt.datetime
    local: dt.datetime
    note: str | None


# --- crontab ---------------------------------------------------------------------------

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # index = crontab number


@dataclass(frozen=True)
class _Field:
    label: str
    low: int
    high: int
    names: tuple[str, ...]  # names[i] stands for low + i
    allowed: str


_FIELDS = (
    _Field("minute", 0, 59, (), "0-59"),
    _Field("hour", 0, 23, (), "0-23"),
    _Field("day of month", 1, 31, (), "1-31"),
    _Field("month", 1, 12, _MONTHS, "1-12 or jan-dec"),
    _Field("day of week", 0, 7, _DAYS, "0-7 (0 and 7 are Sunday) or sun-sat"),
)
_ITEM = re.compile(r"(?P<first>\*|\w+)(?:-(?P<last>\w+))?(?:/(?P<step>\w+))?")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # Feb 29 counts: it occurs


@dataclass(frozen=True)
class _CronFields:
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # ISO: 1 = Monday … 7 = Sunday
    either_day: bool  # crontab runs when day of month OR day of week matches


def _value(token: str, field: _Field) -> int:
    if token.isascii() and token.isdigit():
        # Not int() on the whole token: 5,000 digits raise a ValueError of Python's own.
        digits = token.lstrip("0") or "0"
        number = int(digits) if len(digits) <= 3 else field.high + 1
        if not field.low <= number <= field.high:
            raise ValueError(f"{field.label} '{token}' is out of range — use {field.allowed}")
        return number
    if token in field.names:
        return field.low + field.names.index(token)
    raise ValueError(f"{field.label} '{token}' is not valid — use {field.allowed}")


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        match = _ITEM.fullmatch(item)
        if not match:
            what = "an empty item" if not item else f"'{item}'"
            raise ValueError(
                f"{field.label} has {what} — use numbers {field.allowed}, ranges like 1-5, "
                "steps like */15 or 1-5/2, separated by commas"
            )
        first, last, step_text = match["first"], match["last"], match["step"]
        if first == "*":
            if last:
                raise ValueError(f"{field.label} '{item}' is not valid — '*' cannot start a range")
            start, stop = field.low, field.high
        else:
            start = _value(first, field)
            if last is None and step_text is not None:
                # Some crons read "5/15" as 5-59/15; others reject it. Ask for the clear form.
                raise ValueError(
                    f"{field.label} '{item}' is ambiguous — write a range with the step, "
                    f"e.g. '{first}-{field.high}/{step_text}'"
                )
            stop = start if last is None else _value(last, field)
            if field.names is _DAYS and stop == 0 < start:
                stop = 7  # "fri-sun" means Friday to Sunday, not a backwards range
            if stop < start:
                raise ValueError(
                    f"{field.label} range '{item}' runs backwards — write the smaller value first"
                )
        step = 1
        if step_text is not None:
            ascii_digits = step_text.isascii() and step_text.isdigit()
            digits = step_text.lstrip("0") if ascii_digits else ""
            if not digits or len(digits) > 4:
                raise ValueError(
                    f"{field.label} step '/{step_text}' is not valid — use a whole number from 1"
                )
            step = int(digits)
        values.update(range(start, stop + 1, step))
    return frozenset(values)


def _parse(expression: str) -> _CronFields:
    parts = expression.lower().split()
    if len(parts) != 5:
        raise ValueError(
            f"cron '{expression.strip()}' has {len(parts)} field(s) — use exactly 5: "
            "minute hour day-of-month month day-of-week, e.g. '0 9 * * 1' (Mondays at 09:00)"
        )
    minutes, hours, doms, months, dows = (
        _parse_field(text, field) for text, field in zip(parts, _FIELDS, strict=True)
    )
    # Vixie cron (and cronie): a day field starting with '*' counts as unrestricted, and only
    # when both day fields are restricted does a day matching EITHER of them run.
    either_day = not parts[2].startswith("*") and not parts[4].startswith("*")
    only_dates = parts[4].startswith("*") and not parts[2].startswith("*")
    if only_dates and not any(d <= _DAYS_IN_MONTH[m - 1] for d in doms for m in months):
        raise ValueError(
            f"day of month '{parts[2]}' never occurs in month '{parts[3]}' — "
            "this schedule would never run"
        )
    weekdays = frozenset(7 if day in (0, 7) else day for day in dows)
    return _CronFields(minutes, hours, doms, months, weekdays, either_day)


def parse_cron(expression: str) -> Cron:
    """Check a five-field crontab expression; raise ``ValueError`` naming the bad field."""
    _parse(expression)
    return Cron(" ".join(expression.split()))


# --- the trigger -----------------------------------------------------------------------


def _instant(wall: dt.datetime, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """The UTC instant a local wall time runs at: the daylight-saving policy in one place.

    PEP 495's fold=0 is exactly that policy: a skipped time takes the offset from before the
    gap (so it lands the gap's length later) and a repeated time its first occurrence."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def _wall(instant: dt.datetime, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    return instant.astimezone(tz).replace(tzinfo=None, fold=0)


def _offset(instant: dt.datetime, tz: zoneinfo.ZoneInfo) -> dt.timedelta:
    return instant.astimezone(tz).utcoffset() or dt.timedelta(0)


def _clock(time: dt.time) -> str:
    return time.strftime("%H:%M:%S" if time.second else "%H:%M")


def _day(day: dt.date) -> str:
    # Not strftime: the names must not depend on the server's locale.
    weekday, month = _DAYS[day.isoweekday() % 7], _MONTHS[day.month - 1]
    return f"{weekday.title()} {day.day} {month.title()}"


class LocalTimeTrigger(BaseTrigger):
    """A trigger that names local wall-clock times in ``timezone`` and runs them with the
    module's daylight-saving policy. Implements APScheduler's ``get_next_fire_time``;
    subclasses say which wall times (``_walls_from``, ``_matches``)."""

    timezone: zoneinfo.ZoneInfo

    @abstractmethod
    def _matches(self, wall: dt.datetime) -> bool:
        """Whether the schedule names the wall time ``wall`` (naive, local)."""

    @abstractmethod
    def _walls_from(self, start: dt.datetime) -> Iterator[dt.datetime]:
        """Matching wall times at or after ``start`` (naive, local), in wall-clock order."""

    def get_next_fire_time(
        self, previous_fire_time: dt.datetime | None, now: dt.datetime
    ) -> dt.datetime | None:
        # After a run, the next one is strictly later, even if the clock has gone back. On a
        # fresh start `now` itself counts, as with APScheduler's own triggers.
        if previous_fire_time is not None:
            after, inclusive = previous_fire_time.astimezone(UTC), False
        else:
            after, inclusive = now.astimezone(UTC), True
        tz = self.timezone
        # A skipped wall time runs a gap's length after its wall reading, so just after clocks
        # go forward start that much earlier in wall time, or those moved runs would be missed.
        gap = max(dt.timedelta(0), _offset(after, tz) - _offset(after - _ONE_DAY, tz))
        best: dt.datetime | None = None
        for wall in self._walls_from(_wall(after, tz) - gap):
            at = _instant(wall, tz)
            if at > after or (inclusive and at == after):
                best = at if best is None else min(best, at)
                # Past an existing wall time, no later wall time can land earlier: stop.
                if _wall(at, tz) == wall:
                    break
        return None if best is None else best.astimezone(tz)

    def note_for(self, fire_time: dt.datetime) -> str | None:
        """Plain-English note when daylight saving moved this run or repeats its time."""
        tz, at = self.timezone, fire_time.astimezone(UTC)
        wall = _wall(at, tz)
        # Which skipped wall time, if any, was moved here: read `at` with the offset that was
        # in force before the clocks went forward.
        skipped = at.replace(tzinfo=None) + _offset(at - _ONE_DAY, tz)
        if skipped != wall and self._matches(skipped) and _instant(skipped, tz) == at:
            note = (
                f"moved: {_clock(skipped.time())} does not exist on {_day(skipped.date())} "
                f"(clocks go forward); runs at {_clock(wall.time())}"
            )
            if self._matches(wall):  # the moved run and the schedule's own run are one run
                note += f", together with the {_clock(wall.time())} run"
            return note
        first, second = (wall.replace(tzinfo=tz, fold=fold).utcoffset() for fold in (0, 1))
        if first != second and self._matches(wall):
            return (
                f"{_clock(wall.time())} happens twice on {_day(wall.date())} (clocks go back); "
                "runs once, at the first"
            )
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self}>"


class WallClockTrigger(LocalTimeTrigger):
    """Fires at the local wall-clock ``times`` on matching days (``at`` + ``on``, ``cron``)."""

    def __init__(
        self,
        timezone: zoneinfo.ZoneInfo,
        times: tuple[dt.time, ...],
        *,
        weekdays: frozenset[int] = frozenset(range(1, 8)),
        days_of_month: frozenset[int] = frozenset(range(1, 32)),
        months: frozenset[int] = frozenset(range(1, 13)),
        either_day: bool = False,
    ) -> None:
        self.timezone = timezone
        self.times = tuple(sorted(set(times)))
        self.weekdays = weekdays
        self.days_of_month = days_of_month
        self.months = months
        self.either_day = either_day

    def _day_matches(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        by_date, by_weekday = day.day in self.days_of_month, day.isoweekday() in self.weekdays
        return (by_date or by_weekday) if self.either_day else (by_date and by_weekday)

    def _matches(self, wall: dt.datetime) -> bool:
        return self._day_matches(wall.date()) and wall.time() in self.times

    def _walls_from(self, start: dt.datetime) -> Iterator[dt.datetime]:
        day, first = start.date(), bisect.bisect_left(self.times, start.time())
        for _ in range(_SEARCH_DAYS):
            if self._day_matches(day):
                for time in self.times[first:]:
                    yield dt.datetime.combine(day, time)
            if day == dt.date.max:
                return
            day, first = day + _ONE_DAY, 0

    def __str__(self) -> str:
        return f"wallclock[{', '.join(_clock(t) for t in self.times)} {self.timezone.key}]"


class EveryTrigger(LocalTimeTrigger):
    """Fires at the local wall times ``EVERY_ANCHOR`` + k × ``interval`` (``every``)."""

    def __init__(self, timezone: zoneinfo.ZoneInfo, interval: dt.timedelta) -> None:
        self.timezone = timezone
        self.interval = interval

    def _matches(self, wall: dt.datetime) -> bool:
        return (wall - EVERY_ANCHOR) % self.interval == dt.timedelta(0)

    def _walls_from(self, start: dt.datetime) -> Iterator[dt.datetime]:
        # The first k with anchor + k × interval at or after start: a ceiling division.
        steps = -((EVERY_ANCHOR - start) // self.interval)
        try:
            wall = EVERY_ANCHOR + steps * self.interval
            while True:
                yield wall
                wall += self.interval
        except OverflowError:  # past 31 Dec 9999: no further run
            return

    def __str__(self) -> str:
        return f"every[{self.interval} from 2000-01-01 00:00 {self.timezone.key}]"


def build_trigger(spec: TriggerSpec, timezone: zoneinfo.ZoneInfo) -> LocalTimeTrigger:
    """The APScheduler trigger for ``spec`` in ``timezone``; raises ``ValueError`` if invalid."""
    if isinstance(spec, Every):
        if spec.interval <= dt.timedelta(0):
            raise ValueError(f"every: the interval must be positive, not {spec.interval}")
        if spec.interval > MAX_EVERY:
            raise ValueError(f"every: the interval must be at most {MAX_EVERY.days} days")
        return EveryTrigger(timezone, spec.interval)
    if isinstance(spec, AtTimes):
        if not spec.times:
            raise ValueError('at: give at least one time, e.g. at: "09:00"')
        if not spec.days or not spec.days <= frozenset(range(1, 8)):
            raise ValueError(f"on: days must be ISO weekdays 1-7 (Monday = 1), got {spec.days}")
        if any(time.tzinfo is not None for time in spec.times):
            raise ValueError("at: times are wall-clock times; give the zone as timezone:")
        return WallClockTrigger(timezone, spec.times, weekdays=spec.days)
    if isinstance(spec, Cron):
        fields = _parse(spec.expression)
        times = tuple(
            dt.time(hour, minute)
            for hour, minute in itertools.product(fields.hours, fields.minutes)
        )
        return WallClockTrigger(
            timezone,
            times,
            weekdays=fields.weekdays,
            days_of_month=fields.days_of_month,
            months=fields.months,
            either_day=fields.either_day,
        )
    raise TypeError(f"not a trigger spec: {spec!r}")


def _fire_times(trigger: LocalTimeTrigger, after: dt.datetime) -> Iterator[dt.datetime]:
    """Fire times strictly after ``after``, asked for the way APScheduler's scheduler asks:
    first with no previous run, then from each run to the next."""
    fire = trigger.get_next_fire_time(None, after)
    while fire is not None and fire <= after:
        fire = trigger.get_next_fire_time(fire, after)
    while fire is not None:
        yield fire
        fire = trigger.get_next_fire_time(fire, fire)


def _require_aware(**values: dt.datetime) -> None:
    for name, value in values.items():
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware, got {value!r}")


def next_runs(
    spec: TriggerSpec, timezone: zoneinfo.ZoneInfo, after: dt.datetime, count: int
) -> list[PlannedRun]:
    """The next ``count`` runs strictly after ``after``, from the trigger ``build_trigger``
    returns, each with a daylight-saving note where one applies."""
    _require_aware(after=after)
    if not 0 <= count <= MAX_RUNS:
        raise ValueError(f"count must be between 0 and {MAX_RUNS}, got {count}")
    trigger = build_trigger(spec, timezone)
    runs = []
    for fire in itertools.islice(_fire_times(trigger, after), count):
        at, local = fire.astimezone(UTC), fire.astimezone(timezone)
        runs.append(PlannedRun(at=at, local=local, note=trigger.note_for(fire)))
    return runs


def runs_between(
    spec: TriggerSpec,
    timezone: zoneinfo.ZoneInfo,
    start: dt.datetime,
    end: dt.datetime,
    *,
    limit: int = MAX_RUNS,
) -> list[dt.datetime]:
    """Fire times in (``start``, ``end``], aware UTC, oldest first: what a scheduler that was
    down from ``start`` to ``end`` missed. At most ``limit`` (the earliest); a list of exactly
    ``limit`` may mean more were cut off."""
    _require_aware(start=start, end=end)
    times = itertools.takewhile(
        lambda fire: fire <= end, _fire_times(build_trigger(spec, timezone), start)
    )
    return [fire.astimezone(UTC) for fire in itertools.islice(times, limit)]
