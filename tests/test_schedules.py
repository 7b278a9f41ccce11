"""schedules.yaml as comms staff write it: forgiving to read, strict to check."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipeline.actions import Action
from pipeline.errors import ConfigError
from pipeline.schedules import load_schedules
from pipeline.settings import load_settings
from pipeline.triggers import AtTimes, Cron, Every

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def settings():
    return load_settings(REPO / "config" / "pipeline.yaml")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "schedules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path, settings) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_schedules(path, settings)
    return [str(p) for p in caught.value.problems]


def test_the_example_file_loads(settings):
    loaded = load_schedules(REPO / "schedules.yaml", settings)
    by_name = {s.name: s for s in loaded.schedules}
    assert by_name["check-news"].action == Action("cycle")
    assert by_name["check-news"].trigger == Every(dt.timedelta(minutes=15))
    weekly = by_name["weekly-digest-en"]
    assert weekly.trigger == AtTimes((dt.time(9, 0),), frozenset({1}))
    assert weekly.timezone == "Asia/Kathmandu" and weekly.grace == dt.timedelta(hours=6)
    assert by_name["monthly-digest-zh"].timezone == "Asia/Shanghai"
    assert isinstance(by_name["monthly-digest-zh"].trigger, Cron)
    assert not by_name["archive-afternoon"].enabled
    assert [s.name for s in loaded.enabled()] == [
        "check-news",
        "weekly-digest-en",
        "monthly-digest-zh",
    ]


def test_unquoted_times_stay_times_and_yaml_words_stay_words(tmp_path, settings):
    # PyYAML (YAML 1.1) reads 9:30 as 570 and `on`/`no` as booleans; YAML 1.2 does not.
    path = write(
        tmp_path,
        "schedules:\n"
        "  - name: morning\n    do: digest weekly-en\n    at: 9:30\n    on: [mon, thu]\n"
        "  - name: late\n    do: feeds\n    at:\n      - 7:05\n      - 23:59\n    on: weekends\n",
    )
    morning, late = load_schedules(path, settings).schedules
    assert morning.trigger == AtTimes((dt.time(9, 30),), frozenset({1, 4}))
    assert late.trigger == AtTimes((dt.time(7, 5), dt.time(23, 59)), frozenset({6, 7}))
    assert morning.describe() == "Mondays, Thursdays at 09:30"
    assert late.describe() == "weekends at 07:05, 23:59"


def test_unquoted_times_in_a_bracketed_list_get_a_hint_to_quote_them(tmp_path, settings):
    path = write(tmp_path, "schedules:\n  - name: a\n    do: feeds\n    at: [10:00, 16:00]\n")
    (message,) = problems(path, settings)
    assert ":4:" in message and 'at: ["10:00", "16:00"]' in message


def test_a_broken_file_yields_one_located_message_per_problem(tmp_path, settings):
    path = write(
        tmp_path,
        "timezone: Asia/Kathmandu\n"  # 1
        "schedules:\n"  # 2
        "  - name: weekly\n"  # 3
        "    do: digest weekly-eng\n"  # 4  unknown digest
        "    on: munday\n"  # 5  wrong day name
        '    at: "25:00"\n'  # 6  bad time
        "  - name: social\n"  # 7
        "    do: post archive\n"  # 8
        "    every: 15 minutes\n"  # 9
        "    enabeld: false\n",  # 10 unknown key
    )
    found = problems(path, settings)
    assert len(found) == 4, found
    shown = str(path)
    assert found[0] == (
        f"{shown}:4:9: `do`: unknown digest 'weekly-eng' — did you mean `weekly-en`?"
    )
    assert found[1].startswith(f"{shown}:5:9: `on`: 'munday' is not a day — did you mean `monday`?")
    assert found[2].startswith(f"{shown}:6:9: `at`: '25:00' is not a time of day")
    assert '"HH:MM"' in found[2]
    assert found[3] == (
        f"{shown}:10:5: unknown key `enabeld` — did you mean `enabled`? (false pauses the schedule)"
    )


def test_actions_channels_and_numbers_are_checked(tmp_path, settings):
    path = write(
        tmp_path,
        "schedules:\n"
        "  - name: a\n    do: post mastodon\n    every: 15 minutes\n"  # 2-4
        "  - name: b\n    do: publish\n    every: 15\n"  # 5-7
        "  - name: c\n    do: feeds\n    at: 930\n"  # 8-10
        "  - name: a\n    do: ingest\n    cron: '0 9 * * 8'\n",  # 11-13
    )
    found = problems(path, settings)
    assert any(
        ":3:9: `do`: unknown channel 'mastodon' — the channels are: archive" in p for p in found
    )
    assert any(":6:9: `do`: 'publish' is not an action" in p for p in found)
    assert any(
        ":7:12: `every`: 15 is not a duration — add a unit: `15 minutes`, `15 hours` or "
        "`15 days`" in p
        for p in found
    )
    assert any(":10:9: `at`: 930 is not a time of day" in p for p in found)
    assert any(
        ":13:11: `cron`: day of week '8' is out of range — use 0-7 (0 and 7 are Sunday)" in p
        for p in found
    )
    assert any(":11:" in p and "'a' is used twice" in p for p in found)


def test_timing_mistakes_say_what_to_write(tmp_path, settings):
    path = write(
        tmp_path,
        "timezone: Asia/Kathmando\n"
        "schedules:\n"
        "  - name: none\n    do: feeds\n"
        "  - name: both\n    do: feeds\n    every: 1 hour\n    cron: '0 * * * *'\n"
        "  - name: lonely-on\n    do: feeds\n    every: 2 hours\n    on: monday\n",
    )
    found = problems(path, settings)
    assert any(":1:11: `timezone`: unknown time zone" in p and "Asia/Kathmandu" in p for p in found)
    assert any(":3:5: a schedule needs a time" in p for p in found)
    assert any("`every` and `cron` cannot be combined" in p for p in found)
    assert any("`on` needs `at`" in p for p in found)


def test_readme_documents_every_schedules_key():
    from pipeline.schedules import SCHEDULE_KEYS, TOP_KEYS

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    keys = [*TOP_KEYS, *(f"schedules.{key}" for key in SCHEDULE_KEYS)]
    missing = [key for key in keys if f"| `{key}` |" not in readme]
    assert not missing, f"README.md does not document: {', '.join(missing)}"


# -- hostile edits: located errors, never a traceback (the outside tester's findings) -----

ONE = "schedules:\n  - name: a\n    do: feeds\n"


def test_a_tab_after_a_colon_is_a_located_error_not_a_traceback(tmp_path, settings):
    # The C loader took it and the located loader, run to place another error, did not.
    path = write(tmp_path, "timezone:\tAsia/Kathmandu\n" + ONE + "    every:\t1 hour\n")
    assert problems(path, settings) == [
        f"{path}:1:10: a tab character here — YAML needs spaces: replace the tab"
    ]


def test_an_alias_bomb_is_refused_at_once(tmp_path, settings):
    lines = ["x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"x{n}: &x{n} [{', '.join([f'*x{n - 1}'] * 9)}]" for n in range(1, 9)]
    path = write(tmp_path, "\n".join(lines) + "\n" + ONE + "    every: 1 hour\n")
    (message,) = problems(path, settings)
    assert message.startswith(f"{path}:1:5: anchors and aliases (&name, *name) are not allowed")


@pytest.mark.parametrize(
    ("timing", "message"),
    [
        ("every: 1000000000 hours", "`every`: '1000000000 hours' is too long — at most 8784 hours"),
        ("every: 527041 minutes", "`every`: '527041 minutes' is too long — at most 8784 hours"),
        (f"every: {'9' * 5000} minutes", "`every`: '99999"),
        (
            "every: 15 minutes\n    grace: 169 hours",
            "`grace`: '169 hours' is too long — at most 168",
        ),
        ("every: -5 minutes", "`every`: '-5 minutes' is not a duration"),
        ("every: 0 hours", "`every`: '0 hours' is not a duration"),
        ('cron: "0 ²4 * * *"', "`cron`: hour '²4' is not valid"),
        (f'cron: "*/{"9" * 5000} * * * *"', "is not a crontab line"),
        (f'cron: "{"1" * 5000} * * * *"', "is not a crontab line"),
        ("every: 1 hour\n    timezone: " + "A" * 300, "`timezone`: unknown time zone 'AAAA"),
        ("every: 1 hour\n    timezone: Asia", "`timezone`: unknown time zone 'Asia'"),
        ("every: 1 hour\n    timezone: ../../etc/passwd", "`timezone`: unknown time zone"),
        ("every: 1 hour\n    timezone: [UTC]", "`timezone`: ['UTC'] is not a time zone name"),
        ("every: 1 hour\n    enabled: " + "x" * 500, "`enabled` is 'xxxx"),
    ],
)
def test_numbers_and_names_out_of_bounds_are_located_errors(tmp_path, settings, timing, message):
    path = write(tmp_path, ONE + f"    {timing}\n")
    found = problems(path, settings)
    assert len(found) == 1 and found[0].startswith((f"{path}:4:", f"{path}:5:")), found
    assert message in found[0] and len(found[0]) < 400, found  # one readable line


def test_the_longest_every_and_grace_are_accepted_and_can_be_planned(tmp_path, settings):
    from pipeline.triggers import next_runs

    path = write(tmp_path, ONE + "    every: 8784 hours\n    grace: 168 hours\n")
    (schedule,) = load_schedules(path, settings).schedules
    assert schedule.trigger == Every(dt.timedelta(days=366))
    now = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)
    assert len(next_runs(schedule.trigger, schedule.zone, now, 3)) == 3


def test_too_many_schedules_is_a_located_error(tmp_path, settings):
    from pipeline.schedules import MAX_SCHEDULES

    entries = "".join(
        f"  - name: s{n}\n    do: feeds\n    every: 1 hour\n" for n in range(MAX_SCHEDULES + 1)
    )
    found = problems(write(tmp_path, "schedules:\n" + entries), settings)
    assert found == [
        f"{tmp_path / 'schedules.yaml'}:{2 + 3 * MAX_SCHEDULES}:5: more than {MAX_SCHEDULES} "
        f"schedules — at most {MAX_SCHEDULES}; combine schedules that do the same thing"
    ]


def cli(tmp_path: Path, *args: str):
    from click.testing import CliRunner

    from pipeline.cli import main

    config = REPO / "config" / "pipeline.yaml"
    schedules = ["--schedules", str(tmp_path / "schedules.yaml")]
    return CliRunner().invoke(main, ["--config", str(config), *schedules, *args])


@pytest.mark.parametrize("count", ["-3", "0", "1001", "many"])
def test_schedule_next_outside_1_to_1000_is_a_usage_error(tmp_path, count):
    write(tmp_path, ONE + "    every: 1 hour\n")
    result = cli(tmp_path, "schedule", "--next", count)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "Invalid value for '--next'" in result.output


def test_what_check_accepts_schedule_next_can_show(tmp_path):
    # `every: 1000000000 hours` passed `check`, then `schedule --next` crashed.
    write(tmp_path, ONE + "    every: 1000000000 hours\n")
    for command in (["check"], ["schedule", "--next", "2"]):
        result = cli(tmp_path, *command)
        assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
        assert "schedules.yaml:4:12: `every`" in result.output
    write(tmp_path, ONE + "    every: 8784 hours\n")
    result = cli(tmp_path, "schedule", "--next", "2")
    assert result.exit_code == 0, result.output
