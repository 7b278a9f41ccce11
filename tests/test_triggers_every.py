"""``every``: local wall-clock times counted from 00:00 on 1 Jan 2000 in the schedule's
zone, so an interval that divides a day lands on the same grid every local day from
00:00, whatever offset the zone had in 2000 (issue 11, item 8).

Judged against the rule written out independently of the code: the wall times the rule
names, each turned into an instant by the daylight-saving policy of ``at`` and ``cron``
(``expected_instant`` in test_triggers.py), in every zone the system knows."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import pickle
import zoneinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.triggers import EVERY_ANCHOR, Every, build_trigger, next_runs, runs_between
from tests.test_triggers import expected_instant

UTC = dt.UTC
SAO_PAULO = ZoneInfo("America/Sao_Paulo")  # -02:00 on 1 Jan 2000, -03:00 all year since 2019
CASABLANCA = ZoneInfo("Africa/Casablanca")  # +00:00 in 2000; +01:00, or +00:00 in Ramadan
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")  # +11:00 in summer, +10:30 April to October
UTC_ZONE = ZoneInfo("UTC")
DAY = 24 * 60
# Every interval in whole minutes that divides a day: 1, 2, 3 … 720, 1440.
DIVISORS = [n for n in range(1, DAY + 1) if DAY % n == 0]
ZONES = sorted(zoneinfo.available_timezones())


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def every(minutes: int) -> Every:
    return Every(dt.timedelta(minutes=minutes))


def walls(spec: Every, tz: ZoneInfo, after: dt.datetime, count: int) -> list[str]:
    return [r.local.strftime("%d %b %H:%M%z") for r in next_runs(spec, tz, after, count)]


# --- the zones of the issue ------------------------------------------------------------


@pytest.mark.parametrize("month", range(1, 13))
def test_every_24_hours_runs_at_midnight_in_sao_paulo_all_year(month):
    # It ran at 23:00: counted in real hours from midnight of 1 Jan 2000, then -02:00.
    runs = next_runs(every(DAY), SAO_PAULO, utc(2026, month, 1, 12), 3)
    assert [r.local.strftime("%H:%M") for r in runs] == ["00:00"] * 3
    assert [r.at.hour for r in runs] == [3] * 3  # -03:00
    assert all(r.note is None for r in runs)


def test_every_24_hours_runs_at_midnight_in_casablanca_in_and_after_ramadan():
    # It ran at 01:00 (+00:00 in 2000, +01:00 now). Clocks go back to +00:00 at 03:00 on
    # 15 Feb 2026 and forward at 02:00 on 22 Mar; midnight itself always exists.
    runs = next_runs(every(DAY), CASABLANCA, utc(2026, 2, 13, 12), 40)
    assert {r.local.strftime("%H:%M") for r in runs} == {"00:00"}
    assert [r.local.date() for r in runs] == [
        dt.date(2026, 2, 14) + dt.timedelta(days=n) for n in range(40)
    ]
    assert runs[0].at == utc(2026, 2, 13, 23)  # +01:00
    assert runs[5].at == utc(2026, 2, 19, 0)  # +00:00
    assert runs[-1].at == utc(2026, 3, 24, 23)  # +01:00 again


def test_every_hour_runs_on_the_hour_in_lord_howe_april_to_october():
    # It ran at :30 from April to October (+10:30), counted from +11:00 in 2000.
    winter = next_runs(every(60), LORD_HOWE, utc(2026, 7, 1, 0, 10), 4)
    assert [r.local.strftime("%H:%M%z") for r in winter] == [
        "11:00+1030",
        "12:00+1030",
        "13:00+1030",
        "14:00+1030",
    ]
    summer = next_runs(every(60), LORD_HOWE, utc(2026, 1, 10, 0, 10), 2)
    assert [r.local.strftime("%H:%M%z") for r in summer] == ["12:00+1100", "13:00+1100"]


def test_every_hour_in_lord_howe_when_the_clocks_change_by_half_an_hour():
    # Forward at 02:00 -> 02:30 on 4 Oct 2026: 02:00 does not exist and runs 30 minutes
    # later, as an `at: "02:00"` would. Back at 02:00 -> 01:30 on 5 Apr 2026: 01:00 exists
    # once and runs once; no hour runs twice.
    forward = next_runs(every(60), LORD_HOWE, utc(2026, 10, 3, 14, 10), 4)
    assert [(r.local.strftime("%H:%M%z"), r.note) for r in forward] == [
        ("01:00+1030", None),
        (
            "02:30+1100",
            "moved: 02:00 does not exist on Sun 4 Oct (clocks go forward); runs at 02:30",
        ),
        ("03:00+1100", None),
        ("04:00+1100", None),
    ]
    back = next_runs(every(60), LORD_HOWE, utc(2026, 4, 4, 13, 10), 4)
    assert [r.local.strftime("%H:%M%z") for r in back] == [
        "01:00+1100",
        "02:00+1030",
        "03:00+1030",
        "04:00+1030",
    ]


# --- the rule, in words ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "minutes", "shown"),
    [
        ("Asia/Kathmandu", 6 * 60, ["00:00", "06:00", "12:00", "18:00", "00:00"]),
        ("Australia/Eucla", 90, ["00:00", "01:30", "03:00", "04:30", "06:00"]),
        ("Pacific/Chatham", 45, ["00:00", "00:45", "01:30", "02:15", "03:00"]),
        ("America/St_Johns", 8 * 60, ["00:00", "08:00", "16:00", "00:00", "08:00"]),
        ("Asia/Tehran", 20, ["00:00", "00:20", "00:40", "01:00", "01:20"]),
    ],
)
def test_an_interval_that_divides_a_day_starts_at_local_midnight(zone, minutes, shown):
    tz = ZoneInfo(zone)
    midnight = dt.datetime(2026, 6, 10, tzinfo=tz)
    runs = next_runs(every(minutes), tz, midnight - dt.timedelta(seconds=1), 5)
    assert [r.local.strftime("%H:%M") for r in runs] == shown
    assert runs[0].local == midnight


def test_other_intervals_continue_their_count_from_1_january_2000():
    # 7 hours: 00:00 on 1 Jan 2000 and every 7 wall-clock hours since, across midnight.
    # 8 Jun 2026 00:00 is 9,655 days after it: 9,655 × 24 = 33,102 × 7 + 6 hours, so the
    # count passed 18:00 on 7 Jun and goes on at 01:00.
    runs = walls(every(7 * 60), SAO_PAULO, dt.datetime(2026, 6, 8, tzinfo=SAO_PAULO), 5)
    assert runs == [
        "08 Jun 01:00-0300",
        "08 Jun 08:00-0300",
        "08 Jun 15:00-0300",
        "08 Jun 22:00-0300",
        "09 Jun 05:00-0300",
    ]
    # 2 days: midnight on the days an even number of days after 1 Jan 2000.
    runs = walls(every(2 * DAY), SAO_PAULO, dt.datetime(2026, 6, 8, tzinfo=SAO_PAULO), 3)
    assert runs == ["09 Jun 00:00-0300", "11 Jun 00:00-0300", "13 Jun 00:00-0300"]
    # 7 days: Saturdays, as 1 Jan 2000 was (a weekly run on another day wants `at` + `on`).
    saturdays = next_runs(every(7 * DAY), LORD_HOWE, utc(2026, 6, 1), 3)
    assert {r.local.strftime("%a %H:%M") for r in saturdays} == {"Sat 00:00"}


def test_every_before_2000_counts_back_from_the_same_anchor():
    runs = walls(every(7 * 60), UTC_ZONE, dt.datetime(1999, 12, 31, 12, tzinfo=UTC), 3)
    assert runs == ["31 Dec 17:00+0000", "01 Jan 00:00+0000", "01 Jan 07:00+0000"]


def test_a_fresh_start_exactly_on_a_run_runs_it_then_the_next_is_later():
    trigger = build_trigger(every(15), SAO_PAULO)
    quarter = dt.datetime(2026, 5, 4, 9, 15, tzinfo=SAO_PAULO)
    assert trigger.get_next_fire_time(None, quarter) == quarter
    assert trigger.get_next_fire_time(None, quarter + dt.timedelta(seconds=1)) == (
        quarter + dt.timedelta(minutes=15)
    )
    assert trigger.get_next_fire_time(quarter, quarter) == quarter + dt.timedelta(minutes=15)


def test_every_names_itself_in_the_job_list_and_ends_with_the_calendar():
    trigger = build_trigger(every(90), SAO_PAULO)
    assert str(trigger) == "every[1:30:00 from 2000-01-01 00:00 America/Sao_Paulo]"
    assert repr(trigger) == "<EveryTrigger every[1:30:00 from 2000-01-01 00:00 America/Sao_Paulo]>"
    last = next_runs(every(DAY), UTC_ZONE, utc(9999, 12, 30, 12), 3)
    assert [r.at for r in last] == [utc(9999, 12, 31)]  # then no further run, no crash


# --- properties in every zone the system knows ----------------------------------------


@functools.cache
def changes(zone: str) -> tuple[dt.date, ...]:
    """UTC dates on which ``zone``'s offset changes, 1970-2060: read weekly, then the day
    found by halving (two changes within one week count once; enough to aim at them)."""
    tz, found = ZoneInfo(zone), []

    def offset(at: dt.datetime) -> dt.timedelta | None:
        return at.astimezone(tz).utcoffset()

    week = dt.timedelta(days=7)
    at = dt.datetime(1970, 1, 1, 12, tzinfo=UTC)
    while at.year <= 2060:
        low, high = at, at + week
        if offset(low) != offset(high):
            while high - low > dt.timedelta(days=1):
                middle = low + (high - low) // 2
                low, high = (middle, high) if offset(middle) == offset(low) else (low, middle)
            found.append(high.date())
        at += week
    return tuple(found)


@st.composite
def zone_and_day(draw: st.DrawFn) -> tuple[str, dt.date]:
    """A zone and a date, half the time one on which the zone's clocks change."""
    zone = draw(st.sampled_from(ZONES))
    near = changes(zone) if draw(st.booleans()) else ()
    if near:
        day = draw(st.sampled_from(near)) + dt.timedelta(days=draw(st.integers(-1, 1)))
    else:
        day = draw(st.dates(dt.date(1970, 1, 3), dt.date(2060, 12, 28)))
    return zone, day


