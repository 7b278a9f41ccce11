"""What comms staff read when config/pipeline.yaml or schedules.yaml is wrong, and what
`pipeline check` warns about (issue 11, item 12). Asserted as the exact lines the command
prints, through the command line, with the project's files written to a temp folder."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.cli import main
from pipeline.errors import ConfigError
from pipeline.schedules import load_schedules
from pipeline.settings import load_settings
from pipeline.settings.base import ZONE_ABBREVIATIONS
from pipeline.yamlfile import parse_yaml

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "config" / "pipeline.yaml"
ONE = "schedules:\n  - name: a\n    do: feeds\n"


def run(tmp_path: Path, schedules: str, *args: str, config: Path = CONFIG):
    path = tmp_path / "schedules.yaml"
    path.write_text(schedules, encoding="utf-8")
    command = ["--config", str(config), "--schedules", str(path), *(args or ("check",))]
    return CliRunner().invoke(main, command)


def errors(tmp_path: Path, schedules: str, *args: str, config: Path = CONFIG) -> list[str]:
    """The lines a person reads for a refused file (exit status 2), the summary left out."""
    result = run(tmp_path, schedules, *args, config=config)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert lines[-1].endswith("; nothing was changed.")
    return lines[:-1]


def config_with(tmp_path: Path, old: str, new: str) -> tuple[Path, int]:
    """The example config with ``old`` replaced, and the line (1-based) where it was."""
    text = CONFIG.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "config" / "pipeline.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path, text.count("\n", 0, text.index(old)) + 1


# --- unknown keys: the hint names a key that is then accepted ---------------------------


@pytest.mark.parametrize("written", ["fro", "from_", "From", "form"])
def test_a_misspelt_email_sender_key_is_told_to_write_from(tmp_path, written):
    # It suggested `from_`, the Python name, which the file then refused as well.
    config, line = config_with(tmp_path, '  from: "Mountain', f'  {written}: "Mountain')
    assert errors(tmp_path, ONE + "    every: 1 hour\n", config=config) == [
        f"{config}:{line}:3: unknown key `{written}` in `email` — did you mean `from`?"
    ]  # and not also "`email.from` is required": it is the same mistake
    fixed, _ = config_with(tmp_path, '  from: "Mountain', '  from: "Mountain')
    assert load_settings(fixed).email is not None


def model_nodes(data: object, here: tuple = ()) -> list[tuple]:
    """Paths of the mappings whose keys are settings (not names such as a digest's)."""
    found = []
    if isinstance(data, dict):
        if here[-1:] not in (("digests",), ("channels",)):
            found.append(here)
        for key, value in data.items():
            found += model_nodes(value, (*here, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += model_nodes(value, (*here, index))
    return found


def typo(key: str, how: int, at: int) -> str:
    at %= len(key)
    edits = (
        key[:at] + key[at + 1 :],  # a letter left out
        key[:at] + key[at] + key[at:],  # a letter twice
        key[:at] + key[at + 1 : at + 2] + key[at] + key[at + 2 :],  # two letters swapped
        key.replace("_", "-"),
        key.upper(),
        key + "_",  # a Python-style name
        key[:at] + "x" + key[at + 1 :],
    )
    return edits[how % len(edits)]


def node(data: object, path: tuple) -> Any:
    for step in path:
        data = data[step]  # type: ignore[index]
    return data


def renamed(mapping: dict, old: str, new: str) -> dict:
    return {new if key == old else key: value for key, value in mapping.items()}


EXAMPLE = parse_yaml(CONFIG.read_text(encoding="utf-8"), "pipeline.yaml").data
NODES = model_nodes(EXAMPLE)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    where=st.sampled_from(NODES),
    pick=st.integers(0, 50),
    how=st.integers(0, 6),
    at=st.integers(0, 30),
)
def test_the_key_an_unknown_key_hint_suggests_is_accepted_there(tmp_path, where, pick, how, at):
    data = json.loads(json.dumps(EXAMPLE))  # a copy; JSON is YAML 1.2, so it is a config too
    mapping = node(data, where)
    keys = list(mapping)
    original = keys[pick % len(keys)]
    wrong = typo(original, how, at)
    if wrong in mapping or not wrong:
        return
    target = node(data, where[:-1]) if where else None
    fresh = renamed(mapping, original, wrong)
    if target is None:
        data = fresh
    else:
        target[where[-1]] = fresh
    path = tmp_path / "config" / "pipeline.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    (problem,) = [
        p for p in caught.value.problems if p.message.startswith(f"unknown key `{wrong}`")
    ]
    if not problem.hint.startswith("did you mean `"):
        return
    suggested = problem.hint.split("`")[1]
    fixed = renamed(fresh, wrong, suggested)
    if target is None:
        data = fixed
    else:
        target[where[-1]] = fixed
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    try:
        load_settings(path)
    except ConfigError as exc:
        assert not [p for p in exc.problems if p.message.startswith("unknown key")], exc


@pytest.mark.parametrize(
    ("written", "line"),
    [
        ('time: "09:00"', 'did you mean `at`? (a time or list of times, e.g. "09:00")'),
        ('when: "09:00"', 'did you mean `at`? (a time or list of times, e.g. "09:00")'),
        ("interval: 1 hour", "did you mean `every`? (a number of minutes, hours or days, "
         "e.g. 15 minutes)"),
        ("every: 1 hour\n    tz: UTC", "did you mean `timezone`? (this schedule's time zone)"),
        ("every: 1 hour\n    Enabled: false",
         "did you mean `enabled`? (false pauses the schedule)"),
    ],
)  # fmt: skip
def test_a_word_people_use_for_a_key_is_answered_with_the_key(tmp_path, written, line):
    # `time:` suggested `timezone`, and "a schedule needs a time" said the same twice.
    (message,) = errors(tmp_path, ONE + f"    {written}\n")
    key = written.split("\n")[-1].strip().split(":")[0]
    assert message.endswith(f": unknown key `{key}` — {line}"), message


def test_an_action_in_other_words_is_answered_with_the_action(tmp_path):
    (message,) = errors(tmp_path, "schedules:\n  - name: a\n    do: publish\n    every: 1 hour\n")
    assert message.endswith(":3:9: `do`: 'publish' is not an action — did you mean `cycle`?")


# --- values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "hint"),
    [
        ("monday, thursday", "for several days write a list: `on: [monday, thursday]`"),
        ("Monday and Thursday", "for several days write a list: `on: [monday, thursday]`"),
        ("munday, fri", "for several days write a list: `on: [monday, fri]`"),
        ("munday", "did you mean `monday`?"),
    ],
)
def test_several_days_written_as_text_are_shown_as_a_list(tmp_path, written, hint):
    text = ONE + f'    at: "09:00"\n    on: {written}\n'
    path = tmp_path / "schedules.yaml"
    assert errors(tmp_path, text) == [f"{path}:5:9: `on`: '{written}' is not a day — {hint}"]


