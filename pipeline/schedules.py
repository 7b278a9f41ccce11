"""schedules.yaml: when things happen, written by comms staff, checked strictly.

Read as YAML 1.2 with positions (``9:30`` stays a time, ``no`` stays a word). Every
problem in the file is reported at once as ``schedules.yaml:LINE:COL: what is wrong —
what would be right``, with near misses suggested (``munday`` → ``monday``, ``time:`` →
``at:``, ``on: monday, thursday`` → ``on: [monday, thursday]``, an unknown digest → the
defined ones). Unknown keys are errors. A file that loads is a ``ScheduleSet`` of
``Schedule`` objects the scheduler and ``pipeline schedule`` share.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.actions import Action, parse_action
from pipeline.errors import ConfigError, Problem
from pipeline.settings import Settings, read_yaml_file
from pipeline.settings.base import check_name, check_timezone, shown
from pipeline.suggest import did_you_mean, nearest, unknown_key_hint
from pipeline.triggers import MAX_EVERY, AtTimes, Every, TriggerSpec, parse_cron
from pipeline.yamlfile import YamlDocument

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
    "every": "a number of minutes, hours or days, e.g. 15 minutes",
    "at": 'a time or list of times, e.g. "09:00"',
    "on": "a day, a list of days, weekdays, weekends or daily (with at)",
    "cron": 'a standard crontab line, e.g. "0 9 1 * *"',
    "timezone": "this schedule's time zone",
    "enabled": "false pauses the schedule",
    "grace": "this schedule's catch-up window",
}
# What else people write for a key (the hint then names the key itself).
TOP_SYNONYMS = {
    **dict.fromkeys(("tz", "zone", "time_zone"), "timezone"),
    **dict.fromkeys(("schedule", "jobs", "tasks"), "schedules"),
}
SCHEDULE_SYNONYMS = {
    **dict.fromkeys(("time", "times", "when", "hour", "clock"), "at"),
    **dict.fromkeys(("day", "days", "weekday", "weekdays"), "on"),
    **dict.fromkeys(("interval", "frequency", "period", "repeat", "each"), "every"),
    **dict.fromkeys(("action", "run", "command", "task", "job", "does"), "do"),
    **dict.fromkeys(("id", "title", "label"), "name"),
    **dict.fromkeys(("crontab",), "cron"),
    **dict.fromkeys(("tz", "zone", "time_zone"), "timezone"),
    **dict.fromkeys(("enable", "active", "disabled", "paused", "pause"), "enabled"),
    **dict.fromkeys(("late", "catch_up", "grace_period", "misfire"), "grace"),
}
TIMINGS = ("every", "at", "cron")
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
_LIST = re.compile(r"\s*(?:,|\band\b)\s*")  # "monday, thursday", "09:00 and 16:00"
# A duration is a whole number and one unit; anything else gets a hint naming the units.
_AMOUNT = re.compile(r"\s*([0-9]+(?:[.,][0-9]+)?)\s*([^\W\d_]+)\s*")
UNIT_MINUTES = {
    **dict.fromkeys(("minute", "minutes", "min", "mins", "m"), 1),
    **dict.fromkeys(("hour", "hours", "hr", "hrs", "h"), 60),
    **dict.fromkeys(("day", "days", "d"), 24 * 60),
}
_WEEKS = ("week", "weeks", "wk", "wks", "w")
_UNITS = "write a whole number and a unit (minutes, hours or days), e.g. 15 minutes or 2 hours"
_BOOLEAN_WORDS = {"true": "true", "false": "false", "yes": "true", "no": "false"}
_BOOLEAN_WORDS |= {"on": "true", "off": "false"}


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
            return "every " + _interval_in_words(trigger.interval)
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
    _unknown_keys(doc, (), data, TOP_KEYS, TOP_SYNONYMS, problems)
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
    schedules: list[Schedule] = []
    seen: dict[str, int | None] = {}
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
    # A key taken for another (`time:` for `at:`) is one mistake: its hint says what to
    # write, so "a schedule needs a time" would only repeat it.
    meant = _unknown_keys(doc, here, entry, SCHEDULE_KEYS, SCHEDULE_SYNONYMS, problems)
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        if "name" not in meant:
            problems.append(
                doc.problem(here, "a schedule needs a `name`", "add `name: check-news`")
            )
    else:
        try:
            check_name(name)
        except ValueError as exc:
            problems.append(doc.problem((*here, "name"), f"`name` {name!r}: {exc}"))
    action = None
    if "do" not in entry:
        if "do" not in meant:
            problems.append(doc.problem(here, "a schedule needs `do`", "e.g. `do: cycle`"))
    else:
        try:
            action = parse_action(str(entry["do"]), settings.digests, settings.channels)
        except ValueError as exc:
            message, hint = exc.args
            problems.append(doc.problem((*here, "do"), f"`do`: {message}", hint))
    trigger = _trigger(doc, here, entry, problems, quiet=bool(meant & set(TIMINGS)))
    zone = _timezone(doc, (*here, "timezone"), entry.get("timezone"), timezone, problems)
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(_not_boolean(doc, (*here, "enabled"), enabled))
    own_grace = _duration(doc, (*here, "grace"), entry.get("grace"), MAX_GRACE, problems)
    if len(problems) > before or action is None or trigger is None:
        return None
    line, _ = doc.position(here)
    return Schedule(str(name), action, trigger, zone, bool(enabled), own_grace or grace, line)


def _not_boolean(doc: YamlDocument, path: tuple, value: Any) -> Problem:
    key = path[-1]
    word = value.strip().lower() if isinstance(value, str) else None
    if word in ("true", "false"):  # only quotes keep true/false text in YAML 1.2
        return doc.problem(
            path, f"`{key}` is the text {shown(value)}", f"drop the quotes: `{key}: {word}`"
        )
    if word in _BOOLEAN_WORDS:
        meaning = _BOOLEAN_WORDS[word]
        return doc.problem(
            path,
            f"`{key}` is {shown(value)}",
            f"write `{key}: {meaning}`; `{word}` is read as text, not as {meaning}",
        )
    return doc.problem(path, f"`{key}` is {shown(value)}", "write true or false")


def _trigger(
    doc: YamlDocument, here: tuple, entry: dict, problems: list[Problem], *, quiet: bool = False
) -> TriggerSpec | None:
    kinds = [k for k in TIMINGS if k in entry]
    if not kinds:
        if not quiet:
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
            parts = _parts(item) if where == path else []
            if len(parts) > 1 and all(_TIME.match(part) for part in parts):
                listed = ", ".join(f'"{int(p[:-3]):02d}:{p[-2:]}"' for p in parts)
                hint = f"for several times write a list: `at: [{listed}]`"
            problems.append(doc.problem(where, f"`at`: {shown(item)} is not a time of day", hint))
            continue
        found.append(dt.time(int(match.group(1)), int(match.group(2))))
    return tuple(sorted(set(found)))


def _days(doc: YamlDocument, path: tuple, value: Any, problems: list[Problem]) -> frozenset[int]:
    values = value if isinstance(value, list) else [value]
    days: set[int] = set()
    names = [*DAYS, "daily", "weekdays", "weekends"]
    for i, item in enumerate(values):
        where = (*path, i) if isinstance(value, list) else path
        word = str(item).strip().lower() if isinstance(item, str) else ""
        if word in DAY_GROUPS:
            days.update(DAY_GROUPS[word])
            continue
        hint = "use a day (monday…sunday), weekdays, weekends or daily"
        parts = [p if p in DAY_GROUPS else nearest(p, names) for p in _parts(word)]
        if where == path and len(parts) > 1 and all(parts):
            hint = f"for several days write a list: `on: [{', '.join(map(str, parts))}]`"
        else:
            hint = did_you_mean(word, names, hint)
        problems.append(doc.problem(where, f"`on`: {shown(item)} is not a day", hint))
    return frozenset(days)


def _parts(value: Any) -> list[str]:
    """The items of a list written as text ("monday, thursday"), lower-cased."""
    if not isinstance(value, str) or len(value) > 200:
        return []
    return [part for part in _LIST.split(value.strip().lower()) if part]


def _duration(
    doc: YamlDocument, path: tuple, value: Any, longest: dt.timedelta, problems: list[Problem]
) -> dt.timedelta | None:
    if value is None:
        return None
    key = path[-1]
    minutes, hint = _minutes(value)
    if minutes is None:
        problems.append(doc.problem(path, f"`{key}`: {shown(value)} is not a duration", hint))
        return None
    if minutes > longest.total_seconds() // 60:
        most = f"{int(longest.total_seconds() // 3600)} hours ({longest.days} days)"
        problems.append(
            doc.problem(path, f"`{key}`: {shown(value)} is too long", f"at most {most}")
        )
        return None
    return dt.timedelta(minutes=minutes)


def _minutes(value: Any) -> tuple[int | None, str]:
    """A duration as written (``15 minutes``, ``2 hours``, ``1 day``) in minutes, or None
    and a hint that says what to write instead."""
    if isinstance(value, int) and not isinstance(value, bool):
        return None, f"add a unit: `{value} minutes`, `{value} hours` or `{value} days`"
    text = value if isinstance(value, str) and len(value) <= 200 else ""
    pairs = [m.groups() for m in _AMOUNT.finditer(text)]
    if not pairs or "".join(m.group() for m in _AMOUNT.finditer(text)) != text:
        return None, _UNITS
    sizes = [UNIT_MINUTES.get(unit.lower()) for _, unit in pairs]
    amounts = [float(number.replace(",", ".")) for number, _ in pairs]
    if len(pairs) == 1 and sizes[0] is not None and amounts[0].is_integer():
        number = pairs[0][0].lstrip("0")
        if not number:
            return None, "it must be at least 1 minute"
        # A number too long to be useful is "too long" (infinity), never int()'s own error.
        return (int(number) * sizes[0] if len(number) < 10 else 10**12), ""
    unit = pairs[0][1].lower()
    if len(pairs) == 1 and unit in _WEEKS and amounts[0].is_integer():
        return None, f"weeks are not a unit here: write `{int(amounts[0]) * 7} days`"
    if len(pairs) == 1 and sizes[0] is None:
        not_a_unit = f"'{unit[:20]}' is not a unit: use minutes, hours or days"
        number = pairs[0][0]
        return None, did_you_mean(
            unit, UNIT_MINUTES, not_a_unit, written=lambda near: f"`{number} {near}`"
        )
    if all(size is not None for size in sizes):  # "1.5 hours", "1 hour 30 minutes"
        total = sum((a * size for a, size in zip(amounts, sizes, strict=True) if size), 0.0)
        if total.is_integer() and total >= 1:
            better = _interval_in_words(dt.timedelta(minutes=total))
            return None, f"write it as one whole number and a unit: `{better}`"
    return None, _UNITS


def _interval_in_words(interval: dt.timedelta) -> str:
    minutes = int(interval.total_seconds() // 60)
    for unit, size in (("day", 24 * 60), ("hour", 60)):
        if minutes % size == 0:
            return f"{minutes // size} {unit}{'s' if minutes > size else ''}"
    return f"{minutes} minute{'s' if minutes > 1 else ''}"


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
    doc: YamlDocument,
    path: tuple,
    data: dict,
    allowed: dict[str, str],
    synonyms: dict[str, str],
    problems: list[Problem],
) -> set[str]:
    """A located problem for each key not in ``allowed``; returns the keys suggested."""
    meant = set()
    for key in data:
        if key in allowed:
            continue
        near = nearest(str(key), allowed, synonyms=synonyms)
        if near is not None:
            meant.add(near)
        hint = unknown_key_hint(str(key), allowed, synonyms=synonyms, meanings=allowed)
        line, col = doc.position((*path, key), key=True)
        problems.append(Problem(doc.file, line, col, f"unknown key `{str(key)[:60]}`", hint))
    return meant


def _days_in_words(days: frozenset[int]) -> str:
    if len(days) == 7:
        return "daily"
    if days == frozenset(range(1, 6)):
        return "weekdays"
    if days == frozenset(range(6, 8)):
        return "weekends"
    return ", ".join(DAYS[d - 1].title() + "s" for d in sorted(days))
