"""Every personalisation placeholder and every injection payload, in every content field,
judged in every output the way its receiver reads it (tests/injection_receivers.py).

An article is built as a source builds it: a Markdown or HTML file with front matter,
read by the markdown source, with a payload in one field (title, summary, author, a
tag, the body in Markdown or HTML, the image's alt text, ``url:`` or ``image:``). Then:

- feeds: RSS and Atom through feedparser, JSON Feed through ``json``;
- email: the raw bytes a mail server receives, for a reader with a name and one without;
- every channel's payload, under that network's own markup rules;
- the web archive of the edition (what ``GET /digests/NAME/EDITION`` serves).

A ``url:`` or ``image:`` that is not an http(s) link is refused at its line and nothing
of that article goes anywhere. ``test_each_payload_in_each_field`` puts each payload in
each field; the property test mixes payloads with free text; the last test does it all
through the command line on a project, to real receivers on 127.0.0.1, on SQLite and
PostgreSQL."""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pipeline.channels import ChannelContext
from pipeline.channels.bluesky import BlueskyChannel, BlueskyOptions
from pipeline.channels.discord import DiscordChannel, DiscordOptions
from pipeline.channels.file import FileChannel, FileOptions
from pipeline.channels.mastodon import MastodonChannel, MastodonOptions
from pipeline.channels.mastodon_length import urls as mastodon_urls
from pipeline.channels.slack import SlackChannel, SlackOptions
from pipeline.channels.teams import TeamsChannel, TeamsOptions
from pipeline.channels.telegram import TelegramChannel, TelegramOptions
from pipeline.channels.webhook import WebhookChannel, WebhookOptions
from pipeline.digest.message import build_message
from pipeline.digest.render import SEAL, personalise, placeholders, render_edition
from pipeline.errors import Problem
from pipeline.feeds import BUILT_IN, FeedSpec, render
from pipeline.mailer import open_transport, wire_bytes
from pipeline.model import Article
from pipeline.settings import Settings, default_template, load_settings
from pipeline.sources.markdown import MarkdownSource, MarkdownSourceSettings
from pipeline.store import Store
from pipeline.subscribers import Subscriber, SubscriberStore
from pipeline.tokens import link_secret, verify
from pipeline.urls import as_uri
from pipeline.web.app import create_app
from tests.conftest import REPO, invoke
from tests.injection_receivers import (
    CHANNEL_CHECKS,
    HOME,
    assert_inert,
    check_digest_page,
    check_feed_files,
    check_raw_mail,
    one_line,
    slack_unescape,
)
from tests.test_channel_bluesky import CREATE, HANDLE, PNG, FakePds

# -- the payloads ---------------------------------------------------------------------------

FORGED = "0123456789abcdef" * 2  # a guess at a rendering's key
_KEYED = placeholders(FORGED)  # every token and block marker the templates write
PLACEHOLDERS = [
    *sorted({marker.replace(f".{FORGED}", "") for marker in _KEYED.values()}),  # %%NAME%%…
    *sorted(_KEYED.values()),  # %%NAME.<key>%%…, with a key that is not this rendering's
    f"{SEAL}{FORGED}-->",  # a forged seal, as if the document ended here
    "%%IF_NAME%%named%%ELSE%%nameless%%END%%",
]
SCHEMES = [  # links a reader must never be sent to
    "javascript:alert(1)",
    " JaVa\tScRiPt:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
]
INJECTIONS = [
    "<script>alert(1)</script>",  # HTML
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    '"><svg onload=alert(1)>',  # out of an attribute
    "</div></td></tr></table><p>",  # out of the layout
    "]]><x>",  # out of a CDATA section
    "[x](javascript:alert(1))",  # Markdown
    "**b**",
    "<https://evil.example|click>",  # Slack mrkdwn
    "<!channel>",
    "@everyone <@123>",  # Discord
    "<b>b</b>",  # Telegram HTML
    '<a href="tg://resolve?domain=evil">x</a>',
    "&amp;",
    ":-)",  # an unbalanced parenthesis: where Mastodon ends a link
    *SCHEMES,
    "\r\nBcc: victim@example.org",  # header injection
    "\nSubject: Reset your password",
]
PAYLOADS = PLACEHOLDERS + INJECTIONS

