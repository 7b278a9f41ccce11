"""Schedule triggers: crontab semantics, ``at`` + ``on``, ``every``, time zones, and what
happens to runs when daylight saving skips or repeats an hour."""

from __future__ import annotations

import datetime as dt
import itertools
import pickle
from collections import Counter
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.triggers import (
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
LONDON = ZoneInfo("Europe/London")
KATHMANDU = ZoneInfo("Asia/Kathmandu")
UTC_ZONE = ZoneInfo("UTC")
EVERY_DAY = frozenset(range(1, 8))


def daily(*times: dt.time) -> AtTimes:
    return AtTimes(times=times, days=EVERY_DAY)


def local(tz: ZoneInfo, *args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=tz)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def local_times(spec, tz, after, count) -> list[str]:
    return [run.local.strftime("%a %d %b %H:%M") for run in next_runs(spec, tz, after, count)]


# --- crontab ---------------------------------------------------------------------------


def test_cron_1_is_monday_not_tuesday():
    # APScheduler's from_crontab counts Monday as 0, so "1" would fire on Tuesdays.
    runs = next_runs(Cron("0 9 * * 1"), LONDON, local(LONDON, 2026, 3, 1), 3)
    assert [r.local.strftime("%a %d %H:%M") for r in runs] == [
        "Mon 02 09:00",
        "Mon 09 09:00",
        "Mon 16 09:00",
    ]


@pytest.mark.parametrize("sunday", ["0", "7", "sun", "SUN", "Sun"])
def test_cron_0_7_and_sun_are_all_sunday(sunday):
    runs = local_times(Cron(f"0 9 * * {sunday}"), LONDON, local(LONDON, 2026, 3, 2), 2)
    assert runs == ["Sun 08 Mar 09:00", "Sun 15 Mar 09:00"]


def test_cron_day_range_ending_on_sunday():
    runs = local_times(Cron("0 9 * * fri-sun"), LONDON, local(LONDON, 2026, 3, 2), 4)
    assert runs == ["Fri 06 Mar 09:00", "Sat 07 Mar 09:00", "Sun 08 Mar 09:00", "Fri 13 Mar 09:00"]
    assert local_times(Cron("0 9 * * 5-7"), LONDON, local(LONDON, 2026, 3, 2), 4) == runs


def test_cron_month_and_day_names_mean_the_numbers():
    after = local(LONDON, 2026, 2, 1)
    by_name = local_times(Cron("30 6 * JAN,jul mon-fri"), LONDON, after, 3)
    assert by_name == ["Wed 01 Jul 06:30", "Thu 02 Jul 06:30", "Fri 03 Jul 06:30"]
    assert local_times(Cron("30 6 * 1,7 1-5"), LONDON, after, 3) == by_name


def test_cron_steps_ranges_and_lists():
    after = local(KATHMANDU, 2026, 5, 1)
    assert local_times(Cron("*/20 9-10 * * *"), KATHMANDU, after, 7) == [
        "Fri 01 May 09:00",
        "Fri 01 May 09:20",
        "Fri 01 May 09:40",
        "Fri 01 May 10:00",
        "Fri 01 May 10:20",
        "Fri 01 May 10:40",
        "Sat 02 May 09:00",
    ]
    assert local_times(Cron("0 8-18/5 * * *"), KATHMANDU, after, 4) == [
        "Fri 01 May 08:00",
        "Fri 01 May 13:00",
        "Fri 01 May 18:00",
        "Sat 02 May 08:00",
    ]
    assert local_times(Cron("15 7,19 1,15 * *"), KATHMANDU, after, 3) == [
        "Fri 01 May 07:15",
        "Fri 01 May 19:15",
        "Fri 15 May 07:15",
    ]


def test_cron_day_of_month_or_day_of_week_when_both_given():
    # Crontab runs on the 13th OR on Fridays; APScheduler alone would need both at once.
    # 13 Apr 2026 is a Monday.
    runs = local_times(Cron("0 9 13 * 5"), UTC_ZONE, local(UTC_ZONE, 2026, 4, 1), 5)
    assert runs == [
        "Fri 03 Apr 09:00",
        "Fri 10 Apr 09:00",
        "Mon 13 Apr 09:00",
        "Fri 17 Apr 09:00",
        "Fri 24 Apr 09:00",
    ]


def test_cron_star_step_day_of_month_narrows_the_weekday_like_vixie_cron():
    # A day field starting with '*' counts as unrestricted, so the fields are ANDed:
    # odd-numbered days that are Mondays.
    runs = local_times(Cron("0 9 */2 * mon"), UTC_ZONE, local(UTC_ZONE, 2026, 4, 1), 2)
    assert runs == ["Mon 13 Apr 09:00", "Mon 27 Apr 09:00"]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        (
            "0 9 * * 8",
            "day of week '8' is out of range — use 0-7 (0 and 7 are Sunday) or sun-sat",
        ),
        ("60 9 * * *", "minute '60' is out of range — use 0-59"),
        ("0 24 * * *", "hour '24' is out of range — use 0-23"),
        ("0 9 0 * *", "day of month '0' is out of range — use 1-31"),
        ("0 9 * 13 *", "month '13' is out of range — use 1-12 or jan-dec"),
        ("0 9 * sept *", "month 'sept' is not valid — use 1-12 or jan-dec"),
        ("0 9 * * funday", "day of week 'funday' is not valid"),
        ("0 9 * *", "has 4 field(s) — use exactly 5: minute hour day-of-month month day-of-week"),
        ("0 9 * * * *", "has 6 field(s) — use exactly 5"),
        ("@daily", "has 1 field(s) — use exactly 5"),
        ("", "has 0 field(s) — use exactly 5"),
        ("*/0 * * * *", "minute step '/0' is not valid — use a whole number from 1"),
        ("0 9 20-10 * *", "day of month range '20-10' runs backwards"),
        ("0 9 1,,15 * *", "day of month has an empty item"),
        ("0 9 L * *", "day of month 'l' is not valid — use 1-31"),
        ("0 9 ? * *", "day of month has '?'"),
        (
            "5/15 * * * *",
            "minute '5/15' is ambiguous — write a range with the step, e.g. '5-59/15'",
        ),
        (
            "0 9 31 2 *",
            "day of month '31' never occurs in month '2' — this schedule would never run",
        ),
        ("0 9 31 apr,jun *", "day of month '31' never occurs in month 'apr,jun'"),
    ],
)
def test_bad_cron_expressions_say_which_field_and_what_is_allowed(expression, message):
    with pytest.raises(ValueError) as raised:
        parse_cron(expression)
    assert message in str(raised.value)
    with pytest.raises(ValueError):
        build_trigger(Cron(expression), UTC_ZONE)