def test_several_times_written_as_text_are_shown_as_a_list(tmp_path):
    path = tmp_path / "schedules.yaml"
    assert errors(tmp_path, ONE + "    at: 9:00, 16:30\n") == [
        f"{path}:4:9: `at`: '9:00, 16:30' is not a time of day — for several times write a "
        'list: `at: ["09:00", "16:30"]`'
    ]


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ('"false"', "`enabled` is the text 'false' — drop the quotes: `enabled: false`"),
        ("'True'", "`enabled` is the text 'True' — drop the quotes: `enabled: true`"),
        ("no", "`enabled` is 'no' — write `enabled: false`; `no` is read as text, not as false"),
        ("on", "`enabled` is 'on' — write `enabled: true`; `on` is read as text, not as true"),
        ("1", "`enabled` is 1 — write true or false"),
    ],
)
def test_enabled_written_as_text_says_what_to_write(tmp_path, written, message):
    path = tmp_path / "schedules.yaml"
    assert errors(tmp_path, ONE + f"    every: 1 hour\n    enabled: {written}\n") == [
        f"{path}:5:14: {message}"
    ]


def test_every_and_grace_take_days(tmp_path):
    text = ONE + "    every: 2 days\n    grace: 1 day\n"
    result = run(tmp_path, text, "schedule", "--next", "2")
    assert result.exit_code == 0, result.output
    runs = result.stdout.splitlines()[2:]
    assert len(runs) == 2
    assert all("every 2 days (Asia/Kathmandu)" in run and " 00:00 +0545 " in run for run in runs)
    (schedule,) = load_schedules(tmp_path / "schedules.yaml", load_settings(CONFIG)).schedules
    assert schedule.grace == dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("written", "hint"),
    [
        ("2 weeks", "weeks are not a unit here: write `14 days`"),
        ("15 minuets", "did you mean `15 minutes`?"),
        ("1.5 hours", "write it as one whole number and a unit: `90 minutes`"),
        ("1 hour 30 minutes", "write it as one whole number and a unit: `90 minutes`"),
        ("1.5 days", "write it as one whole number and a unit: `36 hours`"),
        ("15", "add a unit: `15 minutes`, `15 hours` or `15 days`"),
        ("2 fortnights", "'fortnights' is not a unit: use minutes, hours or days"),
        ("0 minutes", "it must be at least 1 minute"),
        (
            "half an hour",
            "write a whole number and a unit (minutes, hours or days), e.g. 15 minutes or 2 hours",
        ),
    ],
)
def test_a_duration_that_is_not_one_says_which_units_work(tmp_path, written, hint):
    path = tmp_path / "schedules.yaml"
    shown = repr(written) if not written.isdigit() else written
    assert errors(tmp_path, ONE + f"    every: {written}\n") == [
        f"{path}:4:12: `every`: {shown} is not a duration — {hint}"
    ]