# Where a payload goes. url/image take it as the whole value (a scheme, or a link
# relative to the article); url_path puts it inside an https link's path.
FIELDS = ("title", "summary", "author", "tags", "body_markdown", "body_html", "image_alt")
FIELDS += ("url", "url_path", "image")

# -- the project the outputs belong to ------------------------------------------------------

NOW = dt.datetime(2026, 11, 3, 10, 0, tzinfo=dt.UTC)
SECRET = "the-link-secret"
EDITION = "weekly-en@2026-11-03T15:45+05:45"
VIEW = "https://news.example.org/digests/weekly-en/2026-11-03T15:45+05:45"
ARCHIVE_SUBSCRIBE = f"{HOME}/subscribe?lang=en"  # the web version's offer: no one's token
AFTER_TITLE = "The article after"
READERS = (
    Subscriber(1, "pema@example.org", "Pema Gyamtsho", "en", (), "active"),
    Subscriber(2, "nameless@example.org", "", "en", (), "active"),
)
SPEC = FeedSpec(
    "Mountain News",
    "Mountain News",
    "en",
    home_url=HOME,
    base_url=f"{HOME}/feeds",
    author="Mountain News",
)


@functools.cache
def project_settings() -> Settings:
    """The example project's settings (read only: nothing is written)."""
    return load_settings(REPO / "config" / "pipeline.yaml")


# -- building the article as the markdown source does ------------------------------------


@dataclass(frozen=True)
class Built:
    """What the source made of the files: the articles (the payload's first), and the
    problems it reported."""

    articles: list[Article]
    problems: list[Problem]
    front: str  # the payload file's front matter, to find a refused key's line


# What YAML may not hold as written (DEL, C1 controls) or folds as a line break (NEL,
# LS, PS); in a double-quoted scalar they are written as escapes.
_YAML_ESCAPED = re.compile("[\x7f-\x9f\u2028\u2029]")


def yaml_string(value: str) -> str:
    """A double-quoted YAML scalar holding exactly ``value`` (JSON's escapes are YAML's)."""
    quoted = json.dumps(value, ensure_ascii=False)
    return _YAML_ESCAPED.sub(lambda m: f"\\u{ord(m[0]):04x}", quoted)


def front_matter(values: Mapping[str, str | list[str]]) -> str:
    return "\n".join(
        f"{key}: [{', '.join(map(yaml_string, value))}]"
        if isinstance(value, list)
        else f"{key}: {yaml_string(value)}"
        for key, value in values.items()
    )


def article_file(field: str, payload: str) -> tuple[str, str, str]:
    """(file name, front matter, body) of an article carrying ``payload`` in ``field``."""
    front: dict[str, str | list[str]] = {
        "title": "A plain title",
        "date": "2026-11-03T09:00:00+05:45",
        "author": "Pema Gyamtsho",
        "summary": "A plain summary.",
        "tags": ["Nepal"],
        "image": f"{HOME}/media/glacier.jpg",
        "image_alt": "A glacier",
    }
    name, body = "2026-11-03-payload.md", "Body text.\n"
    text = f"Before {payload} after"
    if field in ("title", "summary", "author", "image_alt"):
        front[field] = text
    elif field == "tags":
        front["tags"] = ["Nepal", text]
    elif field in ("body_markdown", "body_html"):
        del front["summary"]  # the excerpt comes from the body
        body = f"{text}\n\nSecond paragraph.\n"
        if field == "body_html":
            name, body = "2026-11-03-payload.html", f"<p>{text}</p>\n<p>Second paragraph.</p>\n"
    elif field in ("url", "image"):
        front[field] = payload
    elif field == "url_path":
        front["url"] = f"{HOME}/news/{payload}/"
    else:
        raise AssertionError(field)
    return name, front_matter(front), body


AFTER_FILE = (
    "2026-11-01-after.md",
    front_matter(
        {
            "title": AFTER_TITLE,
            "date": "2026-11-01T09:00:00+05:45",
            "author": "Test Writer",
            "summary": "It comes after the payload.",
        }
    ),
    "After.\n",
)