def test_good_cron_expressions_parse_and_normalise_spacing():
    assert parse_cron("  0  9\t* * 7 ") == Cron("0 9 * * 7")
    assert parse_cron("0 9 29 2 *") == Cron("0 9 29 2 *")  # leap days do occur


def test_leap_day_cron_waits_for_the_next_leap_year():
    runs = next_runs(Cron("0 9 29 2 *"), UTC_ZONE, utc(2026, 1, 1), 2)
    assert [r.at for r in runs] == [utc(2028, 2, 29, 9), utc(2032, 2, 29, 9)]


# --- at + on ---------------------------------------------------------------------------


def test_weekdays_at_two_times():
    spec = AtTimes(times=(dt.time(17, 30), dt.time(9)), days=frozenset(range(1, 6)))
    assert local_times(spec, KATHMANDU, local(KATHMANDU, 2026, 3, 6), 4) == [
        "Fri 06 Mar 09:00",
        "Fri 06 Mar 17:30",
        "Mon 09 Mar 09:00",
        "Mon 09 Mar 17:30",
    ]


def test_daily_runs_every_day_and_a_day_list_only_on_those_days():
    after = local(KATHMANDU, 2026, 3, 2)
    days = [r.local.strftime("%a") for r in next_runs(daily(dt.time(9)), KATHMANDU, after, 7)]
    assert days == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    mon_wed = AtTimes(times=(dt.time(9),), days=frozenset({1, 3}))
    assert local_times(mon_wed, KATHMANDU, after, 3) == [
        "Mon 02 Mar 09:00",
        "Wed 04 Mar 09:00",
        "Mon 09 Mar 09:00",
    ]


@pytest.mark.parametrize(
    "spec",
    [
        AtTimes(times=(), days=EVERY_DAY),
        AtTimes(times=(dt.time(9),), days=frozenset()),
        AtTimes(times=(dt.time(9),), days=frozenset({0})),
        AtTimes(times=(dt.time(9),), days=frozenset({8})),
        AtTimes(times=(dt.time(9, tzinfo=UTC),), days=EVERY_DAY),
        Every(dt.timedelta(0)),
        Every(dt.timedelta(minutes=-15)),
    ],
)
def test_impossible_specs_are_refused(spec):
    with pytest.raises(ValueError):
        build_trigger(spec, UTC_ZONE)


