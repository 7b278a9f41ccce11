"""The Corrections section of a digest: the next edition lists the articles an earlier
edition carried that were corrected since the previous edition, once; ``corrections:
false`` leaves it out. Judged by the messages the SMTP server on 127.0.0.1 receives."""

from __future__ import annotations

import datetime as dt

from pipeline.digest.sending import Digests
from pipeline.mailer import open_transport
from pipeline.model import Item, Scan
from pipeline.settings import load_settings
from pipeline.store import Store
from tests.test_digest_window import MONDAY, newsroom  # noqa: F401 (a fixture)

HEADING = "Corrections"


def edition(root, inbox, make_article, at: dt.datetime, changes: list[tuple[str, str, int]]):
    """Store ``changes`` (slug, title, days after MONDAY it was published and written),
    then send the weekly edition at ``at``; the first message's text and HTML."""
    handler, _ = inbox
    handler.messages.clear()
    settings = load_settings(root / "config" / "pipeline.yaml")
    store = Store(settings.state, settings.site.url)
    try:
        for slug, title, days in changes:
            when = MONDAY + dt.timedelta(days=days)
            article = make_article(
                id=f"news/{slug}",
                url=f"https://news.example.org/news/{slug}/",
                title=title,
                published=when,
            )
            store.apply("news", Scan(changed=[Item(f"{slug}.md", title, article)]), now=when)
        Digests(
            settings,
            store,
            transport=lambda: open_transport(settings.email),
            clock=lambda: at.astimezone(dt.UTC),
            sleep=lambda seconds: None,
        ).send("weekly-en", at)
    finally:
        store.close()
    message = handler.messages[0]
    return message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()


def test_the_next_edition_lists_the_corrected_articles_once(newsroom, inbox, make_article):  # noqa: F811
    text, _ = edition(newsroom, inbox, make_article, MONDAY, [("first", "Story first", -2)])
    assert HEADING not in text

    changes = [("first", "Story first, corrected", 1), ("second", "Story second", 2)]
    text, html = edition(newsroom, inbox, make_article, MONDAY + dt.timedelta(days=7), changes)
    section = text[text.index(HEADING) :]
    assert section.splitlines()[:5] == [
        HEADING,
        "",
        "These articles from earlier editions have been corrected since:",
        "",
        "- Story first, corrected",
    ]
    assert "https://news.example.org/news/first/" in section
    assert text.index("Story second") < text.index(HEADING)  # after the new articles
    assert f">{HEADING}</h2>" in html
    assert '<a class="dg-link" href="https://news.example.org/news/first/"' in html

    later = [("third", "Story third", 9)]
    text, html = edition(newsroom, inbox, make_article, MONDAY + dt.timedelta(days=14), later)
    assert HEADING not in text and HEADING not in html  # listed once, in the edition after


def test_corrections_false_leaves_the_section_out(newsroom, inbox, make_article):  # noqa: F811
    config = newsroom / "config" / "pipeline.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace("    max_items: 8\n", "    max_items: 8\n    corrections: false\n", 1)
    )
    edition(newsroom, inbox, make_article, MONDAY, [("first", "Story first", -2)])
    changes = [("first", "Story first, corrected", 1), ("second", "Story second", 2)]
    text, html = edition(newsroom, inbox, make_article, MONDAY + dt.timedelta(days=7), changes)
    assert HEADING not in text and HEADING not in html and "Story second" in text