# --- time zones --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "zones"),
    [
        ("IST", "Asia/Kolkata (India), Europe/Dublin (Ireland) or Asia/Jerusalem (Israel)"),
        (
            "CST",
            "America/Chicago (US and Canada Central), Asia/Shanghai (China), America/Havana "
            "(Cuba) or Asia/Taipei (Taiwan)",
        ),
        ("aest", "Australia/Sydney (New South Wales, Victoria) or Australia/Brisbane (Queensland)"),
    ],
)
def test_an_abbreviation_lists_the_zones_it_may_mean(tmp_path, written, zones):
    # IST was answered "did you mean MST?", CST "did you mean UCT?".
    path = tmp_path / "schedules.yaml"
    assert errors(tmp_path, f"timezone: {written}\n" + ONE + "    every: 1 hour\n") == [
        f"{path}:1:11: `timezone`: '{written}' is an abbreviation, not a time zone — write "
        f"the IANA name of the place you mean: {zones}"
    ]


def test_an_abbreviation_in_the_config_is_answered_the_same_way(tmp_path):
    config, line = config_with(tmp_path, "  timezone: Asia/Kathmandu", "  timezone: EDT")
    assert errors(tmp_path, ONE + "    every: 1 hour\n", config=config) == [
        f"{config}:{line}:13: `site.timezone`: 'EDT' is an abbreviation, not a time zone — write "
        "the IANA name of the place you mean, e.g. America/New_York (US and Canada Eastern)"
    ]


def test_each_zone_listed_for_an_abbreviation_really_uses_it():
    # Judged by the time zone database itself, summer and winter over 30 years.
    for abbreviation, places in ZONE_ABBREVIATIONS.items():
        for zone, _ in places:
            tz = ZoneInfo(zone)
            names = {
                dt.datetime(year, month, 15, 12, tzinfo=tz).tzname()
                for year in range(1996, 2027)
                for month in (1, 4, 7, 10)
            }
            assert abbreviation in names, (abbreviation, zone, names)
        with pytest.raises(Exception):  # noqa: B017 - none of them is a zone name itself
            ZoneInfo(abbreviation)