def test_each_schedule_uses_its_own_timezone():
    spec = Cron("0 9 1 * *")
    after = utc(2026, 1, 1)
    shanghai = next_runs(spec, ZoneInfo("Asia/Shanghai"), after, 1)[0]
    kathmandu = next_runs(spec, KATHMANDU, after, 1)[0]
    assert shanghai.at == utc(2026, 1, 1, 1)
    assert kathmandu.at == utc(2026, 1, 1, 3, 15)
    assert kathmandu.local == local(KATHMANDU, 2026, 1, 1, 9)
    assert kathmandu.local.tzinfo is KATHMANDU
    assert kathmandu.at.tzinfo is UTC


# --- daylight saving -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "time", "day", "at", "shown", "note"),
    [
        (
            NEW_YORK,
            dt.time(2, 30),
            dt.date(2026, 3, 8),
            utc(2026, 3, 8, 7, 30),
            "03:30",
            "moved: 02:30 does not exist on Sun 8 Mar (clocks go forward); runs at 03:30",
        ),
        (
            NEW_YORK,
            dt.time(1, 30),
            dt.date(2026, 11, 1),
            utc(2026, 11, 1, 5, 30),
            "01:30",
            "01:30 happens twice on Sun 1 Nov (clocks go back); runs once, at the first",
        ),
        (
            LONDON,
            dt.time(1, 30),
            dt.date(2026, 3, 29),
            utc(2026, 3, 29, 1, 30),
            "02:30",
            "moved: 01:30 does not exist on Sun 29 Mar (clocks go forward); runs at 02:30",
        ),
        (
            LONDON,
            dt.time(1),
            dt.date(2026, 3, 29),
            utc(2026, 3, 29, 1),
            "02:00",
            "moved: 01:00 does not exist on Sun 29 Mar (clocks go forward); runs at 02:00",
        ),
        (
            LONDON,
            dt.time(1, 30),
            dt.date(2026, 10, 25),
            utc(2026, 10, 25, 0, 30),
            "01:30",
            "01:30 happens twice on Sun 25 Oct (clocks go back); runs once, at the first",
        ),
        (
            LONDON,
            dt.time(1),
            dt.date(2026, 10, 25),
            utc(2026, 10, 25, 0, 0),
            "01:00",
            "01:00 happens twice on Sun 25 Oct (clocks go back); runs once, at the first",
        ),
    ],
)
def test_daily_at_a_skipped_or_repeated_time_runs_once_that_day(zone, time, day, at, shown, note):
    for spec in (daily(time), Cron(f"{time.minute} {time.hour} * * *")):
        start = dt.datetime.combine(day - dt.timedelta(days=3), dt.time(), zone)
        runs = next_runs(spec, zone, start, 7)
        assert Counter(r.local.date() for r in runs) == {
            day + dt.timedelta(days=n): 1 for n in range(-3, 4)
        }
        (changed,) = [r for r in runs if r.local.date() == day]
        assert changed.at == at
        assert changed.local.strftime("%H:%M") == shown
        assert changed.note == note
        # Only the day of the change gets a note; other days run at the plain wall time.
        assert all(r.note is None and r.local.time() == time for r in runs if r is not changed)


def test_a_restart_just_after_clocks_go_forward_still_runs_the_moved_run():
    # 03:10 EDT: the clocks have gone forward, but 02:30 (moved to 03:30) has not run yet.
    after = local(NEW_YORK, 2026, 3, 8, 3, 10)
    run = next_runs(daily(dt.time(2, 30)), NEW_YORK, after, 1)[0]
    assert run.at == utc(2026, 3, 8, 7, 30)
    assert run.note == "moved: 02:30 does not exist on Sun 8 Mar (clocks go forward); runs at 03:30"
    trigger = build_trigger(daily(dt.time(2, 30)), NEW_YORK)
    assert trigger.get_next_fire_time(None, after) == run.at


def test_zone_without_daylight_saving_runs_at_the_same_time_every_day():
    # Kathmandu is +05:45 all year, including on the days New York and London change.
    start = local(KATHMANDU, 2026, 3, 1)
    runs = next_runs(daily(dt.time(2, 30), dt.time(1, 30)), KATHMANDU, start, 80)
    assert {r.at.time() for r in runs} == {dt.time(20, 45), dt.time(19, 45)}
    assert all(r.note is None for r in runs)
    assert len({r.local.date() for r in runs}) == 40