def built(field: str, payload: str) -> Built:
    """The payload's article and the article after it, read by the markdown source."""
    name, front, body = article_file(field, payload)
    with tempfile.TemporaryDirectory(prefix="injection-") as scratch:
        folder = Path(scratch)
        for file_name, file_front, file_body in ((name, front, body), AFTER_FILE):
            text = f"---\n{file_front}\n---\n{file_body}"
            (folder / file_name).write_text(text, encoding="utf-8")
        settings = MarkdownSourceSettings(name="news", type="markdown", path=folder)
        scan = MarkdownSource(settings, project_settings().site).scan({}, {})
    articles = sorted((item.article for item in scan.changed), key=lambda a: a.title == AFTER_TITLE)
    return Built(articles, scan.rejected, front)


# -- every output of one article --------------------------------------------------------------


class Memory(dict[str, dict[str, Any]]):
    """The state store's small-document interface, in memory."""

    def value(self, name: str) -> dict[str, Any]:
        return dict(self.get(name, {}))

    def save_value(self, name: str, value: dict[str, Any]) -> None:
        self[name] = dict(value)


@functools.cache
def channels() -> dict[str, Any]:
    """One channel of every type, as configured in production; ``prepare`` reaches no
    network (Mastodon's limits are in the store, as after yesterday's run)."""
    instance = "https://mastodon.example"
    memory = Memory()
    memory["channel:mastodon:instance"] = {
        "instance": instance,
        "fetched_at": NOW.isoformat(),
        "max_characters": 500,
        "characters_reserved_per_url": 23,
        "description_limit": 1500,
        "image_size_limit": None,
        "supported_mime_types": [],
    }
    site = project_settings().site
    context = ChannelContext(http=requests.Session(), site=site, memory=memory, clock=lambda: NOW)
    hook = "https://hooks.example/T0/B0/secret"
    made: dict[str, tuple[Any, Any, dict[str, Any]]] = {
        "mastodon": (MastodonChannel, MastodonOptions, {"instance": instance, "access_token": "t"}),
        "bluesky": (BlueskyChannel, BlueskyOptions, {"handle": HANDLE, "app_password": "p"}),
        "slack": (SlackChannel, SlackOptions, {"webhook_url": hook}),
        "discord": (DiscordChannel, DiscordOptions, {"webhook_url": hook}),
        "teams": (TeamsChannel, TeamsOptions, {"webhook_url": hook}),
        "telegram": (TelegramChannel, TelegramOptions, {"bot_token": "1:x", "chat_id": "@news"}),
        "webhook": (WebhookChannel, WebhookOptions, {"url": hook}),
        "file": (FileChannel, FileOptions, {"path": Path("posts.jsonl")}),
    }
    return {
        kind: cls(
            kind, options(type=kind, template=REPO / default_template(kind), **values), context
        )
        for kind, (cls, options, values) in made.items()
    }


def check_everywhere(field: str, payload: str) -> None:
    result = built(field, payload)
    if field in ("url", "image") and result.problems:
        check_refused(result, field)
        return
    assert not result.problems, result.problems
    articles = result.articles
    check_source_kept_text(field, payload, articles[0])
    check_feed_files(render(SPEC, articles, BUILT_IN), articles)
    settings = project_settings()
    digest = settings.digests["weekly-en"]
    rendered = render_edition(digest, settings.site, articles)
    for reader in READERS:
        message = build_message(
            settings, EDITION, "weekly-en", rendered, digest, reader, SECRET, NOW
        )
        raw = wire_bytes(message)  # what SMTP sends and the outbox keeps
        unsubscribe, view = check_raw_mail(raw, articles, name=reader.name, email=reader.email)
        claims = verify(SECRET, parse_qs(urlsplit(unsubscribe).query)["token"][0], "unsubscribe")
        assert (claims.subscriber_id, claims.list_name, view) == (reader.id, "weekly-en", VIEW)
    # The web archive: the edition as pipeline.web.site's web_version() serves it.
    archive, _ = personalise(
        rendered, unsubscribe_url="", name="", view_url=None, subscribe_url=ARCHIVE_SUBSCRIBE
    )
    tree = assert_inert(archive, "web archive")
    check_digest_page(
        tree, articles, unsubscribe=None, name="", view=None, subscribe=ARCHIVE_SUBSCRIBE
    )
    for kind, channel in channels().items():
        CHANNEL_CHECKS[kind](channel.prepare(articles[0]).body, articles[0])


