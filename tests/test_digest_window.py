"""Which articles an edition takes: the first edition of a digest carries the last
``max_age_days`` (not the archive); later ones what was published since the previous
edition people got. Judged by what the SMTP server on 127.0.0.1 receives."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipeline.digest.sending import Digests
from pipeline.mailer import open_transport
from pipeline.settings import load_settings
from pipeline.store import Store
from tests.conftest import PEOPLE, invoke, write_article

NPT = dt.timezone(dt.timedelta(hours=5, minutes=45))  # the example site's Asia/Kathmandu
MONDAY = dt.datetime(2026, 11, 23, 9, 0, tzinfo=NPT)  # the first scheduled edition


@pytest.fixture
def newsroom(project, inbox):
    """The example project without its articles, mailing the test SMTP server, the
    English digest with ``max_age_days`` (default 7) and ``min_items`` as a test sets."""
    _, port = inbox
    root = project(with_examples=False)
    config = root / "config" / "pipeline.yaml"
    smtp = f"  delivery: smtp\n  smtp:\n    host: 127.0.0.1\n    port: {port}\n"
    smtp += "    security: none\n  # "
    text = config.read_text(encoding="utf-8").replace("  delivery: outbox ", smtp)
    start = text.index("    max_age_days: 3650")  # the example's long window: back to 7 days
    text = text[:start] + text[text.index("\n", start) + 1 :]
    config.write_text(text, encoding="utf-8")
    (root / "people.csv").write_text(PEOPLE, encoding="utf-8")
    assert invoke(root, "subscribers", "import", str(root / "people.csv")).exit_code == 0
    return root


def publish(root: Path, slug: str, when: dt.datetime) -> None:
    """An English news article titled after its slug, then an ingest (so an article
    dated in the past but written now arrives late, as a back-dated one does)."""
    front = f"title: Story {slug}\ndate: {when.isoformat()}\nauthor: Desk"
    write_article(root / "examples" / "site" / "news", f"{slug}.md", front)
    assert invoke(root, "ingest").exit_code == 0


def send(root: Path, at: dt.datetime, inbox) -> tuple[list[str], object]:
    """Send the scheduled weekly edition at ``at`` (the clock reads ``at`` too); the
    stories the first recipient's message carries, and the report."""
    handler, _ = inbox
    handler.messages.clear()
    settings = load_settings(root / "config" / "pipeline.yaml")
    store = Store(settings.state, settings.site.url)
    try:
        digests = Digests(
            settings,
            store,
            transport=lambda: open_transport(settings.email),
            clock=lambda: at.astimezone(dt.UTC),
            sleep=lambda seconds: None,
        )
        report = digests.send("weekly-en", at)
    finally:
        store.close()
    if not handler.messages:
        return [], report
    text = handler.messages[0].get_body(("plain",)).get_content()
    return sorted(word for word in text.split() if word.startswith("s-")), report


def test_the_first_edition_carries_the_last_seven_days_not_the_archive(newsroom, inbox):
    publish(newsroom, "s-archive", dt.datetime(2024, 5, 2, 9, 0, tzinfo=NPT))
    publish(newsroom, "s-too-old", MONDAY - dt.timedelta(days=7, minutes=1))
    publish(newsroom, "s-edge", MONDAY - dt.timedelta(days=7))  # exactly 7 days: in
    publish(newsroom, "s-week", MONDAY - dt.timedelta(days=3))
    stories, report = send(newsroom, MONDAY, inbox)
    assert stories == ["s-edge", "s-week"]
    assert report.sent and report.edition.detail is None  # the archive is not "left out"


def test_the_window_and_preview_agree(newsroom):
    publish(newsroom, "s-old", MONDAY - dt.timedelta(days=30))
    publish(newsroom, "s-new", MONDAY - dt.timedelta(days=1))
    settings = load_settings(newsroom / "config" / "pipeline.yaml")
    store = Store(settings.state, settings.site.url)
    try:
        digests = Digests(
            settings,
            store,
            transport=lambda: None,  # type: ignore[arg-type, return-value]
            clock=lambda: MONDAY,
            sleep=lambda seconds: None,
        )
        assert digests.window_start("weekly-en", MONDAY) == MONDAY - dt.timedelta(days=7)
        assert [a.title for a in digests.next_articles("weekly-en")] == ["Story s-new"]
    finally:
        store.close()


