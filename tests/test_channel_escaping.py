"""Titles, summaries and authors are plain text on every network: what each one receives
(on a real HTTP server on 127.0.0.1) shows markup written in an article as typed, and the
article's own link still works as a link.

- Discord reads Markdown in embed titles and descriptions: every Markdown character gets a
  backslash (Discord shows the character, drops the backslash); mentions never ping.
- Teams reads Markdown in a TextBlock and nothing in a TextRun: article text is in TextRuns.
- Slack mrkdwn has three control characters, ``& < >``: escaped, so ``<url|text>`` links and
  ``<!channel>`` cannot be written (Slack has no escape for ``* _ ~``; they stay).
- Telegram's HTML parse mode: ``& < >`` (and quotes) are entities.
- Mastodon and Bluesky take plain text: sent as is; Bluesky links only by facet.
"""

from __future__ import annotations

import json
import re

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.channels import ChannelContext
from pipeline.channels.bluesky import BlueskyChannel, BlueskyOptions
from pipeline.channels.discord import DiscordChannel, DiscordOptions, plain_markdown
from pipeline.channels.mastodon import MastodonChannel, MastodonOptions
from pipeline.channels.slack import SlackChannel, SlackOptions
from pipeline.channels.teams import TeamsChannel, TeamsOptions
from pipeline.channels.telegram import TelegramChannel, TelegramOptions
from pipeline.posting import idempotency_key, post_stream
from pipeline.settings import default_template
from tests.conftest import REPO
from tests.test_channel_bluesky import CREATE, HANDLE, FakePds

URL = "https://news.example.org/news/glacier-report/"
TITLE = (
    "It's [x](javascript:alert(1)) **bold** <b>hi</b> *_~| <!channel> @everyone & "
    "[click](https://evil.example)"
)
SUMMARY = "<script>alert(1)</script> `code` ||spoiler|| <@123> <https://evil.example|click> # tag"
AUTHOR = "Pema *G* <Gyamtsho>"
STAMP = "2026-11-03T09:00:00Z"


@pytest.fixture
def article(make_article):
    return make_article(title=TITLE, summary=SUMMARY, authors=(AUTHOR,), tags=())


def options(kind: str, **values):
    classes = {
        "slack": SlackOptions,
        "discord": DiscordOptions,
        "teams": TeamsOptions,
        "telegram": TelegramOptions,
        "mastodon": MastodonOptions,
        "bluesky": BlueskyOptions,
    }
    return classes[kind](type=kind, template=REPO / default_template(kind), **values)


def received(httpserver, path: str) -> dict:
    """The JSON body of the one request the network got at ``path``, from its raw bytes."""
    (request,) = [r for r, _ in httpserver.log if r.path == path and r.method == "POST"]
    return json.loads(request.get_data().decode("utf-8"))


# -- Discord ----------------------------------------------------------------------------------


def test_discord_shows_markdown_as_typed_and_pings_no_one(httpserver, channel_context, article):
    httpserver.expect_request("/discord", method="POST").respond_with_json(
        {"id": "1", "channel_id": "2", "guild_id": "3"}
    )
    discord = DiscordChannel(
        "discord", options("discord", webhook_url=httpserver.url_for("/discord")), channel_context
    )
    discord.send(discord.prepare(article), "key")

    body = received(httpserver, "/discord")
    assert body == {
        "embeds": [
            {
                "title": (
                    r"It's \[x\](javascript:alert(1)) \*\*bold\*\* \<b\>hi\</b\> \*\_\~\| "
                    r"\<!channel\> @everyone & \[click\](https://evil.example)"
                ),
                "url": URL,  # the title is the article's link
                "timestamp": STAMP,
                "description": (
                    r"\<script\>alert(1)\</script\> \`code\` \|\|spoiler\|\| \<@123\> "
                    r"\<https://evil.example|click> \# tag"  # Discord links that address whole
                ),
                "author": {"name": AUTHOR},  # Discord shows an author name as plain text
            }
        ],
        "allowed_mentions": {"parse": []},  # @everyone, roles and users never ping
    }


