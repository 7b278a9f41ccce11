"""Placeholder injection: article content (any field, from any source) is never read as
a personalisation placeholder. An article titled ``%%IF_NAME%%`` once swallowed the
greeting, every later article, the unsubscribe link and the footer of subscribers
without a name (and of the web archive), and ``%%UNSUBSCRIBE_URL%%`` in a summary
showed each recipient their own unsubscribe link. Judged as the reader gets it: the
HTML through an HTML parser (as a mail client or browser reads it), the text part as
text, the mail from the raw bytes the SMTP server received."""

from __future__ import annotations

import datetime as dt
import html as htmlmod
import re
import secrets
from pathlib import Path
from typing import Any

import lxml.html
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.digest.render import SEAL, RenderedEdition, personalise, render_edition
from pipeline.model import Article, Translation
from tests.conftest import invoke, write_article
from tests.rawmail import inbox as inbox  # the raw-bytes inbox, for mail_project
from tests.rawmail import split
from tests.test_digest_render import SITE, URL, VIEW, digest

KEY = "0123456789abcdef0123456789abcdef"  # a forger's guess at a key
PLACEHOLDERS = [
    "%%UNSUBSCRIBE_URL%%",
    "%%NAME%%",
    "%%VIEW_URL%%",
    "%%IF_NAME%%",
    "%%IF_VIEW_URL%%",
    "%%ELSE%%",
    "%%END%%",
    "%%IF_NAME%%named%%ELSE%%nameless%%END%%",
    f"%%IF_NAME.{KEY}%%",
    f"%%UNSUBSCRIBE_URL.{KEY}%%",
    f"{SEAL}{KEY}-->",
    "%%",
]
# Shown to the reader as written (the rest is checked for not disturbing the digest).
SHOWN = ("title", "summary", "author", "image_alt")
FIELDS = (*SHOWN, "tags", "body_html", "url", "translation_title")
NAME = "Zoë Quill"
POSTAL = "Kathmandu, Nepal"


def edition_with(field: str, payload: str) -> tuple[RenderedEdition, Article]:
    """An edition of two articles, the payload in ``field`` of the first one; the second
    article follows, so a swallowed remainder of the digest would show."""
    values: dict[str, Any] = {
        "id": "news/payload",
        "source": "news",
        "origin": "examples/site/news/payload.md",
        "url": "https://news.example.org/news/payload/",
        "title": "A plain title",
        "authors": ("Pema Gyamtsho",),
        "published": dt.datetime(2026, 11, 3, 9, 0, tzinfo=dt.UTC),
        "language": "en",
        "section": "news",
        "summary": "A plain summary.",
        "body_html": "<p>Body.</p>",
        "read_minutes": 2,
        "image": "https://news.example.org/media/payload.jpg",
        "image_alt": "A plain alt text",
        "translations": (
            Translation(
                id="news/payload-zh",
                language="zh-CN",
                url="https://news.example.org/news/payload-zh/",
                title="中文标题",
            ),
        ),
    }
    if field == "author":
        values["authors"] = (payload,)
    elif field == "tags":
        values["tags"] = (payload,)
    elif field == "body_html":
        values["body_html"] = f"<p>{htmlmod.escape(payload)}</p>"
    elif field == "url":
        values["url"] = f"https://news.example.org/news/{payload}/"
    elif field == "translation_title":
        values["translations"] = (values["translations"][0].model_copy(update={"title": payload}),)
    else:
        values[field] = payload
    first = Article.model_validate(values)
    second = first.model_copy(
        update={
            "id": "news/after",
            "url": "https://news.example.org/news/after/",
            "title": "The article after",
            "published": dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC),
            "summary": "It comes after the payload.",
            "image": None,
            "image_alt": None,
        }
    )
    return render_edition(digest(), SITE, [first, second]), first


