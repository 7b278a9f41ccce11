"""Schedule triggers: behaviour the mutation run (bench/mutation.py) found unguarded.

Crontab's day-of-month OR day-of-week, a start exactly on a run, the messages staff read,
the bounds of ``next_runs``, times with seconds, the end of the calendar, and a server
whose own time zone is not UTC."""

from __future__ import annotations

import datetime as dt
import os
import time
from zoneinfo import ZoneInfo

import pytest

from pipeline.triggers import (
    MAX_RUNS,
    AtTimes,
    Cron,
    Every,
    build_trigger,
    next_runs,
    parse_cron,
    runs_between,
)

UTC = dt.UTC
NEW_YORK = ZoneInfo("America/New_York")
KATHMANDU = ZoneInfo("Asia/Kathmandu")
UTC_ZONE = ZoneInfo("UTC")
EVERY_DAY = frozenset(range(1, 8))


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def shown(spec, tz, after, count) -> list[str]:
    return [run.local.strftime("%a %d %b %H:%M") for run in next_runs(spec, tz, after, count)]


# --- crontab: both day fields restricted are ORed, as in Vixie cron --------------------


def test_a_day_of_month_that_never_comes_still_runs_on_the_weekdays_given_with_it():
    # No 30 February, but Mondays in February: "0 9 30 feb mon" runs on those, where
    # "0 9 30 feb *" would never run at all and is refused.
    runs = shown(Cron("0 9 30 feb mon"), UTC_ZONE, utc(2027, 1, 1), 5)
    assert runs == [
        "Mon 01 Feb 09:00",
        "Mon 08 Feb 09:00",
        "Mon 15 Feb 09:00",
        "Mon 22 Feb 09:00",
        "Mon 07 Feb 09:00",  # 2028: only Mondays of February, nothing in March
    ]
    with pytest.raises(ValueError, match="never occurs in month 'feb'"):
        parse_cron("0 9 30 feb *")


def test_dates_and_weekend_days_together_run_on_either():
    # 1 and 15 May 2026 are a Friday and a Friday; every Saturday and Sunday as well.
    runs = shown(Cron("0 9 1,15 may sat,sun"), UTC_ZONE, utc(2026, 4, 30), 7)
    assert runs == [
        "Fri 01 May 09:00",
        "Sat 02 May 09:00",
        "Sun 03 May 09:00",
        "Sat 09 May 09:00",
        "Sun 10 May 09:00",
        "Fri 15 May 09:00",
        "Sat 16 May 09:00",
    ]


def test_a_star_month_with_both_day_fields_restricted_still_ors_them():
    both = next_runs(Cron("0 6 13 * fri"), UTC_ZONE, utc(2026, 1, 1), 60)
    assert {r.local.day == 13 or r.local.isoweekday() == 5 for r in both} == {True}
    assert any(r.local.day == 13 and r.local.isoweekday() != 5 for r in both)
    assert any(r.local.day != 13 for r in both)


# --- what staff read when a schedule is wrong ------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        (
            "0 9 * *",
            "cron '0 9 * *' has 4 field(s) — use exactly 5: minute hour day-of-month month "
            "day-of-week, e.g. '0 9 * * 1' (Mondays at 09:00)",
        ),
        ("*-5 * * * *", "minute '*-5' is not valid — '*' cannot start a range"),
        (
            "0 9 1,,15 * *",
            "day of month has an empty item — use numbers 1-31, ranges like 1-5, steps like "
            "*/15 or 1-5/2, separated by commas",
        ),
        ("1000 * * * *", "minute '1000' is out of range — use 0-59"),
        ("*/x * * * *", "minute step '/x' is not valid — use a whole number from 1"),
    ],
)
def test_cron_messages_in_full(expression, message):
    with pytest.raises(ValueError) as raised:
        parse_cron(expression)
    assert str(raised.value) == message


def test_leading_zeros_do_not_make_a_number_too_long():
    assert shown(Cron("0000 0009 * * *"), UTC_ZONE, utc(2026, 5, 1), 1) == ["Fri 01 May 09:00"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (AtTimes(times=(), days=EVERY_DAY), 'at: give at least one time, e.g. at: "09:00"'),
        (
            AtTimes(times=(dt.time(9),), days=frozenset({8})),
            "on: days must be ISO weekdays 1-7 (Monday = 1), got frozenset({8})",
        ),
        (
            AtTimes(times=(dt.time(9, tzinfo=UTC),), days=EVERY_DAY),
            "at: times are wall-clock times; give the zone as timezone:",
        ),
        (Every(dt.timedelta(0)), "every: the interval must be positive, not 0:00:00"),
        (Every(dt.timedelta(days=400)), "every: the interval must be at most 366 days"),
    ],
)
def test_impossible_specs_say_what_to_write(spec, message):
    with pytest.raises(ValueError) as raised:
        build_trigger(spec, UTC_ZONE)
    assert str(raised.value) == message


def test_something_that_is_not_a_spec_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match=r"^not a trigger spec: '0 9 \* \* \*'$"):
        build_trigger("0 9 * * *", UTC_ZONE)


# --- how many runs, and from when --------------------------------------------------------


def test_next_runs_gives_zero_up_to_max_runs_and_refuses_more():
    spec = Cron("*/5 * * * *")
    assert next_runs(spec, UTC_ZONE, utc(2026, 1, 1), 0) == []
    assert len(next_runs(spec, UTC_ZONE, utc(2026, 1, 1), MAX_RUNS)) == MAX_RUNS
    for count in (-1, MAX_RUNS + 1):
        with pytest.raises(ValueError) as raised:
            next_runs(spec, UTC_ZONE, utc(2026, 1, 1), count)
        assert str(raised.value) == f"count must be between 0 and {MAX_RUNS}, got {count}"