def test_cron_repeated_hour_runs_once_where_apscheduler_cron_runs_twice():
    runs = next_runs(Cron("30 1 * * *"), NEW_YORK, local(NEW_YORK, 2026, 10, 31, 12), 2)
    assert [r.at for r in runs] == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]


def test_cron_several_times_in_the_skipped_hour_each_run_once():
    runs = next_runs(Cron("*/30 1-3 * * *"), NEW_YORK, local(NEW_YORK, 2026, 3, 8), 5)
    assert [(r.local.strftime("%H:%M"), r.note) for r in runs] == [
        ("01:00", None),
        ("01:30", None),
        (
            "03:00",
            "moved: 02:00 does not exist on Sun 8 Mar (clocks go forward); runs at 03:00, "
            "together with the 03:00 run",
        ),
        (
            "03:30",
            "moved: 02:30 does not exist on Sun 8 Mar (clocks go forward); runs at 03:30, "
            "together with the 03:30 run",
        ),
        ("01:00", None),
    ]


def test_hourly_cron_runs_each_wall_hour_once_when_clocks_go_back():
    runs = next_runs(Cron("0 * * * *"), NEW_YORK, local(NEW_YORK, 2026, 10, 31, 23, 30), 4)
    assert [r.at for r in runs] == [
        utc(2026, 11, 1, 4),  # 00:00 EDT
        utc(2026, 11, 1, 5),  # 01:00 EDT, the first 01:00
        utc(2026, 11, 1, 7),  # 02:00 EST: the second 01:00 does not run again
        utc(2026, 11, 1, 8),
    ]
    assert (
        runs[1].note == "01:00 happens twice on Sun 1 Nov (clocks go back); runs once, at the first"
    )


# --- every -----------------------------------------------------------------------------


def test_every_keeps_its_cadence_across_restarts():
    spec = Every(dt.timedelta(minutes=15))
    first = next_runs(spec, KATHMANDU, local(KATHMANDU, 2026, 5, 1, 10, 7), 8)
    restarted = next_runs(spec, KATHMANDU, local(KATHMANDU, 2026, 5, 1, 10, 52), 4)
    assert first[0].local == local(KATHMANDU, 2026, 5, 1, 10, 15)
    assert first[3:7] == restarted  # 11:00 to 11:45 either way
    assert {r.local.minute for r in first} == {0, 15, 30, 45}


def test_every_counts_wall_clock_time_from_midnight_on_1_january_2000():
    anchor = dt.datetime(2000, 1, 1)
    runs = next_runs(Every(dt.timedelta(minutes=45)), KATHMANDU, utc(2026, 7, 4, 13, 2), 5)
    walls = [r.local.replace(tzinfo=None) for r in runs]
    assert all((w - anchor) % dt.timedelta(minutes=45) == dt.timedelta(0) for w in walls)
    assert [w.strftime("%H:%M") for w in walls] == ["19:30", "20:15", "21:00", "21:45", "22:30"]


def test_every_runs_a_repeated_wall_time_once_when_clocks_go_back():
    # 01:00-01:59 happens twice on 1 Nov 2026 in New York: each quarter runs once, at the
    # first, as `at` and `cron` do; the second pass through the hour runs nothing.
    runs = next_runs(Every(dt.timedelta(minutes=15)), NEW_YORK, local(NEW_YORK, 2026, 11, 1, 1), 6)
    assert [(r.local.strftime("%H:%M%z"), r.note) for r in runs] == [
        (
            "01:15-0400",
            "01:15 happens twice on Sun 1 Nov (clocks go back); runs once, at the first",
        ),
        (
            "01:30-0400",
            "01:30 happens twice on Sun 1 Nov (clocks go back); runs once, at the first",
        ),
        (
            "01:45-0400",
            "01:45 happens twice on Sun 1 Nov (clocks go back); runs once, at the first",
        ),
        ("02:00-0500", None),
        ("02:15-0500", None),
        ("02:30-0500", None),
    ]
    assert runs[3].at - runs[2].at == dt.timedelta(minutes=75)