@pytest.mark.parametrize(
    ("typed", "sent"),
    [
        ("- one\n+ two\n1. three\n  * four", "\\- one\n\\+ two\n1\\. three\n  \\*" + " four"),
        ("# heading\n> quote\n-# small", "\\# heading\n\\> quote\n-\\# small"),
        ("1.5 m of ice, 2026 - a record", "1.5 m of ice, 2026 - a record"),  # not markers
        # Web addresses stay whole, so they stay clickable: a backslash would end up in them.
        (
            "See https://en.wikipedia.org/wiki/Primer_(film) and https://x.org/a_b_c.",
            "See https://en.wikipedia.org/wiki/Primer_(film) and https://x.org/a_b_c.",
        ),
        ("a_b https://x.org/a*b* c*", "a\\_b https://x.org/a*b* c\\*"),  # Discord's link
        ("(https://x.org/a)] <@1>", "(https://x.org/a)] \\<@1\\>"),
        ("https://x.org/a]]<@1>", "https://x.org/a]]<@1\\>"),  # see plain_markdown
        ("back\\slash", "back\\\\slash"),
    ],
)
def test_discord_escapes_line_markers_but_not_links(typed, sent):
    assert plain_markdown(typed) == sent


def test_discord_limits_count_the_escaped_text(channel_context, make_article):
    discord = DiscordChannel(
        "d", options("discord", webhook_url="https://h.example/x"), channel_context
    )
    post = discord.prepare(make_article(title="*" * 200, summary="_" * 5000))
    embed = post.body["embeds"][0]
    assert len(embed["title"]) <= 256 and len(embed["description"]) <= 4096
    assert embed["title"].startswith("\\*\\*") and embed["description"].startswith("\\_\\_")


DISCORD_LINK = re.compile(r"(?:https?|steam)://[^\s<]+[^<.,:;\"')\]\s]")  # Discord's own
DISCORD_ESCAPE = re.compile(r"\\([^0-9A-Za-z\s])")  # what Discord shows as the bare character
MARKUP = re.compile(r"[*_~|`<>\[\]#]|^[ \t]*(?:[-+]|\d+[.)])[ \t]", re.MULTILINE)


def outside_links(text: str) -> list[str]:
    return DISCORD_LINK.split(text)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from([*"*_~|`<>[]#-+.()\\@: \n1aZ冰", "https://x.org/a_(b)", "<@1>", "[x](y)"]),
        max_size=40,
    ).map("".join)
)
def test_discord_shows_any_text_as_typed(text):
    sent = plain_markdown(text)
    # Read as Discord reads it: links whole, "\X" shown as X. What shows is what was typed.
    shown = "".join(
        part if DISCORD_LINK.fullmatch(part) else DISCORD_ESCAPE.sub(r"\1", part)
        for part in re.split(f"({DISCORD_LINK.pattern})", sent)
    )
    assert shown == text
    # And nothing outside a link could start Markdown: every such character is escaped,
    # but for what Discord would take into the link before it ("]", and a "<" after it).
    parts = outside_links(sent)
    for index, part in enumerate(parts):
        if index:  # it follows a link
            part = re.sub(r"^[.,:;\"')\]]*<?", "", part)
        assert not MARKUP.search(DISCORD_ESCAPE.sub("x", part)), part


# -- Teams ------------------------------------------------------------------------------------