def assert_intact(rendered: RenderedEdition, article: Article, field: str, payload: str) -> None:
    """For a subscriber with a name and one without, with and without a view link: the
    payload reads as written, and the greeting, the article after it, the unsubscribe
    link and the footer are all there, each recipient value exactly where the template
    puts it."""
    key = rendered.html.rpartition(SEAL)[2].removesuffix("-->")
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    for name in (NAME, ""):
        for view in (VIEW, None):
            html, text = personalise(rendered, unsubscribe_url=URL, name=name, view_url=view)
            page = lxml.html.document_fromstring(html)
            shown = page.text_content()
            links = [(a.text_content().strip(), a.get("href")) for a in page.iter("a")]
            alts = [img.get("alt") for img in page.iter("img")]
            # The recipient's own values: where the template has them, nowhere else.
            assert [href for label, href in links if label == "Unsubscribe"] == [URL]
            assert html.count(htmlmod.escape(URL)) == 1 and text.count(URL) == 1
            assert f"\nUnsubscribe: {URL}\n" in text
            views = [href for label, href in links if label == "View in your browser"]
            assert views == ([VIEW] if view else [])
            assert text.count(VIEW) == (1 if view else 0)
            greeting = f"Hello {name}," if name else "Hello,"
            assert greeting in text and greeting in shown
            assert text.count(NAME) == shown.count(NAME) == (1 if name else 0)
            # The rest of the digest and its footer.
            for part in (text, shown):
                assert "The article after" in part and "It comes after the payload." in part
                assert "GPO Box 3226" in part and POSTAL in part
            assert text.endswith(f"{POSTAL}\n") and html.endswith("</html>")
            assert key not in html and key not in text
            # The content as written.
            if field in ("title", "summary", "author"):
                assert payload in text and payload in shown
            if field == "image_alt":
                assert payload in alts
            if field == "url":
                assert ("A plain title", article.url) in links
                assert f"Read more: {article.url}\n" in text


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("placeholder", PLACEHOLDERS)
def test_every_placeholder_in_every_field_is_just_text(field: str, placeholder: str) -> None:
    payload = f"Before {placeholder} after"
    rendered, article = edition_with(field, payload)
    assert_intact(rendered, article, field, payload)


PIECE = st.one_of(
    st.sampled_from(PLACEHOLDERS),
    st.builds(lambda k: f"%%IF_NAME.{k}%%", st.text("0123456789abcdef", min_size=32, max_size=32)),
    st.text(
        st.one_of(
            # No backslash: mrml writes attribute values escaped Rust-style (alt="a\\b"
            # for a\b), a fault of its own, apart from placeholders.
            st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="\\"),
            st.sampled_from("冰川éß"),
        ),
        max_size=12,
    ),
)
PAYLOAD = (
    st.lists(PIECE, min_size=1, max_size=6)
    .map(lambda pieces: " ".join("".join(pieces).split())[:150].strip())  # tags: ≤ 200
    .filter(bool)
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(FIELDS), payload=PAYLOAD)
def test_no_content_reaches_personalisation(field: str, payload: str) -> None:
    if field == "url":  # a path segment: the model makes it a URI, the check follows it
        payload = payload.replace("/", "").replace("?", "").replace("#", "") or "x"
    rendered, article = edition_with(field, payload)
    assert_intact(rendered, article, field, payload)


def test_each_rendering_has_its_own_key() -> None:
    first, _ = edition_with("title", "t")
    second, _ = edition_with("title", "t")
    assert first.html.rpartition(SEAL)[2] != second.html.rpartition(SEAL)[2]


def test_an_edition_stored_before_keys_is_still_filled() -> None:
    """Editions rendered by an earlier version, still being sent after an upgrade, keep
    their unsubscribe link and greeting."""
    greeting = "%%IF_NAME%%Hello %%NAME%%,%%ELSE%%Hello,%%END%%"
    old = RenderedEdition(
        subject="s",
        preheader="",
        html=f'<div>{greeting}</div><a href="%%UNSUBSCRIBE_URL%%">Unsubscribe</a>'
        '%%IF_VIEW_URL%% <a href="%%VIEW_URL%%">View</a>%%END%%',
        text=f"{greeting}\nUnsubscribe: %%UNSUBSCRIBE_URL%%\n",
    )
    html, text = personalise(old, unsubscribe_url=URL, name=NAME, view_url=None)
    assert html == f'<div>Hello {NAME},</div><a href="{htmlmod.escape(URL)}">Unsubscribe</a>'
    assert text == f"Hello {NAME},\nUnsubscribe: {URL}\n"


