"""`pipeline status`: every schedule with its next run and last outcome, editions being
sent, deliveries that need a look, subscribers per digest and each channel's last
success and problem — on the example project after `run` and a digest send to the
outbox, on both databases. And `subscribers list` showing the status per digest."""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.cli.app import Project
from pipeline.cli.tables import Section, one_line, show
from pipeline.digest.editions import reopen
from pipeline.ledger import FAILED, UNCERTAIN, Ledger
from pipeline.runs import RunLog
from pipeline.schedules import load_schedules
from pipeline.settings import load_settings
from pipeline.store import Store
from pipeline.subscribers import BOUNCED, PENDING, SubscriberStore
from tests.conftest import invoke

NOW = dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.UTC)  # Monday 08:45 in Kathmandu
PEOPLE = (
    "email,name,language,topics\n"
    "pema@example.org,Pema Gyamtsho,en,Nepal\n"
    "anna@example.org,Anna Berg,en,\n"
    "sonam@example.org,Sonam,en,Bhutan\n"
    "li.wen@example.org,李文,zh-CN,China\n"
)
LONG_REASON = "422 Unprocessable: " + "the text is too long for this network; " * 8
ESCAPE = "\x1b[2J\x1b[31m"  # a server echoing terminal control sequences


def naive(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def at(moment: dt.datetime):
    return lambda: naive(moment)


@pytest.fixture
def busy(project, monkeypatch) -> tuple[Path, str]:
    """The example after `run` and `digest send weekly-en` (to the outbox), then: Anna
    leaves weekly-en, Sonam bounces, a sign-up waits for confirmation; a post is
    uncertain, two failed (one a week and more ago), a mail waits for a retry (so its
    edition is retrying); three schedules have run. The status clock reads NOW."""
    root = project()
    assert invoke(root, "run").exit_code == 0
    (root / "people.csv").write_text(PEOPLE, encoding="utf-8")
    assert invoke(root, "subscribers", "import", str(root / "people.csv")).exit_code == 0
    sent = invoke(root, "digest", "send", "weekly-en")
    assert sent.exit_code == 0, sent.output
    edition = re.search(r"edition (weekly-en@\S+): 3 sent", sent.output).group(1)
    settings = load_settings(root / "config" / "pipeline.yaml")
    store = Store(settings.state, settings.site.url)
    people = SubscriberStore(store.engine)
    assert people.leave(people.get("anna@example.org").id, "weekly-en")
    people.set_status(people.get("sonam@example.org").id, BOUNCED, "550 5.1.1 no such user")
    _, newcomer = people.add_or_update("new@example.org", language="en", status=PENDING)

    lost = Ledger(store.engine, clock=at(NOW - dt.timedelta(hours=2)))
    assert lost.claim("post:archive", "news/lost", "k-lost")
    lost.settle("post:archive", "news/lost", UNCERTAIN, detail=f"connection lost {ESCAPE}after")
    refused = Ledger(store.engine, clock=at(NOW - dt.timedelta(days=1)))
    assert refused.claim("post:archive", "news/refused", "k-refused")
    refused.settle("post:archive", "news/refused", FAILED, detail=LONG_REASON)
    old = Ledger(store.engine, clock=at(NOW - dt.timedelta(days=8)))
    assert old.claim("post:archive", "news/long-ago", "k-old")
    old.settle("post:archive", "news/long-ago", FAILED, detail="an old failure")
    later = Ledger(store.engine, clock=at(NOW - dt.timedelta(minutes=1)))
    claim = later.take(f"mail:{edition}", str(newcomer.id), "<m@news.example.org>")
    later.record(f"mail:{edition}", later.retry_later(claim, "451 4.7.1 try again later"))
    reopen(store.engine, edition)

    log = RunLog(store.engine)
    ran = log.start("check-news", "cycle", NOW - dt.timedelta(minutes=15))
    log.finish(ran, "ok", {"added": 2, "posted": 13})
    log.note("weekly-digest-en", "digest weekly-en", NOW - dt.timedelta(days=7), "missed", "down")
    failed = log.start("monthly-digest-zh", "digest monthly-zh", dt.datetime(2026, 11, 1, 1, 0))
    log.finish(failed, "failed", {}, "the SMTP server refused the login\nsecond line")
    store.close()
    monkeypatch.setattr(Project, "clock", lambda project: NOW)
    return root, edition


def rows(output: str, title: str) -> list[list[str]]:
    """The rows of one section of the plain status, each split on runs of 2+ spaces."""
    section = output.split(f"\n{title}", 1)[1].split("\n\n", 1)[0]
    return [re.split(r"  +", line.strip()) for line in section.splitlines()[1:]]


def test_status_shows_every_schedule_digest_and_channel(busy):
    root, edition = busy
    result = invoke(root, "status")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith(
        "Mountain News: pipeline status at Mon 23 Nov 2026 08:45 +0545 "
        "(Asia/Kathmandu time unless marked)\n"
    )
    settings = load_settings(root / "config" / "pipeline.yaml")
    schedules = load_schedules(root / "schedules.yaml", settings).schedules
    table = {row[0]: row for row in rows(out, "Schedules (schedules.yaml)")}
    assert table.pop("SCHEDULE") == [
        "SCHEDULE", "DOES", "WHEN", "NEXT RUN", "LAST RUN", "OUTCOME"
    ]  # fmt: skip
    assert sorted(table) == sorted(s.name for s in schedules)
    assert table["check-news"][3:] == [
        "Mon 23 Nov 09:00 (in 15 minutes)",
        "Mon 23 Nov 08:30 (15 minutes ago)",
        "ok",
    ]
    assert table["weekly-digest-en"][3:] == [
        "Mon 23 Nov 09:00 (in 15 minutes)",
        "Mon 16 Nov 08:45 (7 days ago)",
        "missed: down",
    ]
    # its own time zone, marked; only the first line of a long outcome
    assert table["monthly-digest-zh"][3:] == [
        "Tue 01 Dec 09:00 CST (in 7 days)",
        "Sun 01 Nov 09:00 CST (22 days ago)",
        "failed: the SMTP server refused the login",
    ]
    assert table["archive-afternoon"][3:] == ["paused (enabled: false)", "never", "—"]

    assert rows(out, "Digest editions being sent") == [
        ["EDITION", "STATUS", "MADE", "DELIVERIES"],
        [edition, "retrying", table_time(rows, out, edition), "1 pending, 3 sent"],
    ]
    title = "Deliveries: 1 uncertain, 1 failed in the last 7 days, 1 waiting for a retry"
    deliveries = rows(out, title)
    assert [r[:4] for r in deliveries[1:4]] == [
        ["uncertain", "post", "archive", "news/lost"],
        ["failed", "post", "archive", "news/refused"],
        ["waiting", "mail", edition, "new@example.org"],
    ]
    assert deliveries[3][5] == "Mon 23 Nov 08:49 (in 4 minutes)"
    assert "news/long-ago" not in out  # failed more than a week ago: history, not status
    assert "check and settle them: `pipeline deliveries uncertain`" in out

    audiences = rows(out, "Subscribers per digest")
    assert audiences[:3] == [
        ["DIGEST", "ACTIVE", "UNSUBSCRIBED", "BOUNCED", "PENDING"],
        ["weekly-en", "1", "1", "1", "1"],
        ["monthly-zh", "1", "0", "0", "0"],
    ]
    assert [a[0] for a in audiences[1:3]] == list(settings.digests)

    channels = {row[0]: row for row in rows(out, "Channels")}
    assert set(channels) == {"CHANNEL", *settings.channels, "email"}
    archive, email = channels["archive"], channels["email"]
    assert archive[1] == "file" and email[1] == "email (outbox)"
    assert re.fullmatch(r".* \(.* ago\) (news|blog)/\S+|.*\(in .*\) (news|blog)/\S+", archive[2])
    assert archive[3] == "Mon 23 Nov 06:45 (2 hours ago) uncertain: news/lost — " + (
        "connection lost \ufffd[2J\ufffd[31mafter"
    )
    assert f"{edition} to " in email[2]
    assert "waiting: " + f"{edition} to new@example.org — 451 4.7.1 try again later" in email[3]

    # piped: plain, whole and unwrapped, and no escape sequence reaches the terminal
    assert "\x1b" not in out
    failed = next(line for line in out.splitlines() if "news/refused" in line)
    assert failed.rstrip().endswith(LONG_REASON.strip())  # whole, on its one line
    assert len(failed) > 300


def table_time(rows_of, out: str, edition: str) -> str:
    """The MADE cell of the edition: made at the real time of the send, so only its shape
    is known."""
    made = next(r for r in rows_of(out, "Digest editions being sent") if r[0] == edition)[2]
    assert re.fullmatch(r"\w{3} \d\d \w{3}( \d{4})? \d\d:\d\d \((in )?[\w ]+( ago)?\)", made)
    return made


def test_status_json_has_the_documented_fields(busy):
    root, edition = busy
    result = invoke(root, "status", "--json")
    assert result.exit_code == 0
    status = json.loads(result.stdout)
    assert set(status) == {
        "now", "schedules", "schedule_problems", "editions_in_progress", "deliveries",
        "subscribers", "channels",
    }  # fmt: skip
    assert status["now"] == "2026-11-23T03:00:00+00:00"
    schedules = {s["name"]: s for s in status["schedules"]}
    assert set(schedules["check-news"]) == {
        "name", "does", "when", "timezone", "enabled", "next_run", "next_run_note", "last_run"
    }  # fmt: skip
    assert schedules["weekly-digest-en"]["next_run"] == "2026-11-23T09:00:00+05:45"
    assert schedules["monthly-digest-zh"]["next_run"] == "2026-12-01T09:00:00+08:00"
    assert schedules["archive-afternoon"]["enabled"] is False
    assert schedules["archive-afternoon"]["next_run"] is None
    assert schedules["archive-afternoon"]["last_run"] is None
    assert schedules["check-news"]["last_run"]["outcome"] == "ok"
    assert schedules["monthly-digest-zh"]["last_run"] == {
        "scheduled_for": "2026-11-01T01:00:00+00:00",
        "outcome": "failed",
        "finished_at": schedules["monthly-digest-zh"]["last_run"]["finished_at"],
        "detail": "the SMTP server refused the login\nsecond line",
    }
    [open_edition] = status["editions_in_progress"]
    assert open_edition["id"] == edition and open_edition["status"] == "retrying"
    assert open_edition["counts"] == {"pending": 1, "sent": 3}
    deliveries = status["deliveries"]
    assert deliveries["failed_within_days"] == 7
    assert [d["article"] for d in deliveries["failed"]] == ["news/refused"]
    assert deliveries["failed"][0]["detail"] == LONG_REASON
    [unsure] = deliveries["uncertain"]
    assert unsure["channel"] == "archive" and unsure["since"] == "2026-11-23T01:00:00+00:00"
    [waiting] = deliveries["waiting"]
    assert waiting == {
        "kind": "mail",
        "edition": edition,
        "address": "new@example.org",
        "state": "pending",
        "since": "2026-11-23T02:59:00+00:00",
        "next_attempt_at": "2026-11-23T03:04:00+00:00",
        "detail": "451 4.7.1 try again later; next attempt after 2026-11-23 03:04Z",
    }
    assert status["subscribers"] == [
        {"digest": "weekly-en", "active": 1, "unsubscribed": 1, "bounced": 1, "pending": 1},
        {"digest": "monthly-zh", "active": 1, "unsubscribed": 0, "bounced": 0, "pending": 0},
    ]
    channels = {c["name"]: c for c in status["channels"]}
    assert set(channels) == {"archive", "email"}
    assert channels["archive"]["last_success"]["state"] == "sent"
    assert channels["archive"]["last_success"]["detail"].startswith("file://")
    assert channels["archive"]["last_problem"]["item"] == "news/lost"
    assert channels["email"]["last_problem"]["state"] == "pending"


def test_a_broken_schedules_file_is_reported_and_the_rest_still_shown(busy):
    root, _ = busy
    (root / "schedules.yaml").write_text(
        "schedules:\n  - name: check-news\n    do: cycle\n    every: soon\n", encoding="utf-8"
    )
    result = invoke(root, "status")
    assert result.exit_code == 0
    assert "schedules.yaml does not load" in result.stdout
    assert re.search(r"schedules\.yaml:4:\d+: `every`: 'soon' is not a duration", result.stdout)
    assert "weekly-en   1" in result.stdout  # the other sections are all there
    problems = json.loads(invoke(root, "status", "--json").stdout)["schedule_problems"]
    assert len(problems) == 1 and "not a duration" in problems[0]


def test_a_new_project_has_an_empty_but_complete_status(project, monkeypatch):
    monkeypatch.setattr(Project, "clock", lambda project: NOW)
    root = project(with_examples=False)
    result = invoke(root, "status")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "no runs recorded yet: `pipeline serve` runs the schedules" in out
    assert "Digest editions being sent\n  none" in out
    title = "Deliveries: 0 uncertain, 0 failed in the last 7 days, 0 waiting for a retry"
    assert f"{title}\n  none" in out
    assert rows(out, "Subscribers per digest")[1] == ["weekly-en", "0", "0", "0", "0"]
    assert rows(out, "Channels")[1] == ["archive", "file", "never", "none"]


def test_on_a_terminal_a_long_reason_is_cut_to_one_line(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    section = Section("Channels", ("CHANNEL", "LAST PROBLEM"), wide=("LAST PROBLEM",))
    section.rows.append(("archive", LONG_REASON + ESCAPE))
    show([section], "status", terminal=True)
    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if "archive" in line]
    assert "422 Unprocessable" in line and line.rstrip().endswith("…")
    assert "\x1b[2J" not in out and max(len(line) for line in out.splitlines()) <= 80


@given(st.text())
def test_one_line_is_one_line_without_control_characters(text):
    shown = one_line(text)
    assert len(shown.splitlines()) <= 1
    assert not any(unicodedata.category(c) == "Cc" for c in shown)


# -- subscribers list: the status per digest ------------------------------------------------


def listed(root: Path, *args: str) -> dict[str, list[str]]:
    result = invoke(root, "subscribers", "list", *args)
    assert result.exit_code == 0, result.output
    return {line.split("\t")[0]: line.split("\t") for line in result.stdout.splitlines()}


def test_subscribers_list_shows_the_status_per_digest(busy):
    root, _ = busy
    everyone = listed(root)
    assert everyone["anna@example.org"][4:] == ["active", "weekly-en: unsubscribed"]
    assert everyone["pema@example.org"][4:] == ["active", "weekly-en: active"]
    assert everyone["sonam@example.org"][4:] == ["bounced", "weekly-en: bounced"]
    assert everyone["new@example.org"][4:] == ["pending", "weekly-en: pending"]
    assert everyone["li.wen@example.org"][4:] == ["active", "monthly-zh: active"]
    assert list(listed(root, "--status", "unsubscribed")) == ["anna@example.org"]
    assert list(listed(root, "--status", "active")) == ["li.wen@example.org", "pema@example.org"]
    assert list(listed(root, "--status", "bounced")) == ["sonam@example.org"]
    assert list(listed(root, "--digest", "monthly-zh")) == ["li.wen@example.org"]
    both = listed(root, "--digest", "weekly-en", "--status", "unsubscribed")
    assert list(both) == ["anna@example.org"]
    assert listed(root, "--digest", "monthly-zh", "--status", "unsubscribed") == {}
    unknown = invoke(root, "subscribers", "list", "--digest", "weekly")
    assert unknown.exit_code == 2 and "unknown digest 'weekly'" in unknown.output