def check_refused(result: Built, field: str) -> None:
    """An unsafe ``url:`` or ``image:``: the file is refused at the key's own line, and no
    article comes of it."""
    [problem] = result.problems
    lines = result.front.splitlines()
    line = 2 + next(number for number, text in enumerate(lines) if text.startswith(f"{field}:"))
    assert problem.line == line and f"`{field}`" in problem.message, problem
    assert [a.title for a in result.articles] == [AFTER_TITLE]


def check_source_kept_text(field: str, payload: str, article: Article) -> None:
    """Plain-text fields keep the payload as text (a title's whitespace runs collapse,
    names and tags lose the whitespace around them); links stay http(s) on the site."""
    text = f"Before {payload} after"
    expected = {
        "title": ("title", one_line(text)),
        "author": ("authors", (text.strip(),)),
        "tags": ("tags", ("Nepal", text.strip())),
        "image_alt": ("image_alt", text),
    }
    if field in expected:
        name, value = expected[field]
        assert getattr(article, name) == value
    assert article.url.startswith(f"{HOME}/")
    assert article.image is None or article.image.startswith(f"{HOME}/")


# -- each payload in each field ----------------------------------------------------------------

CASES = [(field, payload) for payload in PAYLOADS for field in FIELDS]


@pytest.mark.parametrize(("field", "payload"), CASES)
def test_each_payload_in_each_field(field: str, payload: str) -> None:
    check_everywhere(field, payload)


PIECE = st.one_of(
    st.sampled_from(PAYLOADS),
    st.lists(
        st.one_of(
            st.characters(min_codepoint=0x20, max_codepoint=0x7E),
            # Chinese, an emoji family (joiners), a decomposed é, no-break, zero-width and
            # line-separator spaces, a right-to-left override, DEL, line breaks and tabs.
            st.sampled_from(["冰川", "👨\u200d👩\u200d👧", "e\u0301", "\xa0", "\u200b"]),
            st.sampled_from(["\u2028", "\u202e", "\x7f", "\r\n", "\n", "\t"]),
        ),
        max_size=10,
    ).map("".join),
)
# At most 150 characters: a tag's column holds 200 (a longer one is refused, rightly).
MIXED = st.lists(PIECE, min_size=1, max_size=4).map(lambda pieces: "".join(pieces)[:150])


