"""What ``pipeline check`` warns about in schedules that load: mistakes that are not
errors, because the file means something, but probably not what was meant.

* A digest that no enabled schedule sends: it goes out only when someone runs
  ``pipeline digest send``.
* Two enabled schedules that do the same thing at the same moment: the second run finds
  nothing left to do (a digest edition is named by its scheduled time, so it is the same
  edition; a cycle waits for the first one's locks and then repeats it).

Each warning is one line, located in schedules.yaml where that helps.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator

from pipeline.actions import Action
from pipeline.schedules import Schedule, ScheduleSet
from pipeline.settings import Settings
from pipeline.triggers import build_trigger, runs_between

# How far ahead, and over how many runs of each schedule, a shared moment is looked for:
# far enough for a leap day (every four years), few enough runs to take milliseconds.
HORIZON = dt.timedelta(days=4 * 366 + 1)
RUNS_COMPARED = 500
MAX_PAIRS = 200  # a file with hundreds of identical actions gets the first warnings only


def schedule_warnings(
    settings: Settings, schedules: ScheduleSet, file: str, now: dt.datetime
) -> list[str]:
    """Every warning about ``schedules`` (read from ``file``), looking ahead from ``now``."""
    return [
        *_unsent_digests(settings, schedules, file),
        *_same_moment(settings, schedules, file, now),
    ]


def _unsent_digests(settings: Settings, schedules: ScheduleSet, file: str) -> Iterator[str]:
    sending = {s.action.args[0]: s for s in schedules.schedules if s.action.kind == "digest"}
    sent = {s.action.args[0] for s in schedules.enabled() if s.action.kind == "digest"}
    for name in settings.digests:
        if name in sent:
            continue
        paused = sending.get(name)
        why = f" (`{paused.name}` is paused)" if paused is not None else ""
        yield (
            f"digest {name}: no schedule in {file} sends it{why} — add one with "
            f"`do: digest {name}`, or send it by hand with `pipeline digest send {name}`"
        )


def _same_moment(
    settings: Settings, schedules: ScheduleSet, file: str, now: dt.datetime
) -> Iterator[str]:
    groups: dict[tuple[str, frozenset[str]], list[Schedule]] = {}
    for schedule in schedules.enabled():
        groups.setdefault(_what(schedule.action, settings), []).append(schedule)
    pairs = (pair for group in groups.values() for pair in itertools.combinations(group, 2))
    found = []
    for first, second in itertools.islice(pairs, MAX_PAIRS):
        shared = _first_shared_run(first, second, now)
        if shared is not None:
            found.append((second.line or 0, first.line or 0, first, second, shared))
    for _, _, first, second, shared in sorted(found, key=lambda item: item[:2]):
        local = shared.astimezone(first.zone)
        yield (
            f"{file}:{second.line}: `{second.name}` and `{first.name}` (line {first.line}) both "
            f"do `{first.action}` at the same moment, first at {local:%Y-%m-%d %H:%M} "
            f"({first.timezone}) — one is enough: remove one or change its time"
        )


def _what(action: Action, settings: Settings) -> tuple[str, frozenset[str]]:
    """What an action does, whichever way it is written (`post` is every channel)."""
    if action.kind == "post" and not action.args:
        return "post", frozenset(settings.channels)
    return action.kind, frozenset(action.args)


def _first_shared_run(a: Schedule, b: Schedule, now: dt.datetime) -> dt.datetime | None:
    """The earliest moment within ``HORIZON`` both run at, among the first runs of each
    (each schedule's runs are checked against the other's trigger, so a dense schedule
    and a sparse one are compared over the sparse one's whole horizon)."""
    shared, end = None, now + HORIZON
    for mine, other in ((a, b), (b, a)):
        trigger = build_trigger(other.trigger, other.zone)
        runs = runs_between(mine.trigger, mine.zone, now, end, limit=RUNS_COMPARED)
        # A trigger asked afresh at an instant counts that instant if it fires then.
        found = next((t for t in runs if trigger.get_next_fire_time(None, t) == t), None)
        if found is not None:  # the other way round, only earlier moments are of interest
            shared = end = found
    return shared