# --- tabs --------------------------------------------------------------------------------


def test_a_block_indented_with_tabs_says_tabs(tmp_path):
    path = tmp_path / "schedules.yaml"
    text = "schedules:\n  - name: a\n\tdo: feeds\n\n\tevery: 1 hour\n  - name: b\n"
    assert errors(tmp_path, text) == [
        f"{path}:3:1: lines 3 to 5 are indented with tabs — YAML needs spaces: indent with "
        "spaces, not tabs"
    ]
    one = "schedules:\n  - name: a\n    do: feeds\n\t  every: 1 hour\n"
    assert errors(tmp_path, one) == [
        f"{path}:4:1: this line is indented with a tab — YAML needs spaces: indent with "
        "spaces, not tabs"
    ]
    listed = 'schedules:\n  - name: a\n    do: feeds\n    at: [\n\t"09:00",\n\t"16:00"]\n'
    assert errors(tmp_path, listed) == [
        f"{path}:5:1: lines 5 to 6 are indented with tabs — YAML needs spaces: indent with "
        "spaces, not tabs"
    ]


def test_a_config_indented_with_tabs_says_tabs(tmp_path):
    config, line = config_with(
        tmp_path, "  name: Mountain News\n  url:", "\tname: Mountain News\n\turl:"
    )
    assert errors(tmp_path, ONE + "    every: 1 hour\n", config=config) == [
        f"{config}:{line}:1: lines {line} to {line + 1} are indented with tabs — YAML needs "
        "spaces: indent with spaces, not tabs"
    ]


# --- check: warnings -------------------------------------------------------------------


def warnings(tmp_path: Path, schedules: str) -> list[str]:
    result = run(tmp_path, schedules)
    assert result.exit_code == 0, result.output
    return result.stderr.splitlines()


WEEKLY = "  - name: weekly\n    do: digest weekly-en\n    at: '09:00'\n    on: monday\n"
MONTHLY = "  - name: monthly\n    do: digest monthly-zh\n    cron: '0 9 1 * *'\n"


def test_the_example_project_checks_without_warnings(tmp_path):
    assert warnings(tmp_path, (REPO / "schedules.yaml").read_text(encoding="utf-8")) == []


def test_a_digest_no_schedule_sends_is_named(tmp_path):
    path = tmp_path / "schedules.yaml"
    assert warnings(tmp_path, "schedules:\n" + WEEKLY) == [
        f"warning: digest monthly-zh: no schedule in {path} sends it — add one with "
        "`do: digest monthly-zh`, or send it by hand with `pipeline digest send monthly-zh`"
    ]
    paused = MONTHLY + "    enabled: false\n"
    assert warnings(tmp_path, "schedules:\n" + WEEKLY + paused) == [
        f"warning: digest monthly-zh: no schedule in {path} sends it (`monthly` is paused) — "
        "add one with `do: digest monthly-zh`, or send it by hand with "
        "`pipeline digest send monthly-zh`"
    ]


def test_two_schedules_doing_the_same_thing_at_the_same_moment_are_named(tmp_path):
    path = tmp_path / "schedules.yaml"
    text = (
        "schedules:\n" + WEEKLY + MONTHLY  # lines 2-5, 6-8
        + "  - name: news\n    do: cycle\n    every: 15 minutes\n"  # 9
        + "  - name: morning-news\n    do: cycle\n    at: '09:30'\n"  # 12
        + "  - name: weekly-again\n    do: digest weekly-en\n    every: 1 hour\n"  # 15
    )  # fmt: skip
    found = warnings(tmp_path, text)
    assert len(found) == 2, found
    assert found[0].startswith(
        f"warning: {path}:12: `morning-news` and `news` (line 9) both do `cycle` at the same "
        "moment, first at "
    ) and found[0].endswith(
        " 09:30 (Asia/Kathmandu) — one is enough: remove one or change its time"
    )
    assert (
        found[1].startswith(
            f"warning: {path}:15: `weekly-again` and `weekly` (line 2) both do "
            "`digest weekly-en` at the same moment, first at "
        )
        and " 09:00 (Asia/Kathmandu) — " in found[1]
    )
    first = dt.date.fromisoformat(found[1].split("first at ")[1][:10])
    assert first.isoweekday() == 1  # a Monday


