"""schedules.yaml: when things happen, written by comms staff, checked strictly.

Read as YAML 1.2 with positions (``9:30`` stays a time, ``no`` stays a word). Every
problem in the file is reported at once as ``schedules.yaml:LINE:COL: what is wrong —
what would be right``, with near misses suggested (``munday`` → ``monday``, an unknown
digest → the defined ones). Unknown keys are errors. A file that loads is a
``ScheduleSet`` of ``Schedule`` objects the scheduler and ``pipeline schedule`` share.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.actions import Action, parse_action
from pipeline.errors import ConfigError, Problem
from pipeline.settings import Settings, read_yaml_file
from pipeline.settings.base import check_name, check_timezone, shown
from pipeline.triggers import MAX_EVERY, AtTimes, Every, TriggerSpec, parse_cron
from pipeline.yamlfile import YamlDocument, unknown_key_hint

DEFAULT_GRACE = dt.timedelta(hours=1)
# Catch-up looks back a day at most (scheduler.LOOKBACK); a week covers any reading of
# "late" and keeps every date sum far from overflowing.
MAX_GRACE = dt.timedelta(days=7)
MAX_SCHEDULES = 500
TOP_KEYS = {
    "timezone": "the time zone of every schedule that does not name its own",
    "grace": "how late a run missed while the service was down may still be caught up",
    "schedules": "the list of schedules",
}
SCHEDULE_KEYS = {
    "name": "unique; shown in logs and history",
    "do": "cycle, ingest, feeds, post [CHANNEL…] or digest NAME",
    "every": "a number of minutes or hours, e.g. 15 minutes",
    "at": 'a time or list of times, e.g. "09:00"',
    "on": "a day, a list of days, weekdays, weekends or daily (with at)",
    "cron": 'a standard crontab line, e.g. "0 9 1 * *"',
    "timezone": "this schedule's time zone",
    "enabled": "false pauses the schedule",
    "grace": "this schedule's catch-up window",
}
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_GROUPS = {
    "daily": range(1, 8),
    "every day": range(1, 8),
    "weekdays": range(1, 6),
    "weekends": range(6, 8),
    **{day: (i,) for i, day in enumerate(DAYS, 1)},
    **{day[:3]: (i,) for i, day in enumerate(DAYS, 1)},
}
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_DURATION = re.compile(r"([0-9]+)\s*(minutes?|mins?|m|hours?|hrs?|h)", re.IGNORECASE)


@dataclass(frozen=True)
class Schedule:
    name: str
    action: Action
    trigger: TriggerSpec
    timezone: str
    enabled: bool = True
    grace: dt.timedelta = DEFAULT_GRACE
    line: int | None = None

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def describe(self) -> str:
        """When it runs, in words a comms officer would use."""
        trigger = self.trigger
        if isinstance(trigger, Every):
            minutes = int(trigger.interval.total_seconds() // 60)
            if minutes % 60 == 0:
                hours = minutes // 60
                return f"every {hours} hour{'s' if hours > 1 else ''}"
            return f"every {minutes} minute{'s' if minutes > 1 else ''}"
        if isinstance(trigger, AtTimes):
            times = ", ".join(t.strftime("%H:%M") for t in trigger.times)
            return f"{_days_in_words(trigger.days)} at {times}"
        return f"cron {trigger.expression}"


@dataclass(frozen=True)
class ScheduleSet:
    timezone: str
    schedules: tuple[Schedule, ...]

    def enabled(self) -> tuple[Schedule, ...]:
        return tuple(s for s in self.schedules if s.enabled)


def load_schedules(path: Path, settings: Settings) -> ScheduleSet:
    """Read and check schedules.yaml; ConfigError lists every problem in it."""
    doc = read_yaml_file(path)
    problems: list[Problem] = []
    data: dict[str, Any] = doc.data
    _unknown_keys(doc, (), data, TOP_KEYS, problems)
    timezone = _timezone(doc, ("timezone",), data.get("timezone"), settings.site.timezone, problems)
    grace = _duration(doc, ("grace",), data.get("grace", "1 hour"), MAX_GRACE, problems)
    grace = grace or DEFAULT_GRACE
    entries = data.get("schedules") or []
    if not isinstance(entries, list):
        problems.append(
            doc.problem(("schedules",), "`schedules` must be a list", "start each with `- name:`")
        )
        entries = []
    if len(entries) > MAX_SCHEDULES:
        problems.append(
            doc.problem(
                ("schedules", MAX_SCHEDULES),
                f"more than {MAX_SCHEDULES} schedules",
                f"at most {MAX_SCHEDULES}; combine schedules that do the same thing",
            )
        )
        entries = entries[:MAX_SCHEDULES]
    schedules, seen = [], {}
    for index, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str) and name in seen:
            problems.append(
                doc.problem(
                    ("schedules", index, "name"),
                    f"schedule name {name!r} is used twice",
                    f"the first is on line {seen[name]}; give each a name of its own",
                )
            )
        elif isinstance(name, str):
            seen[name] = doc.position(("schedules", index, "name"))[0]
        schedule = _schedule(doc, index, entry, timezone, grace, settings, problems)
        if schedule is not None:
            schedules.append(schedule)
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: (p.line or 0, p.column or 0)))
    return ScheduleSet(timezone, tuple(schedules))


def _schedule(
    doc: YamlDocument,
    index: int,
    entry: Any,
    timezone: str,
    grace: dt.timedelta,
    settings: Settings,
    problems: list[Problem],
) -> Schedule | None:
    here = ("schedules", index)
    if not isinstance(entry, dict):
        problems.append(
            doc.problem(here, "each schedule must be a mapping", "start it with `- name: …`")
        )
        return None
    before = len(problems)
    _unknown_keys(doc, here, entry, SCHEDULE_KEYS, problems)
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        problems.append(doc.problem(here, "a schedule needs a `name`", "add `name: check-news`"))
    else:
        try:
            check_name(name)
        except ValueError as exc:
            problems.append(doc.problem((*here, "name"), f"`name` {name!r}: {exc}"))
    action = None
    if "do" not in entry:
        problems.append(doc.problem(here, "a schedule needs `do`", "e.g. `do: cycle`"))
    else:
        try:
            action = parse_action(str(entry["do"]), settings.digests, settings.channels)
        except ValueError as exc:
            message, hint = exc.args
            problems.append(doc.problem((*here, "do"), f"`do`: {message}", hint))
    trigger = _trigger(doc, here, entry, problems)
    zone = _timezone(doc, (*here, "timezone"), entry.get("timezone"), timezone, problems)
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(
            doc.problem((*here, "enabled"), f"`enabled` is {shown(enabled)}", "write true or false")
        )
    own_grace = _duration(doc, (*here, "grace"), entry.get("grace"), MAX_GRACE, problems)
    if len(problems) > before or action is None or trigger is None:
        return None
    line, _ = doc.position(here)
    return Schedule(str(name), action, trigger, zone, bool(enabled), own_grace or grace, line)


def _trigger(
    doc: YamlDocument, here: tuple, entry: dict, problems: list[Problem]
) -> TriggerSpec | None:
    kinds = [k for k in ("every", "at", "cron") if k in entry]
    if not kinds:
        hint = 'add `every: 15 minutes`, `at: "09:00"` (with `on:`), or `cron:`'
        problems.append(doc.problem(here, "a schedule needs a time", hint))
        return None
    if len(kinds) > 1:
        problems.append(
            doc.problem(
                (*here, kinds[1]),
                f"`{kinds[0]}` and `{kinds[1]}` cannot be combined",
                "give each timing its own schedule",
            )
        )
        return None
    if "on" in entry and kinds[0] != "at":
        problems.append(doc.problem((*here, "on"), "`on` needs `at`", 'add `at: "09:00"`'))
        return None
    kind = kinds[0]
    if kind == "every":
        interval = _duration(doc, (*here, "every"), entry["every"], MAX_EVERY, problems)
        return Every(interval) if interval else None
    if kind == "cron":
        try:
            if not isinstance(entry["cron"], str) or len(entry["cron"]) > 200:
                raise ValueError(f"{shown(entry['cron'])} is not a crontab line")
            return parse_cron(entry["cron"])
        except ValueError as exc:
            message, _, hint = str(exc).partition(" — ")
            hint = hint or 'five fields: minute hour day month weekday, e.g. "0 9 * * 1"'
            problems.append(doc.problem((*here, "cron"), f"`cron`: {message}", hint))
            return None
    times = _times(doc, (*here, "at"), entry["at"], problems)
    days = _days(doc, (*here, "on"), entry.get("on", "daily"), problems)
    return AtTimes(times, days) if times and days else None


def _times(
    doc: YamlDocument, path: tuple, value: Any, problems: list[Problem]
) -> tuple[dt.time, ...]:
    values = value if isinstance(value, list) else [value]
    found = []
    for i, item in enumerate(values):
        where = (*path, i) if isinstance(value, list) else path
        match = _TIME.match(item.strip()) if isinstance(item, str) else None
        if match is None:
            hint = 'write the time as "HH:MM" on the 24-hour clock, e.g. "09:30" or "16:00"'
            problems.append(doc.problem(where, f"`at`: {shown(item)} is not a time of day", hint))
            continue
        found.append(dt.time(int(match.group(1)), int(match.group(2))))
    return tuple(sorted(set(found)))


def _days(doc: YamlDocument, path: tuple, value: Any, problems: list[Problem]) -> frozenset[int]:
    values = value if isinstance(value, list) else [value]
    days: set[int] = set()
    for i, item in enumerate(values):
        where = (*path, i) if isinstance(value, list) else path
        word = str(item).strip().lower() if isinstance(item, str) else ""
        if word in DAY_GROUPS:
            days.update(DAY_GROUPS[word])
            continue
        names = [*DAYS, "daily", "weekdays", "weekends"]
        close = difflib.get_close_matches(word, names, n=3) if len(word) < 20 else []
        # "munday" is as close to sunday as to monday; people keep the first letter.
        close.sort(key=lambda day: day[:1] != word[:1])
        hint = (
            f"did you mean `{close[0]}`?"
            if close
            else "use a day (monday…sunday), weekdays, weekends or daily"
        )
        problems.append(doc.problem(where, f"`on`: {shown(item)} is not a day", hint))
    return frozenset(days)


def _duration(
    doc: YamlDocument, path: tuple, value: Any, longest: dt.timedelta, problems: list[Problem]
) -> dt.timedelta | None:
    if value is None:
        return None
    match = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    amount = int(match.group(1)) if match and len(match.group(1)) < 10 else None
    if match is None or amount == 0:
        hint = "write a number and a unit, e.g. 15 minutes or 2 hours"
        problems.append(doc.problem(path, f"`{path[-1]}`: {shown(value)} is not a duration", hint))
        return None
    hours = match.group(2).lower().startswith("h")
    if amount is None or amount * (60 if hours else 1) > longest.total_seconds() // 60:
        most = f"{int(longest.total_seconds() // 3600)} hours ({longest.days} days)"
        problems.append(
            doc.problem(path, f"`{path[-1]}`: {shown(value)} is too long", f"at most {most}")
        )
        return None
    return dt.timedelta(hours=amount) if hours else dt.timedelta(minutes=amount)


def _timezone(
    doc: YamlDocument, path: tuple, value: Any, default: str, problems: list[Problem]
) -> str:
    if value is None:
        return default
    try:
        if not isinstance(value, str):
            raise ValueError(f"{shown(value)} is not a time zone name; write e.g. Europe/Berlin")
        return check_timezone(value)
    except ValueError as exc:
        problems.append(doc.problem(path, f"`timezone`: {exc}"))
        return default


def _unknown_keys(
    doc: YamlDocument, path: tuple, data: dict, allowed: dict[str, str], problems: list[Problem]
) -> None:
    for key in data:
        if key in allowed:
            continue
        hint = unknown_key_hint(str(key), list(allowed))
        line, col = doc.position((*path, key), key=True)
        problems.append(Problem(doc.file, line, col, f"unknown key `{str(key)[:60]}`", hint))


def _days_in_words(days: frozenset[int]) -> str:
    if len(days) == 7:
        return "daily"
    if days == frozenset(range(1, 6)):
        return "weekdays"
    if days == frozenset(range(6, 8)):
        return "weekends"
    return ", ".join(DAYS[d - 1].title() + "s" for d in sorted(days))