def test_every_moves_a_skipped_wall_time_like_at_does():
    runs = next_runs(Every(dt.timedelta(minutes=30)), NEW_YORK, local(NEW_YORK, 2026, 3, 8, 1), 4)
    assert [(r.local.strftime("%H:%M%z"), r.note) for r in runs] == [
        ("01:30-0500", None),
        (
            "03:00-0400",
            "moved: 02:00 does not exist on Sun 8 Mar (clocks go forward); runs at 03:00, "
            "together with the 03:00 run",
        ),
        (
            "03:30-0400",
            "moved: 02:30 does not exist on Sun 8 Mar (clocks go forward); runs at 03:30, "
            "together with the 03:30 run",
        ),
        ("04:00-0400", None),
    ]


def test_every_hour_stays_on_the_hour_when_clocks_go_forward():
    runs = next_runs(Every(dt.timedelta(hours=1)), LONDON, local(LONDON, 2026, 3, 28, 23, 30), 4)
    assert [r.local.strftime("%H:%M%z") for r in runs] == [
        "00:00+0000",
        "02:00+0100",
        "03:00+0100",
        "04:00+0100",
    ]


# --- the trigger the scheduler uses ----------------------------------------------------

SPECS = [
    Cron("0 9 * * mon"),
    Cron("*/30 1-3 * * *"),
    Cron("0 9 13 * fri"),
    daily(dt.time(1, 30), dt.time(2, 30)),
    Every(dt.timedelta(minutes=40)),
]


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize(
    ("start", "end"),
    [
        (local(NEW_YORK, 2026, 3, 1), local(NEW_YORK, 2026, 3, 15)),
        (local(NEW_YORK, 2026, 10, 25), local(NEW_YORK, 2026, 11, 8)),
    ],
)
def test_scheduler_catch_up_sees_the_same_runs_as_the_table(spec, start, end):
    # APScheduler catches up by asking get_next_fire_time(previous, now) with `now` fixed at
    # the present; the table asks run by run. Both must give the same times.
    trigger = build_trigger(spec, NEW_YORK)
    fire, seen = trigger.get_next_fire_time(None, start), []
    while fire is not None and fire <= end:
        if fire > start:
            seen.append(fire.astimezone(UTC))
        fire = trigger.get_next_fire_time(fire, end)
    expected = runs_between(spec, NEW_YORK, start, end)
    assert seen == expected
    assert seen == [r.at for r in next_runs(spec, NEW_YORK, start, len(expected))]
    assert len(expected) >= 2


def test_a_real_scheduler_plans_the_first_run_the_table_shows():
    scheduler = BackgroundScheduler(timezone=NEW_YORK)
    scheduler.start(paused=True)
    try:
        spec = Cron("0 9 * * 1")
        before = dt.datetime.now(UTC)
        job = scheduler.add_job(print, build_trigger(spec, NEW_YORK))
        assert job.next_run_time == next_runs(spec, NEW_YORK, before, 1)[0].at
    finally:
        scheduler.shutdown(wait=False)


def test_trigger_survives_pickling_for_persistent_job_stores():
    trigger = build_trigger(Cron("30 1 * * *"), NEW_YORK)
    copy = pickle.loads(pickle.dumps(trigger))
    now = local(NEW_YORK, 2026, 11, 1)
    assert copy.get_next_fire_time(None, now) == trigger.get_next_fire_time(None, now)