@pytest.mark.parametrize(
    ("second", "warned"),
    [
        # `news` runs on the hour in Kathmandu (+05:45): at :15 UTC
        ("    do: cycle\n    every: 1 hour\n    timezone: UTC\n", False),
        ("    do: cycle\n    every: 1 hour\n    timezone: Pacific/Chatham\n", True),  # +12:45
        ("    do: post archive\n    every: 1 hour\n", False),  # not the same thing
        ("    do: cycle\n    every: 1 hour\n    enabled: false\n", False),  # paused
        ("    do: cycle\n    cron: '7 9 * * *'\n", False),  # never on the hour
        ("    do: cycle\n    cron: '0 9 29 2 *'\n", True),  # a leap day, years away
    ],
)
def test_only_the_same_action_at_the_same_instant_is_warned_about(tmp_path, second, warned):
    text = "schedules:\n" + WEEKLY + MONTHLY + "  - name: news\n    do: cycle\n"
    text += "    every: 1 hour\n  - name: other\n" + second
    assert bool(warnings(tmp_path, text)) is warned


def test_post_and_post_with_every_channel_named_are_the_same_thing(tmp_path):
    text = "schedules:\n" + WEEKLY + MONTHLY
    text += "  - name: a\n    do: post\n    every: 1 hour\n"
    text += "  - name: b\n    do: post archive\n    at: '09:00'\n"
    (warning,) = warnings(tmp_path, text)
    assert "`b` and `a` (line 9) both do `post` at the same moment" in warning


# --- pipeline schedule into a file ------------------------------------------------------


def test_schedule_into_a_file_keeps_every_line_whole(tmp_path):
    name = "weekly-digest-for-the-english-language-subscribers-of-mountain-news"[:64]
    schedules = tmp_path / "schedules.yaml"
    schedules.write_text(
        f"schedules:\n  - name: {name}\n    do: digest weekly-en\n    at: ['09:00', '17:45']\n"
        "    on: [monday, thursday]\n    timezone: America/Argentina/ComodRivadavia\n" + MONTHLY,
        encoding="utf-8",
    )
    out = tmp_path / "runs.txt"
    with out.open("wb") as file:
        subprocess.run(
            [sys.executable, "-m", "pipeline", "--config", str(CONFIG), "--schedules",
             str(schedules), "schedule", "--next", "3"],
            stdout=file, check=True, env={**os.environ, "COLUMNS": "80"},
        )  # fmt: skip
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "Next 3 runs (schedules.yaml)"
    assert lines[1].split() == ["schedule", "does", "when", "local", "time", "UTC", "note"]
    runs = [line for line in lines[2:] if line.startswith(name + " ")]
    assert len(runs) == 3 and len(lines) == 2 + 3 + 3
    when = "Mondays, Thursdays at 09:00, 17:45 (America/Argentina/ComodRivadavia)"
    assert all(re.split(r"  +", line)[:3] == [name, "digest weekly-en", when] for line in runs)
    assert max(len(line) for line in lines) > 150  # nothing wrapped or cut at 80 columns
    assert not any("…" in line or "\x1b" in line for line in lines)


def test_schedule_on_a_terminal_is_still_a_table(tmp_path, monkeypatch):
    import pipeline.cli.tables

    monkeypatch.setattr(pipeline.cli.tables, "on_terminal", lambda: True)
    result = run(tmp_path, "schedules:\n" + WEEKLY, "schedule", "--next", "2")
    assert result.exit_code == 0, result.output
    assert "┃ schedule" in result.stdout and "│ weekly " in result.stdout
    assert result.stdout.count("│ weekly ") == 1  # named once, on its first run
