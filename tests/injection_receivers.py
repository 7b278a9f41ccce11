"""How each receiver reads what the pipeline sends, as assertions: a feed reader
(feedparser, ``json``), a mail client (the raw bytes, split without ``email.parser``),
a browser (lxml's HTML parser), and each social network under its own markup rules.

Each ``check_*`` asserts that the articles' text shows exactly as written, that no
markup, script, event handler or link comes from article text, and that the only
link a post makes is the article's own. Used by tests/test_injection_everywhere.py."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote

import feedparser
import lxml.etree
import lxml.html

from pipeline.channels.compose import hashtag
from pipeline.channels.mastodon_length import urls as mastodon_urls
from pipeline.model import Article
from pipeline.text import excerpt
from pipeline.urls import WEB_SCHEMES
from tests.rawmail import MAX_LINE, split, unfolded
from tests.test_channel_escaping import DISCORD_ESCAPE, DISCORD_LINK, MARKUP

HOME = "https://news.example.org"
PREFERENCES = "https://news.example.org/preferences?token="  # the footer's link
POSTAL = "GPO Box 3226, Kathmandu, Nepal"

# -- a browser or mail client ---------------------------------------------------------------

ACTIVE = {"script", "iframe", "object", "embed", "applet", "frame", "frameset", "base", "svg"}
ACTIVE |= {"math", "form", "input", "button", "textarea", "select", "noscript", "template"}
HEAD_ONLY = {"meta", "link", "style", "title"}  # the template's own head; never in the body
LINK_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "srcset", "background"}


def one_line(text: str) -> str:
    """``text`` with whitespace runs as one space, as HTML shows it."""
    return " ".join(text.split())


def assert_inert(document: str, where: str) -> lxml.html.HtmlElement:
    """Parse ``document`` as a browser does; it must hold no active element, no event
    handler and no link or image a reader may not follow. Returns the tree."""
    tree = lxml.html.document_fromstring(document)
    for element in tree.iter():
        if not isinstance(element.tag, str):
            continue  # comments and processing instructions
        tag = element.tag.lower()
        assert tag not in ACTIVE, f"{where}: <{tag}> element"
        if tag in HEAD_ONLY:
            assert element.getparent().tag == "head", f"{where}: <{tag}> outside <head>"
            assert element.get("http-equiv", "").lower() != "refresh", where
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), f"{where}: {name}={value!r}"
            if name.lower() in LINK_ATTRIBUTES:
                scheme = value.strip().partition(":")[0].lower()
                assert ":" in value and scheme in WEB_SCHEMES | {"mailto"}, (
                    f"{where}: <{tag} {name}={value!r}>"
                )
    return tree


def check_digest_page(
    tree: lxml.html.HtmlElement,
    articles: Sequence[Article],
    *,
    unsubscribe: str | None,
    name: str,
    view: str | None,
    subscribe: str | None = None,
) -> None:
    """A digest as a reader sees it in a mail client or a browser: the greeting, every
    article (title, link, summary, authors, image and alt text), the unsubscribe link
    (in the web version, which is nobody's, the subscribe link instead) and the footer,
    each where the template puts it; no other link."""
    shown = one_line(tree.text_content())
    links = [(one_line(a.text_content()), a.get("href")) for a in tree.iter("a")]
    unsubscribing = [href for label, href in links if label == "Unsubscribe"]
    assert unsubscribing == ([unsubscribe] if unsubscribe else [])
    subscribing = [href for label, href in links if label == "Subscribe to receive it by email"]
    assert subscribing == ([subscribe] if subscribe else [])
    viewing = [href for label, href in links if label == "View in your browser"]
    assert viewing == ([view] if view else [])
    # Every reader's own copy links to their preference page, beside the unsubscribe link.
    managing = [href for label, href in links if label == "Manage your subscription"]
    assert len(managing) == (1 if unsubscribe else 0)
    assert all(h.startswith(PREFERENCES) for h in managing), managing
    assert (f"Hello {name}," if name else "Hello,") in shown
    images = {(img.get("src"), img.get("alt")) for img in tree.iter("img")}
    for article in articles:
        assert article.title in shown and (article.title, article.url) in links
        assert one_line(article.summary) in shown
        for author in article.authors:
            assert one_line(author) in shown
        if article.image:
            assert (article.image, article.image_alt or article.title) in images
    ours = [link for link in (unsubscribe, subscribe, view, *managing) if link]
    allowed = {HOME, *ours, *(a.url for a in articles)}
    assert {href for _, href in links} <= allowed
    assert POSTAL in shown
    # The seal is gone (personalise removes it); one written in content is only text.
    assert [c for c in tree.iter(lxml.etree.Comment) if "personalise" in (c.text or "")] == []


# -- a mail server and a mail client ----------------------------------------------------------

MAIL_HEADERS = {
    "from",
    "to",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "auto-submitted",
    "content-language",
    "mime-version",
    "content-type",
}
UNSUBSCRIBE_HEADER = re.compile(
    rb"List-Unsubscribe: <(?P<link>https://news\.example\.org/unsubscribe\?token=[\w.~%-]+)>"
)
VIEW_LINE = re.compile(r"\nView in your browser: (https://news\.example\.org/digests/\S+)\n")


def check_raw_mail(
    raw: bytes, articles: Sequence[Article], *, name: str, email: str
) -> tuple[str, str]:
    """One digest as the mail server received it (``raw``): the header block is the
    template's whatever the content, the HTML part is inert and shows every article and
    the reader's own links, the text part shows the text as written. Returns the
    (unsubscribe, view) links it carries."""
    message = split(raw)  # asserts that no header appears twice
    assert set(message.fields) == MAIL_HEADERS
    assert unfolded(message.fields["subject"]) == "This week at Mountain News"
    [line] = message.fields["list-unsubscribe"]
    found = UNSUBSCRIBE_HEADER.fullmatch(line)
    assert found, line
    unsubscribe = found["link"].decode("ascii")
    assert email in unfolded(message.fields["to"])
    for physical in raw.split(b"\r\n"):
        assert len(physical) <= MAX_LINE and b"\r" not in physical and b"\n" not in physical
    text = message.parts["text/plain"]
    view = VIEW_LINE.search(text)
    assert view, text
    tree = assert_inert(message.parts["text/html"], "email HTML")
    check_digest_page(tree, articles, unsubscribe=unsubscribe, name=name, view=view[1])
    for article in articles:
        assert re.search(rf"\n\d+\. {re.escape(article.title)}\n", text), article.title
        assert f"\n{one_line(article.summary)}\n" in text
        for author in article.authors:
            assert one_line(author) in one_line(text)
        assert f"\nRead more: {article.url}\n" in text
    assert text.count(unsubscribe) == 1 and f"\nUnsubscribe: {unsubscribe}\n" in text
    assert f"\nManage your subscription: {PREFERENCES}" in text
    assert text.count(view[1]) == 1
    assert (f"\nHello {name},\n" if name else "\nHello,\n") in text
    assert text.rstrip("\n").endswith("Kathmandu, Nepal")
    return unsubscribe, view[1]


# -- a feed reader -----------------------------------------------------------------------------

# A URL holding what reads as an HTML entity (``/news/&amp;/``) reaches feedparser's RSS
# readers decoded (``/news/&/``): feedparser unescapes <link>, as many feeds escape it
# twice. Atom and JSON Feed carry it as written. Left as it is: escaped twice, a plain
# ``?a=1&b=2`` would break in readers that do not decode.
ENTITY_LIKE = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);?")


def as_feedparser_shows(detail: Mapping[str, Any]) -> str:
    """A feedparser text construct as a reader shows it: HTML rendered, text as is."""
    value = str(detail["value"])
    if detail["type"] in ("text/html", "application/xhtml+xml"):
        return one_line(lxml.html.fragment_fromstring(value, create_parent="div").text_content())
    return one_line(value)


def check_feed_authors(
    shown: Sequence[Mapping[str, Any]], written: Sequence[str], where: str
) -> None:
    """Authors as feedparser gives them: the names as written. Where a name holds an
    e-mail address, feedparser moves it out of the name into ``email`` (its rule for
    ``dc:creator``, which it applies to Atom names too, even giving the address to the
    next author); then nothing is added, whatever ends up where."""
    assert len(shown) == len(written), where
    if not any("@" in name for name in written):
        assert [author["name"] for author in shown] == list(written), where
        assert not any(author.get("email") for author in shown), where
        return
    everything = " ".join(written)
    for author in shown:
        assert all(word in everything for word in author["name"].split()), (where, author)
        assert author.get("email", "") in everything, (where, author)


def check_feed_files(files: Mapping[str, bytes], articles: Sequence[Article]) -> None:
    """RSS and Atom as feedparser reads them, JSON Feed as ``json`` does: one entry per
    article, in order, with its text as written, its own link, inert content."""
    for fmt in ("rss", "atom"):
        # sanitize_html off: judge what the feed carries, not what feedparser cleans away.
        feed = feedparser.parse(files[fmt], sanitize_html=False, resolve_relative_uris=False)
        where = f"{fmt} feed"
        assert not feed.bozo, (where, feed.get("bozo_exception"))
        assert len(feed.entries) == len(articles), where
        for entry, article in zip(feed.entries, articles, strict=True):
            assert as_feedparser_shows(entry.title_detail) == one_line(article.title), where
            summary = as_feedparser_shows(entry.summary_detail)
            assert summary == one_line(article.summary), where
            if fmt == "atom" or not ENTITY_LIKE.search(article.url):
                assert entry.link == article.url, where
                assert {link.href for link in entry.links} == {article.url}, where
            check_feed_authors(entry.get("authors", []), article.authors, where)
            assert [t.term for t in entry.get("tags", [])] == list(article.tags), where
            [content] = entry.content
            assert_inert(content.value, f"{where} content")
            for media in entry.get("media_content", []):
                assert media["url"] == article.image, where
    items = json.loads(files["json"])["items"]
    assert len(items) == len(articles)
    for item, article in zip(items, articles, strict=True):
        assert item["title"] == article.title and item["summary"] == article.summary
        assert item["url"] == article.url and item.get("image") == article.image
        assert [a["name"] for a in item.get("authors", [])] == list(article.authors)
        assert item.get("tags", []) == list(article.tags)
        assert_inert(item["content_html"], "JSON Feed content_html")


# -- the social networks ----------------------------------------------------------------------


def fitted(shown: str, original: str) -> bool:
    """``shown`` is ``original``, or a cut of it ending in an ellipsis (the fitting to a
    network's budget, which puts the text on one line first), or nothing (dropped whole
    to fit)."""
    if shown in (original, ""):
        return True
    whole = excerpt(original, len(original) + 1)  # on one line, as a cut sees it
    return shown.endswith("…") and whole.startswith(shown[:-1].rstrip())


def plain_parts(
    text: str, article: Article, is_link: Callable[[str], bool] | None = None
) -> tuple[str, str]:
    """(title, summary) of a plain-text post laid out as title, summary, link (, tags),
    one paragraph each; the link must be the article's (``is_link`` says what counts)."""
    is_link = is_link or (lambda link: link == article.url)
    parts = text.split("\n\n")
    title = parts.pop(0) if not is_link(parts[0]) else ""  # dropped whole to fit
    summary = parts.pop(0) if parts and not is_link(parts[0]) else ""
    assert parts and is_link(parts.pop(0)), text
    return title, summary


def typed(article: Article) -> str:
    """Article text a network may link addresses in: written by the newsroom."""
    return f"{article.title} {article.summary} {' '.join(article.authors)}"


def check_mastodon(body: Mapping[str, Any], article: Article) -> None:
    """Plain text: Mastodon escapes HTML and reads no Markdown. It links what its URL
    rules find: the article's URL, and only addresses typed in the article's text."""
    status = body["status"]
    found = [status[url.start : url.end] for url in mastodon_urls(status)]
    # The article's link, whole as Mastodon finds it: the article's URL, or the same URL
    # with a character Mastodon would end the link at percent-encoded (``)`` → ``%29``).
    [link] = [url for url in found if unquote(url) == unquote(article.url)]
    title, summary = plain_parts(status, article, lambda paragraph: paragraph == link)
    assert fitted(title, article.title) and fitted(summary, article.summary), status
    tags = " ".join(filter(None, (hashtag(t) for t in article.tags)))
    assert status.endswith(f"{link}\n\n{tags}" if tags else link), status
    for url in found:
        assert url == link or url in typed(article), url


def check_bluesky(body: Mapping[str, Any], article: Article) -> None:
    """Plain text; a link only where a facet makes one: the article's URL, nothing else."""
    record = body["record"]
    title, summary = plain_parts(record["text"], article)
    assert fitted(title, article.title) and fitted(summary, article.summary)
    data = record["text"].encode("utf-8")
    [facet] = record["facets"]
    assert facet["features"] == [{"$type": "app.bsky.richtext.facet#link", "uri": article.url}]
    assert data[facet["index"]["byteStart"] : facet["index"]["byteEnd"]] == article.url.encode()
    external = record["embed"]["external"]
    card = {key: external[key] for key in ("uri", "title", "description")}
    assert card == {"uri": article.url, "title": article.title, "description": article.summary}


SLACK_TOKEN = re.compile(r"<([^<>]*)>")
SLACK_BARE_AMPERSAND = re.compile(r"&(?!amp;|lt;|gt;)")


def slack_unescape(text: str) -> str:
    assert not SLACK_BARE_AMPERSAND.search(text), text  # each & is one of Slack's escapes
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def check_slack(body: Mapping[str, Any], article: Article) -> None:
    """mrkdwn: ``& < >`` are its control characters and ``<…>`` a link, mention or date.
    The only such token is the article's link (and Slack's date); the rest is text."""
    section, context = body["blocks"]
    mrkdwn = section["text"]["text"]
    [token] = SLACK_TOKEN.findall(mrkdwn)
    target, _, label = token.partition("|")
    assert slack_unescape(target) == article.url
    heading, _, rest = mrkdwn.partition("\n")
    assert heading == f"*<{token}>*"
    title = slack_unescape(label)
    assert fitted(title, article.title)
    assert "<" not in rest and ">" not in rest
    assert fitted(slack_unescape(rest), article.summary)
    fallback = body["text"]
    assert "<" not in fallback and ">" not in fallback
    assert slack_unescape(fallback).split("\n")[0] == title
    dateline = context["elements"][0]["text"]
    assert [t for t in SLACK_TOKEN.findall(dateline) if not t.startswith("!date^")] == []
    byline = dateline.rpartition(" · <!date^")[0]
    assert "<" not in byline and fitted(slack_unescape(byline), ", ".join(article.authors))
    if article.image:
        accessory = section["accessory"]  # plain_text fields: nothing is read as markup
        assert accessory["image_url"] == article.image
        assert fitted(accessory["alt_text"], article.image_alt or article.title)


def discord_shown(text: str) -> str:
    """What Discord shows of embed text: web addresses whole, ``\\X`` as X. Asserts that
    nothing outside an address could start Markdown (a masked link, a mention, format)."""
    shown = []
    for index, part in enumerate(re.split(f"({DISCORD_LINK.pattern})", text)):
        if index % 2:
            shown.append(part)
            continue
        check = re.sub(r"^[.,:;\"')\]]*<?", "", part) if index else part  # see plain_markdown
        assert not MARKUP.search(DISCORD_ESCAPE.sub("x", check)), (text, part)
        shown.append(DISCORD_ESCAPE.sub(r"\1", part))
    return "".join(shown)


def check_discord(body: Mapping[str, Any], article: Article) -> None:
    """Markdown in the embed's title and description is escaped; mentions never ping;
    the title links the article, and addresses Discord links are typed in its text."""
    assert body["allowed_mentions"] == {"parse": []}
    [embed] = body["embeds"]
    assert embed["url"] == article.url
    assert fitted(discord_shown(embed["title"]), article.title)
    assert fitted(discord_shown(embed.get("description", "")), article.summary)
    if article.authors:
        assert fitted(embed["author"]["name"], ", ".join(article.authors))  # shown as is
    assert embed.get("image", {}).get("url") == article.image
    for text in (embed["title"], embed.get("description", "")):
        for url in DISCORD_LINK.findall(text):
            assert url in typed(article), url


def check_teams(body: Mapping[str, Any], article: Article) -> None:
    """Adaptive Card: article text only in TextRuns (which read no Markdown); every
    action opens the article."""
    card = body["attachments"][0]["content"]
    assert '"TextBlock"' not in json.dumps(card)
    runs = [
        inline["text"]
        for element in card["body"]
        if element["type"] == "RichTextBlock"
        for inline in element["inlines"]
    ]
    assert runs[0] == article.title
    shown_byline, _, date = runs[1].rpartition(" · ")
    assert fitted(shown_byline, ", ".join(article.authors)) and date.startswith("{{DATE(")
    assert runs[2:] == ([article.summary] if article.summary else [])
    targets = re.findall(r'"url": "([^"]*)"', json.dumps(card, ensure_ascii=False))
    assert set(targets) <= {article.url, article.image}
    images = [e for e in card["body"] if e["type"] == "Image"]
    if article.image:
        alt = article.image_alt or article.title
        assert images == [
            {"type": "Image", "url": article.image, "altText": alt, "size": "Stretch"}
        ]


class TelegramReader(HTMLParser):
    """Telegram's HTML parse mode: the tags, and the text between them with entities
    decoded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_telegram(body: Mapping[str, Any], article: Article) -> None:
    """HTML parse mode: the template's <b> and <a href=article>, the rest text."""
    assert body["parse_mode"] == "HTML"
    assert body["link_preview_options"]["url"] == article.url
    reader = TelegramReader()
    reader.feed(body["text"])
    reader.close()
    assert reader.tags == [("b", {}), ("a", {"href": article.url})], reader.tags
    title, summary = plain_parts("".join(reader.text), article)
    assert fitted(title, article.title) and fitted(summary, article.summary)


def check_webhook(body: Mapping[str, Any], article: Article) -> None:
    """JSON with the article's fields as they are (the receiver decides how to show
    them) and ``text`` in plain text."""
    sent = body["article"]
    assert sent["title"] == article.title and sent["summary"] == article.summary
    assert sent["authors"] == list(article.authors) and sent["tags"] == list(article.tags)
    assert sent["url"] == article.url and sent["image"] == article.image
    assert sent["image_alt"] == article.image_alt
    assert plain_parts(body["text"], article) == (article.title, article.summary)


def check_file(body: Mapping[str, Any], article: Article) -> None:
    assert body["title"] == article.title and body["url"] == article.url
    assert plain_parts(body["text"], article) == (article.title, article.summary)


CHANNEL_CHECKS: dict[str, Callable[[Mapping[str, Any], Article], None]] = {
    "mastodon": check_mastodon,
    "bluesky": check_bluesky,
    "slack": check_slack,
    "discord": check_discord,
    "teams": check_teams,
    "telegram": check_telegram,
    "webhook": check_webhook,
    "file": check_file,
}