def test_runs_between_refuses_a_naive_start_as_well_as_a_naive_end():
    with pytest.raises(ValueError, match="start must be timezone-aware"):
        runs_between(Cron("0 9 * * *"), UTC_ZONE, dt.datetime(2026, 1, 1), utc(2026, 2, 1))


def test_a_scheduler_starting_exactly_at_a_run_time_runs_it_now():
    # APScheduler asks for the first fire time with `now`: a run due at that very instant
    # is not skipped to the next day. After a run, the next one is strictly later.
    trigger = build_trigger(Cron("0 9 * * *"), NEW_YORK)
    nine = dt.datetime(2026, 5, 4, 9, tzinfo=NEW_YORK)
    assert trigger.get_next_fire_time(None, nine) == nine
    assert trigger.get_next_fire_time(nine, nine) == nine + dt.timedelta(days=1)


def test_a_schedule_has_no_run_after_the_last_day_of_the_calendar():
    # The trigger says "no further run" (None) so APScheduler retires the job: no crash.
    last = utc(9999, 12, 31, 10)
    assert next_runs(AtTimes((dt.time(9),), EVERY_DAY), UTC_ZONE, last, 3) == []
    assert build_trigger(Cron("0 9 * * *"), UTC_ZONE).get_next_fire_time(None, last) is None


# --- times with seconds ----------------------------------------------------------------


def test_times_with_seconds_keep_them_in_notes_and_in_the_job_list():
    spec = AtTimes(times=(dt.time(17, 30, 15), dt.time(2, 30)), days=EVERY_DAY)
    (moved,) = [
        r for r in next_runs(spec, NEW_YORK, dt.datetime(2026, 3, 8, tzinfo=NEW_YORK), 2) if r.note
    ]
    assert moved.note == (
        "moved: 02:30 does not exist on Sun 8 Mar (clocks go forward); runs at 03:30"
    )
    seconds = AtTimes(times=(dt.time(2, 30, 15),), days=EVERY_DAY)
    (run,) = next_runs(seconds, NEW_YORK, dt.datetime(2026, 3, 8, tzinfo=NEW_YORK), 1)
    assert run.note == (
        "moved: 02:30:15 does not exist on Sun 8 Mar (clocks go forward); runs at 03:30:15"
    )
    trigger = build_trigger(spec, KATHMANDU)  # what APScheduler's log shows for the job
    assert str(trigger) == "wallclock[02:30, 17:30:15 Asia/Kathmandu]"
    assert repr(trigger) == "<WallClockTrigger wallclock[02:30, 17:30:15 Asia/Kathmandu]>"


# --- the server's own time zone changes nothing ----------------------------------------


@pytest.fixture
def server_in_los_angeles():
    """The process's local zone (TZ) set to Los Angeles, as on a server not kept in UTC."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/Los_Angeles"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def test_runs_and_notes_do_not_depend_on_the_servers_time_zone(server_in_los_angeles):
    assert dt.datetime(2026, 1, 1, tzinfo=UTC).astimezone().utcoffset() == dt.timedelta(hours=-8)
    # a restart just after New York's clocks went forward still runs the moved 02:30
    after = dt.datetime(2026, 3, 8, 3, 10, tzinfo=NEW_YORK)
    (run,) = next_runs(AtTimes((dt.time(2, 30),), EVERY_DAY), NEW_YORK, after, 1)
    assert run.at == utc(2026, 3, 8, 7, 30)
    assert run.note == "moved: 02:30 does not exist on Sun 8 Mar (clocks go forward); runs at 03:30"
    # what the scheduler is given is in the schedule's zone, what it records in UTC
    trigger = build_trigger(Cron("0 9 * * *"), NEW_YORK)
    fire = trigger.get_next_fire_time(None, utc(2026, 3, 9))
    assert fire.isoformat() == "2026-03-09T09:00:00-04:00"
    missed = runs_between(Cron("0 9 * * *"), NEW_YORK, utc(2026, 3, 9), utc(2026, 3, 11))
    assert [m.isoformat() for m in missed] == [
        "2026-03-09T13:00:00+00:00",
        "2026-03-10T13:00:00+00:00",
    ]


# --- what the second mutation run found (after `every` became a wall-clock trigger) -----


def test_a_step_has_at_most_four_digits():
    # 1000 is a step no field can take twice, but it is a number: the range's first value.
    assert shown(Cron("*/1000 9 * * *"), UTC_ZONE, utc(2026, 5, 1), 1) == ["Fri 01 May 09:00"]
    with pytest.raises(ValueError) as raised:
        parse_cron("*/10000 9 * * *")
    assert str(raised.value) == "minute step '/10000' is not valid — use a whole number from 1"


class _Unknown(dt.tzinfo):
    """A time zone that does not know its offset: the datetime is aware in name only."""

    def utcoffset(self, value: dt.datetime | None) -> None:
        return None

    def dst(self, value: dt.datetime | None) -> None:
        return None

    def tzname(self, value: dt.datetime | None) -> str:
        return "?"


def test_a_time_zone_without_an_offset_counts_as_naive():
    after = dt.datetime(2026, 1, 1, tzinfo=_Unknown())
    with pytest.raises(ValueError, match="after must be timezone-aware"):
        next_runs(Cron("0 9 * * *"), UTC_ZONE, after, 1)
