"""`pipeline history`: one timeline, newest first, under a header, with filters that each
narrow it (--kind, --since, --digest, --channel), --json, and a --limit where 0 means all.
A skipped edition says why. On the example project after `run` and digest sends to the
outbox, on both databases."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.ledger import SENT, Ledger
from pipeline.runs import RunLog
from pipeline.settings import load_settings
from pipeline.store import Store
from pipeline.timeline import parse_since
from tests.conftest import invoke

PEOPLE = (
    "email,name,language,topics\n"
    "pema@example.org,Pema Gyamtsho,en,Nepal\n"
    "anna@example.org,Anna Berg,en,\n"
    "sonam@example.org,Sonam,en,Bhutan\n"
)  # nobody reads Chinese: monthly-zh has no recipients


@pytest.fixture
def done(project) -> Path:
    """`run` (13 posts), weekly-en sent (3 mails) then skipped (nothing new), monthly-zh
    skipped (nobody to send it to); two runs of `pipeline serve` recorded now, and a
    missed run and a post from ten days ago."""
    root = project()
    assert invoke(root, "run").exit_code == 0
    (root / "people.csv").write_text(PEOPLE, encoding="utf-8")
    assert invoke(root, "subscribers", "import", str(root / "people.csv")).exit_code == 0
    for name in ("weekly-en", "weekly-en", "monthly-zh"):
        assert invoke(root, "digest", "send", name).exit_code == 0
    settings = load_settings(root / "config" / "pipeline.yaml")
    store = Store(settings.state, settings.site.url)
    now = dt.datetime.now(dt.UTC)
    log = RunLog(store.engine)
    cycle = log.start("check-news", "cycle", now - dt.timedelta(minutes=5))
    log.finish(cycle, "ok", {"added": 0, "posted": 0})
    digest = log.start("weekly-digest-en", "digest weekly-en", now - dt.timedelta(minutes=4))
    log.finish(digest, "ok", {"sent": 0}, "weekly-en@…: skipped — 0 new articles")
    long_ago = now - dt.timedelta(days=10)
    log.note("check-news", "cycle", long_ago, "missed", "the service was down")
    old = Ledger(store.engine, clock=lambda: long_ago.replace(tzinfo=None))
    assert old.claim("post:archive", "news/long-ago", "k-old")
    old.settle("post:archive", "news/long-ago", SENT, remote_url="file:///old")
    store.close()
    return root


def entries(root: Path, *args: str) -> list[list[str]]:
    """The timeline's lines (not the header, not the lines under an entry) as [when,
    kind, name, state, detail]."""
    result = invoke(root, "history", *args)
    assert result.exit_code == 0, result.output
    if not result.stdout:
        return []
    header, *lines = result.stdout.splitlines()
    assert re.split(r"  +", header) == ["WHEN (UTC)", "KIND", "NAME", "STATE", "DETAIL"]
    return [re.split(r"  +", line, maxsplit=4) for line in lines if not line.startswith(" ")]


def test_one_timeline_newest_first_under_a_header_with_a_limit(done):
    everything = entries(done, "--limit", "0")
    kinds = [e[1] for e in everything]
    assert kinds.count("run") == 3 and kinds.count("post") == 14 and kinds.count("edition") == 3
    assert "mail" not in kinds  # one line per recipient only when asked for
    times = [e[0] for e in everything]
    assert times == sorted(times, reverse=True)
    assert everything[-1][:4] == [everything[-1][0], "run", "check-news", "missed"]
    # the header's columns line up with the entries'
    output = invoke(done, "history", "--limit", "0").stdout.splitlines()
    lines = [line for line in output if not line.startswith(" ")]
    column = lines[0].index("KIND")
    assert all(line[column - 2 : column] == "  " for line in lines)
    assert {line[column:].split()[0] for line in lines} == {"KIND", "run", "post", "edition"}
    # under an entry, what it said: here, the skipped digest run's note
    assert "    weekly-en@…: skipped — 0 new articles" in output

    # a skipped edition says why
    editions = entries(done, "--kind", "edition")
    skipped = {e[2].partition("@")[0]: e for e in editions if e[3] == "skipped"}
    assert skipped["weekly-en"][4] == "0 new articles; min_items is 1"  # no articles
    assert skipped["monthly-zh"][4] == "no active subscribers in its audience"  # no recipients
    [sent] = [e for e in editions if e[3] == "sent"]
    assert sent[4] == "3 sent"

    # --limit: 0 is all; a limit that leaves some out says so
    unlimited = invoke(done, "history", "--limit", "0")
    assert "nothing has been posted" not in unlimited.output
    assert "--limit 0 shows all" not in unlimited.stderr
    assert len(entries(done, "--limit", "0")) == 20
    three = invoke(done, "history", "--limit", "3")
    assert len(entries(done, "--limit", "3")) == 3
    assert "the newest 3 shown; --limit 0 shows all" in three.stderr
    assert len(entries(done)) == 20  # the default (50) holds them all: nothing said
    assert "--limit 0" not in invoke(done, "history").stderr


def test_each_filter_narrows_the_timeline(done):
    everything = entries(done, "--limit", "0")
    every_line = {tuple(e) for e in everything}

    def narrowed(*args: str) -> list[list[str]]:
        found = entries(done, "--limit", "0", *args)
        assert (found and len(found) < len(everything)) or args[:2] == ("--kind", "mail"), args
        assert args[:2] == ("--kind", "mail") or {tuple(e) for e in found} <= every_line, args
        return found

    assert {e[1] for e in narrowed("--kind", "run")} == {"run"}
    assert {e[1] for e in narrowed("--kind", "post")} == {"post"}
    assert {e[1] for e in narrowed("--kind", "edition")} == {"edition"}
    both = narrowed("--kind", "run", "--kind", "edition")
    assert {e[1] for e in both} == {"run", "edition"} and len(both) == 6
    mails = narrowed("--kind", "mail")
    assert sorted(e[2] for e in mails) == [
        "anna@example.org", "pema@example.org", "sonam@example.org"
    ]  # fmt: skip
    assert all(e[3] == "sent" and e[4].startswith("weekly-en@") for e in mails)

    weekly = narrowed("--digest", "weekly-en")
    assert sorted((e[1], e[2].partition("@")[0]) for e in weekly) == [
        ("edition", "weekly-en"), ("edition", "weekly-en"), ("run", "weekly-digest-en")
    ]  # fmt: skip
    assert [e[1] for e in narrowed("--digest", "monthly-zh")] == ["edition"]
    assert len(entries(done, "--kind", "mail", "--digest", "weekly-en")) == 3
    assert entries(done, "--kind", "mail", "--digest", "monthly-zh") == []

    archive = narrowed("--channel", "archive")
    assert sorted({(e[1], e[2]) for e in archive}) == [("post", "archive"), ("run", "check-news")]
    assert len(archive) == 14 + 2  # its posts, and the cycles (they post to every channel)
    either = narrowed("--channel", "archive", "--digest", "monthly-zh")
    assert len(either) == len(archive) + 1

    recent = narrowed("--since", "7d")
    assert len(recent) == len(everything) - 2  # not the missed run, not the old post
    assert "news/long-ago" not in {e[4].split()[0] for e in recent}
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    nothing = invoke(done, "history", "--since", tomorrow)
    assert nothing.exit_code == 0 and nothing.stdout == ""
    assert "nothing matches these filters" in nothing.stderr
    month_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=30)).date().isoformat()
    assert entries(done, "--limit", "0", "--since", month_ago) == everything


def test_json_lists_the_entries_with_their_fields(done):
    result = invoke(done, "history", "--json", "--limit", "0", "--kind", "run", "--kind", "post",
                    "--kind", "edition", "--kind", "mail")  # fmt: skip
    assert result.exit_code == 0
    found = json.loads(result.stdout)
    assert len(found) == 23
    common = {"when", "kind", "name", "state", "detail"}
    fields = {
        "run": {"schedule", "action", "scheduled_for", "started_at", "finished_at", "counts",
                "notes"},
        "post": {"channel", "article", "remote_url", "attempts", "problem", "next_attempt_at"},
        "edition": {"digest", "edition", "counts", "note", "not_sent"},
        "mail": {"digest", "edition", "address", "attempts", "problem", "next_attempt_at"},
    }  # fmt: skip
    for entry in found:
        assert set(entry) == common | fields[entry["kind"]], entry
    times = [dt.datetime.fromisoformat(e["when"]) for e in found]
    assert times == sorted(times, reverse=True) and all(t.tzinfo for t in times)
    run = next(e for e in found if e["name"] == "weekly-digest-en")
    assert run["counts"] == {"sent": 0} and run["notes"] == [
        "weekly-en@…: skipped — 0 new articles"
    ]
    skipped = [e for e in found if e["kind"] == "edition" and e["state"] == "skipped"]
    assert {e["digest"]: e["note"] for e in skipped} == {
        "weekly-en": "0 new articles; min_items is 1",
        "monthly-zh": "no active subscribers in its audience",
    }
    old = next(e for e in found if e["name"] == "archive" and e["article"] == "news/long-ago")
    assert old["remote_url"] == "file:///old" and old["when"].startswith(
        (dt.datetime.now(dt.UTC) - dt.timedelta(days=10)).date().isoformat()
    )
    assert json.loads(invoke(done, "history", "--json", "--since", "2999-01-01").stdout) == []


def test_an_empty_history_and_bad_filters(project):
    root = project(with_examples=False)
    empty = invoke(root, "history", "--limit", "0")
    assert empty.exit_code == 0 and "nothing has been posted or sent yet" in empty.stderr
    bad = invoke(root, "history", "--since", "last week")
    assert bad.exit_code == 2
    assert "'last week' is neither a duration nor a date; write e.g. 7d" in bad.stderr
    assert invoke(root, "history", "--kind", "posts").exit_code == 2
    typo = invoke(root, "history", "--channel", "archiv")
    assert typo.exit_code == 0
    assert "no channel 'archiv' is configured (channels: archive)" in typo.stderr


NOW = dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.UTC)


@given(st.integers(1, 999_999), st.sampled_from(["m", "min", "minutes", "h", "hour", "d",
                                                  "days", "w", "week"]), st.booleans())  # fmt: skip
def test_a_duration_reaches_back_from_now(amount, unit, spaced):
    unit_of = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[unit[0]]
    text = f"{amount}{' ' if spaced else ''}{unit.upper() if amount % 2 else unit}"
    try:
        expected = NOW - dt.timedelta(**{unit_of: amount})
    except OverflowError:
        with pytest.raises(ValueError, match="before the year 1"):
            parse_since(text, NOW)
        return
    assert parse_since(text, NOW) == expected


@given(st.text(max_size=40))
def test_any_since_is_a_time_or_a_clear_error(text):
    try:
        moment = parse_since(text, NOW)
    except ValueError as exc:
        assert "write e.g." in str(exc) or "before the year 1" in str(exc)
    else:
        assert moment.tzinfo is not None


def test_a_date_is_midnight_utc_and_a_time_keeps_its_offset():
    assert parse_since("2026-11-20", NOW) == dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    assert parse_since("2026-11-20T09:00", NOW) == dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC)
    nepal = parse_since("2026-11-20T09:00+05:45", NOW)
    assert nepal == dt.datetime(2026, 11, 20, 3, 15, tzinfo=dt.UTC)