def test_a_forged_seal_in_content_does_not_take_over() -> None:
    forged = f"{SEAL}{secrets.token_hex(16)}-->"
    rendered, article = edition_with("summary", f"x %%IF_NAME%% {forged}")
    assert rendered.html.endswith("-->") and not rendered.html.endswith(forged)
    assert_intact(rendered, article, "summary", f"x %%IF_NAME%% {forged}")


# -- end to end: a Markdown article, the mail the SMTP server receives, the web archive ----

HOSTILE = {
    "title": "%%IF_NAME%% Glaciers %%UNSUBSCRIBE_URL%%",
    "summary": "Read %%VIEW_URL%% then %%ELSE%% and %%END%% %%NAME%%.",
    "author": "%%NAME%%",
    "body": "The excerpt says %%IF_VIEW_URL%% and %%UNSUBSCRIBE_URL%% too.",
}


def add_hostile_articles(root: Path) -> None:
    news = root / "examples" / "site" / "news"
    front = f"""
        title: "{HOSTILE["title"]}"
        date: 2026-11-22T08:00:00+05:45
        author: "{HOSTILE["author"]}"
        summary: "{HOSTILE["summary"]}"
        tags: ["%%END%%", "%%IF_NAME%%"]
    """
    write_article(news, "2026-11-22-hostile.md", front, "Body.\n")
    excerpt = """
        title: Excerpt from the body
        date: 2026-11-21T08:00:00+05:45
        author: Test Writer
    """
    write_article(news, "2026-11-21-excerpt.md", excerpt, HOSTILE["body"] + "\n")
    assert invoke(root, "ingest").exit_code == 0


def test_hostile_markdown_reaches_every_subscriber_as_text(mail_project, inbox) -> None:
    handler, _ = inbox
    people = mail_project / "more-people.csv"
    people.write_text("email,name,language\nnameless@example.org,,en\n", encoding="utf-8")
    assert invoke(mail_project, "subscribers", "import", str(people)).exit_code == 0
    add_hostile_articles(mail_project)
    result = invoke(mail_project, "digest", "send", "weekly-en")
    assert result.exit_code == 0, result.output + result.stderr
    assert len(handler.raw) == 4
    for raw in handler.raw:
        message = split(raw)
        header = b"".join(message.fields["list-unsubscribe"]).decode("ascii")
        link = header.partition("<")[2].rstrip(">")
        to = b"".join(message.fields["to"]).decode("ascii")
        text, html = message.parts["text/plain"], message.parts["text/html"]
        page = lxml.html.document_fromstring(html)
        shown = page.text_content()
        hrefs = [a.get("href") for a in page.iter("a") if a.text_content() == "Unsubscribe"]
        assert hrefs == [link] and text.count(link) == 1
        assert ("Hello," in text) == ("nameless@" in to)
        for value in (HOSTILE["title"], HOSTILE["summary"], HOSTILE["author"], HOSTILE["body"]):
            assert value in text and value in shown
        for part in (text, shown):
            assert POSTAL in part and "Snow Update 2026" in part  # the rest of the digest


def test_the_web_archive_shows_hostile_content_as_text(live_site, mail_project) -> None:
    add_hostile_articles(mail_project)
    assert invoke(mail_project, "digest", "send", "weekly-en").exit_code == 0
    text = split(live_site.handler.raw[0]).parts["text/plain"]
    view = re.search(r"https://news\.example\.org/digests/\S+", text).group()
    page = requests.get(live_site.base + view.removeprefix("https://news.example.org"))
    assert page.status_code == 200
    document = lxml.html.document_fromstring(page.text)
    shown = document.text_content()
    assert HOSTILE["title"] in shown and HOSTILE["summary"] in shown
    assert "Hello," in shown and POSTAL in shown and "Snow Update 2026" in shown
    links = {a.text_content(): a.get("href") for a in document.iter("a")}
    assert "Unsubscribe" not in links  # nobody's copy: the web footer offers to subscribe
    assert links["Subscribe to receive it by email"] == "https://news.example.org/subscribe?lang=en"
    assert "token=" not in page.text and SEAL not in page.text