@settings(
    max_examples=int(os.environ.get("INJECTION_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(field=st.sampled_from(FIELDS), payload=MIXED)
def test_any_mix_of_payloads_in_any_field(field: str, payload: str) -> None:
    # A link is never cut: one longer than Bluesky's 300 characters cannot be posted there
    # (a located PermanentFailure). Percent-encoded, an emoji family takes 54 characters.
    assume(field != "url_path" or len(as_uri(f"{HOME}/news/{payload}/")) <= 250)
    check_everywhere(field, payload)


# -- through the command line, to real receivers -------------------------------------------------

JOINED = " ¦ ".join(PAYLOADS)


def e2e_articles(base: str) -> dict[str, tuple[str, str]]:
    """File name → (front matter, body): every payload in each field of one article each
    (one per refused link), the images served by ``base`` (Bluesky fetches them)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    files: dict[str, tuple[str, str]] = {}

    def add(name: str, body: str = "Body text.\n", **front: str | list[str]) -> None:
        minutes = len(files) + 1  # newest first, in the order added
        values: dict[str, str | list[str]] = {
            "title": f"Plain title {minutes}",
            "date": (now - dt.timedelta(minutes=minutes)).isoformat(),
            "author": "Pema Gyamtsho",
            "tags": ["Nepal"],
            "image": f"{base}/media/{minutes}.png",
            "image_alt": "A glacier",
        }
        files[name] = (front_matter({**values, **front}), body)

    add("title.md", title=JOINED)
    add("summary.md", summary=JOINED)
    add("author.md", author=PAYLOADS)
    # A few: hashtags are never cut, and Mastodon's 500 characters must hold them all.
    add("tags.md", tags=["%%IF_NAME%%", *INJECTIONS[:2], "<!channel>", "&amp;", SCHEMES[0]])
    add("body-markdown.md", "\n\n".join(PAYLOADS) + "\n")
    add("body-html.html", "".join(f"<p>{payload}</p>\n" for payload in PAYLOADS))
    add("image-alt.md", image_alt=JOINED)
    # A few payloads only: a link is never cut, and Bluesky's 300 characters must hold it.
    add("url-path.md", url=f'{HOME}/news/%%NAME%%/<b>b</b>/&amp;/"><svg onload=alert(1)>/')
    add("image-path.md", image=f"{base}/media/{JOINED}")  # (relative: the property tests)
    for index, scheme in enumerate(SCHEMES):
        add(f"refused-url-{index}.md", url=scheme)
        add(f"refused-image-{index}.md", image=scheme)
    return files


# Where each network receives its posts on the local server.
PATHS = {
    "slack": "/slack",
    "discord": "/discord",
    "teams": "/teams",
    "telegram": "/bot123:ABC/sendMessage",
    "webhook": "/webhook",
    "mastodon": "/api/v1/statuses",
    "bluesky": CREATE,
}


class Receivers:
    """Every network's endpoint on one local HTTP server, and what each received."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.base = server.url_for("/").rstrip("/")
        FakePds(server)
        server.expect_request("/slack").respond_with_data("ok")
        server.expect_request("/discord").respond_with_json({"id": "1", "channel_id": "2"})
        server.expect_request("/teams").respond_with_data("", status=202)
        server.expect_request(PATHS["telegram"]).respond_with_json(
            {"ok": True, "result": {"message_id": 7, "chat": {"id": 1, "type": "channel"}}}
        )
        server.expect_request("/webhook").respond_with_json({"id": "w1"})
        server.expect_request("/api/v2/instance").respond_with_json(
            {"configuration": {"statuses": {"max_characters": 500}}}
        )
        server.expect_request("/api/v1/statuses").respond_with_json({"id": "9"})
        server.expect_request(re.compile("/media/.*")).respond_with_data(
            PNG, content_type="image/png"
        )

    def config(self, monkeypatch: pytest.MonkeyPatch) -> str:
        """The channels block of the project's config; credentials from the environment,
        as the config requires."""
        base = self.base
        secrets = {
            "MASTODON_TOKEN": "t",
            "BLUESKY_PASSWORD": "app-pass-word",
            "SLACK_URL": f"{base}/slack",
            "DISCORD_URL": f"{base}/discord",
            "TEAMS_URL": f"{base}/teams",
            "TELEGRAM_TOKEN": "123:ABC",
        }
        for name, value in secrets.items():
            monkeypatch.setenv(f"INJECTION_{name}", value)
        limit = "per_run: 50"
        return f"""channels:
  mastodon: {{type: mastodon, instance: "{base}", access_token: "${{INJECTION_MASTODON_TOKEN}}",
    images: false, {limit}}}
  bluesky: {{type: bluesky, handle: {HANDLE}, app_password: "${{INJECTION_BLUESKY_PASSWORD}}",
    service: "{base}", {limit}}}
  slack: {{type: slack, webhook_url: "${{INJECTION_SLACK_URL}}", {limit}}}
  discord: {{type: discord, webhook_url: "${{INJECTION_DISCORD_URL}}", {limit}}}
  teams: {{type: teams, webhook_url: "${{INJECTION_TEAMS_URL}}", {limit}}}
  telegram: {{type: telegram, bot_token: "${{INJECTION_TELEGRAM_TOKEN}}", chat_id: "@news",
    api_url: "{base}", {limit}}}
  webhook: {{type: webhook, url: "{base}/webhook", {limit}}}
  file: {{type: file, path: var/posts.jsonl, {limit}}}
"""

    def received(self, kind: str) -> list[dict[str, Any]]:
        return [
            json.loads(request.get_data().decode("utf-8"))
            for request, _ in self.server.log
            if request.path == PATHS[kind] and request.method == "POST"
        ]


def posted_url(kind: str, body: Mapping[str, Any]) -> str:
    """Which article a network's request is about, as the network reads it."""
    if kind == "mastodon":
        status = body["status"]
        return unquote(status[mastodon_urls(status)[-1].start : mastodon_urls(status)[-1].end])
    if kind == "slack":
        target = re.search(r"<([^|>]*)\|", body["blocks"][0]["text"]["text"])
        assert target
        return slack_unescape(target[1])
    found = {
        "bluesky": lambda: body["record"]["embed"]["external"]["uri"],
        "discord": lambda: body["embeds"][0]["url"],
        "teams": lambda: body["attachments"][0]["content"]["body"][-1]["actions"][0]["url"],
        "telegram": lambda: body["link_preview_options"]["url"],
        "webhook": lambda: body["article"]["url"],
        "file": lambda: body["url"],
    }
    return str(found[kind]())


def test_every_payload_through_the_command_line(project, httpserver, live_app, monkeypatch) -> None:
    root = project(with_examples=False)
    receivers = Receivers(httpserver)
    config = root / "config" / "pipeline.yaml"
    text = config.read_text(encoding="utf-8").replace("max_items: 8", "max_items: 30")
    config.write_text(
        text.partition("channels:")[0] + receivers.config(monkeypatch), encoding="utf-8"
    )
    news = root / "examples" / "site" / "news"
    files = e2e_articles(receivers.base)
    for name, (front, body) in files.items():
        (news / name).write_text(f"---\n{front}\n---\n{body}", encoding="utf-8")
    (root / "people.csv").write_text(
        "email,name,language\npema@example.org,Pema Gyamtsho,en\nnameless@example.org,,en\n",
        encoding="utf-8",
    )

    ingested = invoke(root, "ingest")
    for name, (front, _) in files.items():  # each refused at its line, the key named
        if name.startswith("refused-"):
            key = name.split("-")[1]
            line = 2 + next(i for i, text in enumerate(front.splitlines()) if text.startswith(key))
            assert re.search(rf"{name}:{line}:\d+: `{key}`: ", ingested.output), name
    assert "9 added" in ingested.output and "8 rejected" in ingested.output, ingested.output
    for command in (
        ("feeds",),
        ("subscribers", "import", str(root / "people.csv")),
        ("digest", "send", "weekly-en"),
        ("post",),
    ):
        result = invoke(root, *command)
        said = [line for line in result.output.splitlines() if "HTTP/1.1" not in line]
        assert result.exit_code == 0, (command, said)  # (the local server's log left out)

    settings = load_settings(config)
    store = Store(settings.state, settings.site.url)
    try:
        articles = store.latest(50)
        assert len(articles) == 9
        feeds = root / "public" / "feeds"
        files = {fmt: (feeds / name).read_bytes() for fmt, name in
                 (("rss", "rss.xml"), ("atom", "atom.xml"), ("json", "feed.json"))}  # fmt: skip
        check_feed_files(files, articles)

        secret = link_secret(settings.email.unsubscribe.secret, store)
        people = SubscriberStore(store.engine)
        mails = sorted((root / "var" / "outbox").glob("*.eml"))
        assert len(mails) == 2
        views = set()
        for path in mails:  # the outbox keeps the bytes SMTP sends (test_mail_wire)
            raw = path.read_bytes()
            reader = people.get(
                "nameless@example.org" if b"nameless@" in raw else "pema@example.org"
            )
            unsubscribe, view = check_raw_mail(raw, articles, name=reader.name, email=reader.email)
            claims = verify(
                secret, parse_qs(urlsplit(unsubscribe).query)["token"][0], "unsubscribe"
            )
            assert claims.subscriber_id == reader.id
            views.add(view)

        [view] = views
        email = settings.email
        base = live_app(create_app(settings, store, transport=lambda: open_transport(email)))
        page = requests.get(base + view.removeprefix(settings.email.unsubscribe.origin), timeout=10)
        policy = page.headers["Content-Security-Policy"]
        assert page.status_code == 200 and "default-src 'none'" in policy
        assert "script-src" not in policy
        tree = assert_inert(page.text, "web archive")
        subscribe = f"{settings.email.unsubscribe.origin}/subscribe?lang=en"
        check_digest_page(tree, articles, unsubscribe=None, name="", view=None, subscribe=subscribe)
    finally:
        store.close()

    by_url = {article.url: article for article in articles}
    posted = {kind: receivers.received(kind) for kind in PATHS}
    posted["file"] = [
        json.loads(line)
        for line in (root / "var" / "posts.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    for kind, bodies in posted.items():
        assert len(bodies) == len(articles), kind
        for body in bodies:
            url = posted_url(kind, body)
            article = by_url.get(url) or next(a for a in articles if unquote(a.url) == url)
            CHANNEL_CHECKS[kind](body, article)