def day_grid(minutes: int, day: dt.date) -> list[dt.datetime]:
    """The rule for an interval that divides a day: 00:00, then every interval, that day."""
    start = dt.datetime.combine(day, dt.time())
    return [start + dt.timedelta(minutes=m) for m in range(0, DAY, minutes)]


@settings(max_examples=80, deadline=None)
@given(where=zone_and_day(), minutes=st.sampled_from(DIVISORS))
def test_a_divisor_of_a_day_runs_on_the_local_grid_of_each_day(where, minutes):
    zone, day = where
    tz = ZoneInfo(zone)
    days = [day + dt.timedelta(days=n) for n in (-1, 0, 1)]
    expected = sorted(
        {expected_instant(w, tz) for d in days for w in day_grid(minutes, d)}
    )  # a skipped time moved onto another run is one run: a set
    start = expected_instant(dt.datetime.combine(day, dt.time()), tz) - dt.timedelta(seconds=1)
    end = start + dt.timedelta(days=1)
    runs = runs_between(every(minutes), tz, start, end, limit=5000)
    assert runs == [t for t in expected if start < t <= end]


@settings(max_examples=80, deadline=None)
@given(where=zone_and_day(), minutes=st.integers(5, 366 * DAY), hour=st.integers(0, 23))
def test_any_interval_runs_at_the_wall_times_counted_from_1_january_2000(where, minutes, hour):
    zone, day = where
    tz, interval = ZoneInfo(zone), dt.timedelta(minutes=minutes)
    around = dt.datetime.combine(day, dt.time(hour))
    # The wall times whose instants can fall in the day read: offsets are within ±26 hours
    # and a skipped time moves at most a day later.
    first = -((EVERY_ANCHOR - (around - dt.timedelta(days=2))) // interval)
    last = (around + dt.timedelta(days=2) - EVERY_ANCHOR) // interval
    steps = range(first, last + 1)
    expected = sorted({expected_instant(EVERY_ANCHOR + k * interval, tz) for k in steps})
    start = around.replace(tzinfo=UTC)
    end = start + dt.timedelta(days=1)
    runs = runs_between(Every(interval), tz, start, end, limit=5000)
    assert runs == [t for t in expected if start < t <= end]


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    minutes=st.sampled_from([*DIVISORS, 7, 50, 7 * 60, 25 * 60, 2 * DAY, 7 * DAY]),
    start=st.datetimes(dt.datetime(1990, 1, 1), dt.datetime(2040, 1, 1)),
    later=st.integers(0, 3 * DAY),
)
def test_when_the_service_starts_changes_nothing_and_the_scheduler_sees_the_table(
    zone, minutes, start, later
):
    tz, spec = ZoneInfo(zone), every(minutes)
    first = next_runs(spec, tz, start.replace(tzinfo=UTC), 40)
    restarted_at = start.replace(tzinfo=UTC) + dt.timedelta(minutes=later)
    restarted = next_runs(spec, tz, restarted_at, 40)
    overlap = [r for r in first if r.at > restarted_at]
    assert restarted[: len(overlap)] == overlap
    # APScheduler asks from each run with `now` fixed at the present (catching up).
    trigger = build_trigger(spec, tz)
    fire = trigger.get_next_fire_time(None, first[0].at)
    seen = []
    for _ in range(len(first)):
        seen.append(fire.astimezone(UTC))
        fire = trigger.get_next_fire_time(fire, first[-1].at)
    assert seen == [r.at for r in first]
    assert all(b.at > a.at for a, b in itertools.pairwise(first))


def test_an_every_trigger_survives_pickling_for_persistent_job_stores():
    trigger = build_trigger(every(45), LORD_HOWE)
    copy = pickle.loads(pickle.dumps(trigger))
    now = utc(2026, 10, 3, 15, 1)
    assert copy.get_next_fire_time(None, now) == trigger.get_next_fire_time(None, now)