def test_later_editions_take_what_came_since_and_late_arrivals_no_older_than_max_age(
    newsroom, inbox
):
    publish(newsroom, "s-first", MONDAY - dt.timedelta(days=2))
    assert send(newsroom, MONDAY, inbox)[0] == ["s-first"]
    next_monday = MONDAY + dt.timedelta(days=7)
    publish(newsroom, "s-new", MONDAY + dt.timedelta(days=2))
    publish(newsroom, "s-late", MONDAY - dt.timedelta(days=1))  # back-dated, ingested late
    publish(newsroom, "s-stale", MONDAY - dt.timedelta(days=8))  # back-dated too far
    assert send(newsroom, next_monday, inbox)[0] == ["s-late", "s-new"]


def test_an_edition_takes_what_arrived_too_late_for_the_previous_one(newsroom, inbox):
    """Sent every 30 days with the default 7-day window: the third edition reaches back
    to the first one, for what the second was due to carry but never saw."""
    publish(newsroom, "s-first", MONDAY - dt.timedelta(days=1))
    assert send(newsroom, MONDAY, inbox)[0] == ["s-first"]
    publish(newsroom, "s-second", MONDAY + dt.timedelta(days=29))
    assert send(newsroom, MONDAY + dt.timedelta(days=30), inbox)[0] == ["s-second"]
    publish(newsroom, "s-third", MONDAY + dt.timedelta(days=59))
    publish(newsroom, "s-missed", MONDAY + dt.timedelta(days=10))  # its feed was down
    publish(newsroom, "s-before", MONDAY - dt.timedelta(days=1, hours=1))  # before the first
    assert send(newsroom, MONDAY + dt.timedelta(days=60), inbox)[0] == ["s-missed", "s-third"]


def test_a_skipped_edition_widens_the_next_window_back_to_the_last_sent_one(newsroom, inbox):
    config = newsroom / "config" / "pipeline.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("    max_items: 8\n", "    max_items: 8\n    min_items: 2\n", 1))
    publish(newsroom, "s-one", MONDAY - dt.timedelta(days=2))
    publish(newsroom, "s-two", MONDAY - dt.timedelta(days=1))
    assert send(newsroom, MONDAY, inbox)[0] == ["s-one", "s-two"]
    publish(newsroom, "s-three", MONDAY + dt.timedelta(days=1))
    stories, report = send(newsroom, MONDAY + dt.timedelta(days=7), inbox)
    assert stories == [] and report.skipped == "1 new articles; min_items is 2"
    publish(newsroom, "s-four", MONDAY + dt.timedelta(days=10))
    # s-three is 13 days old now, but nobody got it: the window reaches back to MONDAY
    assert send(newsroom, MONDAY + dt.timedelta(days=14), inbox)[0] == ["s-four", "s-three"]


def test_articles_past_max_items_are_passed_over_and_counted(newsroom, inbox):
    config = newsroom / "config" / "pipeline.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("    max_items: 8\n", "    max_items: 2\n", 1))
    publish(newsroom, "s-ancient", MONDAY - dt.timedelta(days=400))
    for day in (1, 2, 3):
        publish(newsroom, f"s-day{day}", MONDAY - dt.timedelta(days=day))
    stories, report = send(newsroom, MONDAY, inbox)
    assert stories == ["s-day1", "s-day2"]
    # only the one in the window is passed over: the archive was never a candidate
    assert report.edition.detail == "1 older articles left out; max_items is 2"
    assert "1 older articles left out" in invoke(newsroom, "history").output
    # passed over means dealt with: the next edition does not bring s-day3 back
    publish(newsroom, "s-next", MONDAY + dt.timedelta(days=1))
    assert send(newsroom, MONDAY + dt.timedelta(days=7), inbox)[0] == ["s-next"]


@pytest.mark.parametrize("days", [0, 3661, "7 days"])
def test_max_age_days_is_a_bounded_whole_number(newsroom, days):
    config = newsroom / "config" / "pipeline.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("    max_items: 8\n", f"    max_age_days: {days}\n", 1))
    result = invoke(newsroom, "check")
    assert result.exit_code == 2
    assert "max_age_days" in result.output + result.stderr