def test_teams_puts_article_text_only_in_text_runs(httpserver, channel_context, article):
    httpserver.expect_request("/teams", method="POST").respond_with_data("", status=202)
    teams = TeamsChannel(
        "teams", options("teams", webhook_url=httpserver.url_for("/teams")), channel_context
    )
    teams.send(teams.prepare(article), "key")

    card = received(httpserver, "/teams")["attachments"][0]["content"]
    assert card["body"] == [
        {
            "type": "RichTextBlock",
            "inlines": [
                {
                    "type": "TextRun",
                    "text": TITLE,  # exactly as typed: a TextRun reads no Markdown
                    "size": "Large",
                    "weight": "Bolder",
                    "selectAction": {"type": "Action.OpenUrl", "url": URL},
                }
            ],
        },
        {
            "type": "RichTextBlock",
            "inlines": [
                {
                    "type": "TextRun",
                    "text": f"{AUTHOR} · {{{{DATE({STAMP}, SHORT)}}}}",
                    "isSubtle": True,
                }
            ],
            "spacing": "None",
        },
        {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": SUMMARY}]},
        {
            "type": "ActionSet",
            "actions": [{"type": "Action.OpenUrl", "title": "Read more", "url": URL}],
        },
    ]
    assert '"TextBlock"' not in json.dumps(card)  # no element that reads Markdown


# -- Slack ------------------------------------------------------------------------------------


def test_slack_escapes_its_control_characters(httpserver, channel_context, article):
    httpserver.expect_request("/slack", method="POST").respond_with_data("ok")
    slack = SlackChannel(
        "slack", options("slack", webhook_url=httpserver.url_for("/slack")), channel_context
    )
    slack.send(slack.prepare(article), "key")

    body = received(httpserver, "/slack")
    title = (
        "It's [x](javascript:alert(1)) **bold** &lt;b&gt;hi&lt;/b&gt; *_~| &lt;!channel&gt; "
        "@everyone &amp; [click](https://evil.example)"
    )
    summary = (
        "&lt;script&gt;alert(1)&lt;/script&gt; `code` ||spoiler|| &lt;@123&gt; "
        "&lt;https://evil.example|click&gt; # tag"
    )
    section, context = body["blocks"]
    # The only link is the article's: <url|title>, the title unable to close it early.
    assert section["text"] == {"type": "mrkdwn", "text": f"*<{URL}|{title}>*\n{summary}"}
    assert body["text"] == f"{title}\n{summary}"
    assert context["elements"][0]["text"].startswith("Pema *G* &lt;Gyamtsho&gt; · <!date^")
    shown = section["text"]["text"] + body["text"] + context["elements"][0]["text"]
    dates = re.findall(r"<!date\^[^>]*>", shown)
    assert re.findall(r"<[^>]*>", shown) == [f"<{URL}|{title}>", *dates]


# -- Telegram ---------------------------------------------------------------------------------


def test_telegram_html_has_only_the_templates_tags(httpserver, channel_context, article):
    token = "123456:ABC-DEF"
    httpserver.expect_request(f"/bot{token}/sendMessage", method="POST").respond_with_json(
        {"ok": True, "result": {"message_id": 7, "chat": {"id": 1, "type": "channel"}}}
    )
    telegram = TelegramChannel(
        "telegram",
        options(
            "telegram",
            bot_token=token,
            chat_id="@news",
            api_url=httpserver.url_for("").rstrip("/"),
        ),
        channel_context,
    )
    telegram.send(telegram.prepare(article), "key")

    body = received(httpserver, f"/bot{token}/sendMessage")
    assert body["parse_mode"] == "HTML"
    assert body["text"] == (
        "<b>It&#39;s [x](javascript:alert(1)) **bold** &lt;b&gt;hi&lt;/b&gt; *_~| "
        "&lt;!channel&gt; @everyone &amp; [click](https://evil.example)</b>\n\n"
        "&lt;script&gt;alert(1)&lt;/script&gt; `code` ||spoiler|| &lt;@123&gt; "
        "&lt;https://evil.example|click&gt; # tag\n\n"
        f'<a href="{URL}">{URL}</a>'
    )
    assert body["link_preview_options"] == {"url": URL}


# -- Mastodon and Bluesky: plain text already ---------------------------------------------------


def test_mastodon_sends_the_text_as_typed(httpserver, channel_context, article):
    httpserver.expect_request("/api/v2/instance").respond_with_json(
        {"configuration": {"statuses": {"max_characters": 500, "characters_reserved_per_url": 23}}}
    )
    httpserver.expect_request("/api/v1/statuses", method="POST").respond_with_json({"id": "9"})
    mastodon = MastodonChannel(
        "mastodon",
        options(
            "mastodon",
            instance=httpserver.url_for("").rstrip("/"),
            access_token="token",
            images=False,
        ),
        channel_context,
    )
    mastodon.send(mastodon.prepare(article), "key")

    body = received(httpserver, "/api/v1/statuses")
    assert body["status"] == f"{TITLE}\n\n{SUMMARY}\n\n{URL}"  # Mastodon escapes HTML itself


def test_bluesky_links_only_the_article_by_facet(httpserver, state_url, site, make_article):
    from pipeline.store import Store

    title = f"冰川 👨\u200d👩\u200d👧 {TITLE}"  # bytes, not characters, place the facet
    article = make_article(title=title, summary=SUMMARY, authors=(AUTHOR,), tags=())

    pds = FakePds(httpserver)
    store = Store(state_url, site.url)
    try:
        with requests.Session() as http:
            context = ChannelContext(http=http, site=site, memory=store)
            settings_ = options(
                "bluesky", handle=HANDLE, app_password=pds.password, service=pds.url
            )
            bluesky = BlueskyChannel("bluesky", settings_, context)
            key = idempotency_key(post_stream("bluesky"), article.id)
            bluesky.send(bluesky.prepare(article), key)
    finally:
        store.close()

    record = received(httpserver, CREATE)["record"]
    text = f"{title}\n\n{SUMMARY}\n\n{URL}"
    assert record["text"] == text
    start = len(text[: text.index(URL)].encode("utf-8"))
    assert record["facets"] == [
        {
            "index": {"byteStart": start, "byteEnd": start + len(URL.encode("utf-8"))},
            "features": [{"$type": "app.bsky.richtext.facet#link", "uri": URL}],
        }
    ]
    assert record["embed"]["external"]["title"] == title
    assert record["embed"]["external"]["description"] == SUMMARY