def test_runs_between_excludes_start_includes_end_and_is_bounded():
    spec = daily(dt.time(9))
    runs = runs_between(spec, UTC_ZONE, utc(2026, 1, 1, 9), utc(2026, 1, 3, 9))
    assert runs == [utc(2026, 1, 2, 9), utc(2026, 1, 3, 9)]
    every_minute = runs_between(Cron("* * * * *"), UTC_ZONE, utc(2026, 1, 1), utc(2026, 2, 1))
    assert len(every_minute) == 1000
    assert every_minute[0] == utc(2026, 1, 1, 0, 1)
    assert runs_between(spec, UTC_ZONE, utc(2026, 1, 1, 10), utc(2026, 1, 2, 8)) == []


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        next_runs(daily(dt.time(9)), UTC_ZONE, dt.datetime(2026, 1, 1), 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        runs_between(daily(dt.time(9)), UTC_ZONE, utc(2026, 1, 1), dt.datetime(2026, 2, 1))


# --- properties across many zones ------------------------------------------------------

ZONES = [
    "America/New_York",
    "Europe/London",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",  # half-hour daylight saving
    "America/Santiago",  # clocks change at midnight
    "America/Havana",
    "Australia/Sydney",
]


def expected_instant(wall: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """The policy written out without fold=0: the first real reading of the wall time, or,
    if it does not exist, the wall time read with the offset from before the gap."""
    readings = [wall.replace(tzinfo=tz, fold=fold) for fold in (0, 1)]
    real = [r for r in readings if r.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall]
    if real:
        return min(r.astimezone(UTC) for r in real)
    before = (wall - dt.timedelta(days=1)).replace(tzinfo=tz).utcoffset()
    return (wall - before).replace(tzinfo=UTC)


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    time=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    start=st.dates(dt.date(2025, 1, 1), dt.date(2027, 12, 31)),
)
def test_daily_runs_exactly_once_every_day_in_any_zone(zone, time, start):
    tz = ZoneInfo(zone)
    after = dt.datetime.combine(start, dt.time(), tz).astimezone(UTC) - dt.timedelta(minutes=1)
    runs = next_runs(daily(time), tz, after, 370)
    days = [start + dt.timedelta(days=n) for n in range(370)]
    assert [r.local.date() for r in runs] == days
    assert [r.at for r in runs] == [
        expected_instant(dt.datetime.combine(d, time), tz) for d in days
    ]


TRANSITIONS = [
    local(NEW_YORK, 2026, 3, 8, 3),
    local(NEW_YORK, 2026, 11, 1, 1),
    local(LONDON, 2026, 3, 29, 2),
    local(LONDON, 2026, 10, 25, 1),
    utc(2026, 4, 4, 15),  # Lord Howe back
    utc(2026, 10, 3, 15, 30),  # Lord Howe forward
    utc(2026, 4, 5, 3),  # Santiago back
    utc(2026, 9, 6, 4),  # Santiago forward
]


@settings(max_examples=40, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    around=st.sampled_from(TRANSITIONS),
    step=st.sampled_from([1, 5, 10, 15, 20, 30]),
    hours=st.tuples(st.integers(0, 23), st.integers(0, 23)).map(sorted),
    lead=st.integers(-120, 18 * 60),  # minutes before the change that the reading starts
)
def test_cron_near_clock_changes_matches_a_minute_by_minute_reading(
    zone, around, step, hours, lead
):
    tz = ZoneInfo(zone)
    low, high = hours
    spec = Cron(f"*/{step} {low}-{high} * * *")
    first_wall = around.astimezone(tz).replace(tzinfo=None) - dt.timedelta(days=1)
    walls = (first_wall + dt.timedelta(minutes=n) for n in range(2 * 24 * 60))
    expected = sorted(
        {expected_instant(w, tz) for w in walls if w.minute % step == 0 and low <= w.hour <= high}
    )
    start, end = around - dt.timedelta(minutes=lead), around + dt.timedelta(hours=18)
    assert runs_between(spec, tz, start, end, limit=5000) == [
        t for t in expected if start < t <= end
    ]


# -- bounds: what the fuzzing found (unicode digits, 5,000 digits, a 100,000-year every) --


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 ²4 * * *", "hour '²4' is not valid"),  # isdigit() is True, int() fails
        ("0 ٩ * * *", "hour '٩' is not valid"),  # an Arabic-Indic nine: not a crontab digit
        ("9" * 5000 + " * * * *", "minute '9999"),  # beyond int()'s 4,300-digit limit
        ("*/" + "9" * 5000 + " * * * *", "minute step '/9999"),
        ("*/²0 * * * *", "minute step '/²0' is not valid"),
        ("0 0024 * * *", "hour '0024' is out of range"),
    ],
)
def test_crontab_numbers_are_ascii_and_bounded(expression, message):
    with pytest.raises(ValueError) as caught:
        parse_cron(expression)
    assert message in str(caught.value) and "invalid literal" not in str(caught.value)


def test_leading_zeros_in_crontab_numbers_still_read():
    assert parse_cron("05 009 * * 01") == Cron("05 009 * * 01")


def test_every_longer_than_a_leap_year_is_refused_by_the_trigger_too():
    from pipeline.triggers import MAX_EVERY

    now = dt.datetime(2026, 11, 29, tzinfo=UTC)
    assert dt.timedelta(days=366) == MAX_EVERY
    runs = next_runs(Every(MAX_EVERY), KATHMANDU, now, 3)
    assert [b.at - a.at for a, b in itertools.pairwise(runs)] == [MAX_EVERY] * 2
    with pytest.raises(ValueError, match="at most 366 days"):
        build_trigger(Every(dt.timedelta(hours=1_000_000_000)), KATHMANDU)
