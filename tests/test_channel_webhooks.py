"""Slack, Discord and Teams webhooks against a real HTTP server on 127.0.0.1: what each
network receives, how text is fitted to its limits, and how its failures are reported."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pytest
import requests
from werkzeug import Request, Response

from pipeline.channels import ChannelContext, Receipt
from pipeline.channels.compose import graphemes, utf16_units
from pipeline.channels.discord import DiscordChannel, DiscordOptions
from pipeline.channels.slack import SlackChannel, SlackOptions
from pipeline.channels.teams import TeamsChannel, TeamsOptions
from pipeline.errors import PermanentFailure, TemporaryFailure
from pipeline.ledger import SENT, Ledger
from pipeline.model import Item, Scan
from pipeline.posting import Poster, post_stream
from pipeline.settings import default_template
from tests.conftest import REPO

KINDS = {
    "slack": (SlackChannel, SlackOptions),
    "discord": (DiscordChannel, DiscordOptions),
    "teams": (TeamsChannel, TeamsOptions),
}
IMAGE = "https://news.example.org/media/glacier.jpg"
# Long texts in three scripts: spaced words (with a character Slack escapes), Chinese,
# and emoji that are several code points each (ZWJ family, flag, skin tone).
LONG = {
    "english": "Rock & ice retreat up the valley every single year. " * 120,
    "chinese": "冰川连续第五年加速消融，科学家呼吁采取行动。" * 300,
    "emoji": "👩‍👩‍👧 🇳🇵 👍🏽 " * 700,
}


@pytest.fixture
def channel(httpserver, channel_context):
    def make(kind: str, path: str = "/hook", **options):
        cls, options_cls = KINDS[kind]
        settings = options_cls(
            type=kind,
            webhook_url=httpserver.url_for(path),
            template=REPO / default_template(kind),
            **options,
        )
        return cls(kind, settings, channel_context)

    return make


def received(httpserver) -> tuple[Request, dict]:
    """The one request the server got, and its JSON body decoded from UTF-8."""
    assert len(httpserver.log) == 1
    request = httpserver.log[0][0]
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/json"
    return request, json.loads(request.get_data().decode("utf-8"))


def assert_cut_from(kept: str, original: str) -> None:
    """``kept`` is ``original`` cut at a word or grapheme boundary, marked with ``…``."""
    assert kept.endswith("…")
    head = kept.removesuffix("…")
    assert original.startswith(head)
    assert graphemes(original[: len(head)]) + graphemes(original[len(head) :]) == graphemes(
        original
    ), "cut inside a grapheme"


@pytest.mark.parametrize("kind", KINDS)
def test_no_webhook_deduplicates_retries(kind, channel):
    assert channel(kind).dedupe_window is None


# -- Slack -------------------------------------------------------------------------------------


def test_slack_posts_block_kit_with_escaped_mrkdwn(channel, httpserver, make_article):
    httpserver.expect_request("/hook/slack", method="POST").respond_with_data("ok")
    article = make_article(
        title="<script> & co", summary="Ice <b>loss</b> & gain", image=IMAGE, image_alt="A glacier"
    )
    slack = channel("slack", "/hook/slack")
    post = slack.prepare(article)
    assert slack.send(post, "key") == Receipt(None, None)

    _, body = received(httpserver)
    assert body == post.body
    section, context = body["blocks"]
    heading = "*<https://news.example.org/news/glacier-report/|&lt;script&gt; &amp; co>*"
    assert section["text"] == {
        "type": "mrkdwn",
        "text": f"{heading}\nIce &lt;b&gt;loss&lt;/b&gt; &amp; gain",
    }
    assert section["accessory"] == {"type": "image", "image_url": IMAGE, "alt_text": "A glacier"}
    assert body["text"] == "&lt;script&gt; &amp; co\nIce &lt;b&gt;loss&lt;/b&gt; &amp; gain"
    assert context["type"] == "context"
    byline = context["elements"][0]
    assert byline["type"] == "mrkdwn"
    stamp = int(article.published.timestamp())
    assert byline["text"] == (
        f"Pema Gyamtsho · <!date^{stamp}^{{date_short_pretty}}|2026-11-03 09:00 UTC>"
    )
    assert post.text == section["text"]["text"] and post.limit == 3000


def test_slack_without_an_image_has_no_accessory(channel, make_article):
    body = channel("slack").prepare(make_article(authors=())).body
    assert "accessory" not in body["blocks"][0]
    assert body["blocks"][1]["elements"][0]["text"].startswith("<!date^")


@pytest.mark.parametrize("script", LONG)
def test_slack_section_is_fitted_to_3000_after_escaping(script, channel, httpserver, make_article):
    httpserver.expect_request("/hook").respond_with_data("ok")
    slack = channel("slack")
    post = slack.prepare(make_article(summary=LONG[script]))
    section = post.body["blocks"][0]["text"]["text"]
    assert post.length == utf16_units(section) <= 3000
    assert post.length > 3000 - 20  # cut near the limit, not far below it
    _, kept = section.split("\n", 1)
    unescaped = kept.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert_cut_from(unescaped, " ".join(LONG[script].split()))
    slack.send(post, "key")
    assert received(httpserver)[1] == post.body  # emoji and Chinese arrive intact


def test_slack_long_title_leaves_room_for_the_text(channel, make_article):
    post = channel("slack").prepare(make_article(title=LONG["emoji"], summary="Short summary."))
    heading = post.text.split("\n")[0]
    assert utf16_units(heading) <= 1500 and post.text.endswith("\nShort summary.")


# -- Discord ----------------------------------------------------------------------------------


MESSAGE = {"id": "1190000000000000001", "channel_id": "1180000000000000002", "type": 0}


def test_discord_posts_an_embed_and_waits_for_the_message(channel, httpserver, make_article):
    httpserver.expect_request(
        "/hook/discord", method="POST", query_string="wait=true"
    ).respond_with_json({**MESSAGE, "guild_id": "1170000000000000003"})
    article = make_article(title="@everyone 冰川 <@&123> report", image=IMAGE)
    discord = channel("discord", "/hook/discord", username="Mountain News")
    post = discord.prepare(article)
    receipt = discord.send(post, "key")

    request, body = received(httpserver)
    assert request.args["wait"] == "true" and body == post.body
    assert body == {
        "embeds": [
            {
                "title": "@everyone 冰川 \\<@&123\\> report",  # shown as typed, no mention
                "url": article.url,
                "timestamp": "2026-11-03T09:00:00Z",
                "description": article.summary,
                "author": {"name": "Pema Gyamtsho"},
                "image": {"url": IMAGE},
            }
        ],
        "allowed_mentions": {"parse": []},
        "username": "Mountain News",
    }
    assert receipt == Receipt(
        MESSAGE["id"],
        "https://discord.com/channels/1170000000000000003/1180000000000000002/1190000000000000001",
    )


def test_discord_keeps_the_urls_own_query(channel, httpserver, make_article):
    httpserver.expect_request("/hook", query_string="thread_id=42&wait=true").respond_with_json(
        {**MESSAGE, "guild_id": "7"}
    )
    discord = channel("discord")
    discord.options = discord.options.model_copy(
        update={"webhook_url": httpserver.url_for("/hook") + "?thread_id=42"}
    )
    assert discord.send(discord.prepare(make_article()), "key").remote_id == MESSAGE["id"]


def test_discord_reads_the_server_once_from_the_webhook(channel, httpserver, make_article):
    httpserver.expect_request("/hook", method="POST").respond_with_json(MESSAGE)
    httpserver.expect_request("/hook", method="GET").respond_with_json(
        {"id": "5", "type": 1, "guild_id": "1170000000000000003", "channel_id": "8"}
    )
    discord = channel("discord")
    post = discord.prepare(make_article())
    first, second = discord.send(post, "a"), discord.send(post, "b")
    assert first == second and first.remote_url is not None
    assert first.remote_url.startswith("https://discord.com/channels/1170000000000000003/")
    assert [r.method for r, _ in httpserver.log] == ["POST", "GET", "POST"]  # remembered


def test_discord_without_a_known_server_has_no_link(channel, httpserver, make_article):
    httpserver.expect_request("/hook", method="POST").respond_with_json(MESSAGE)
    httpserver.expect_request("/hook", method="GET").respond_with_data("gone", status=404)
    discord = channel("discord")
    assert discord.send(discord.prepare(make_article()), "k") == Receipt(MESSAGE["id"], None)


@pytest.mark.parametrize("script", LONG)
def test_discord_title_and_description_fit(script, channel, make_article):
    title = " ".join(LONG[script].split())[:600]
    post = channel("discord").prepare(make_article(title=title, summary=LONG[script]))
    embed = post.body["embeds"][0]
    assert 256 - 12 < utf16_units(embed["title"]) <= 256
    assert_cut_from(embed["title"], title)
    assert 4096 - 12 < post.length == utf16_units(embed["description"]) <= 4096
    assert_cut_from(embed["description"], " ".join(LONG[script].split()))


@pytest.mark.parametrize(
    ("title", "sent"), [("冰" * 256, "冰" * 256), ("冰" * 257, "冰" * 255 + "…")]
)
def test_discord_title_at_the_limit_is_kept_whole(title, sent, channel, make_article):
    assert channel("discord").prepare(make_article(title=title)).body["embeds"][0]["title"] == sent


# -- Teams ------------------------------------------------------------------------------------


def test_teams_posts_an_adaptive_card(channel, httpserver, make_article):
    httpserver.expect_request("/hook/teams", method="POST").respond_with_data("", status=202)
    article = make_article(image=IMAGE, image_alt="A glacier", summary=LONG["chinese"])
    teams = channel("teams", "/hook/teams")
    post = teams.prepare(article)
    assert teams.send(post, "key") == Receipt(None, None)

    _, body = received(httpserver)
    assert body == post.body and body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    title, byline, image, text, actions = card["body"]
    # Article text goes into TextRuns, which Teams shows as written (no Markdown).
    assert title == {
        "type": "RichTextBlock",
        "inlines": [
            {
                "type": "TextRun",
                "text": article.title,
                "size": "Large",
                "weight": "Bolder",
                "selectAction": {"type": "Action.OpenUrl", "url": article.url},
            }
        ],
    }
    assert byline == {
        "type": "RichTextBlock",
        "inlines": [
            {
                "type": "TextRun",
                "text": "Pema Gyamtsho · {{DATE(2026-11-03T09:00:00Z, SHORT)}}",
                "isSubtle": True,
            }
        ],
        "spacing": "None",
    }
    assert image == {"type": "Image", "url": IMAGE, "altText": "A glacier", "size": "Stretch"}
    assert text == {  # not cut
        "type": "RichTextBlock",
        "inlines": [{"type": "TextRun", "text": LONG["chinese"].strip()}],
    }
    assert actions == {
        "type": "ActionSet",
        "actions": [{"type": "Action.OpenUrl", "title": "Read more", "url": article.url}],
    }
    assert post.limit is None and post.text == LONG["chinese"].strip()


def test_teams_button_speaks_the_articles_language(channel, make_article):
    card = channel("teams").prepare(make_article(language="zh-CN")).body["attachments"][0]
    assert card["content"]["body"][-1]["actions"][0]["title"] == "阅读全文"
    assert card["content"]["lang"] == "zh"


# -- failures, the same for all three -----------------------------------------------------------


def _answer(kind: str, status: int, reason: str, **headers: str) -> Response:
    """How each network words a failure: Slack in plain text, the others in JSON."""
    if kind == "slack":
        return Response(reason, status=status, headers=headers)
    body = {"message": reason, "code": 10015}
    if kind == "teams":
        body = {"error": {"code": "TriggerInputSchemaMismatch", "message": reason}}
    return Response(json.dumps(body), status=status, headers=headers, mimetype="application/json")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("status", "reason"),
    [(400, "invalid_payload"), (403, "action_prohibited"), (404, "no_service"), (410, "gone")],
)
def test_refusals_are_permanent_with_the_networks_reason(
    kind, status, reason, channel, httpserver, make_article
):
    httpserver.expect_request("/hook").respond_with_response(_answer(kind, status, reason))
    hook = channel(kind)
    with pytest.raises(PermanentFailure) as failure:
        hook.send(hook.prepare(make_article()), "key")
    assert str(status) in failure.value.reason and reason in failure.value.reason


@pytest.mark.parametrize("kind", KINDS)
def test_server_errors_are_temporary(kind, channel, httpserver, make_article):
    httpserver.expect_request("/hook").respond_with_response(_answer(kind, 500, "rollup_error"))
    hook = channel(kind)
    with pytest.raises(TemporaryFailure) as failure:
        hook.send(hook.prepare(make_article()), "key")
    assert not failure.value.unknown_outcome and failure.value.retry_after is None


def test_slack_429_waits_as_retry_after_says(channel, httpserver, make_article):
    answer = Response("rate_limited", status=429, headers={"Retry-After": "7"})
    httpserver.expect_request("/hook").respond_with_response(answer)
    slack = channel("slack")
    with pytest.raises(TemporaryFailure) as failure:
        slack.send(slack.prepare(make_article()), "key")
    assert failure.value.retry_after == 7


def test_discord_429_waits_as_the_json_says(channel, httpserver, make_article):
    limited = {"message": "You are being rate limited.", "retry_after": 1.5, "global": False}
    httpserver.expect_request("/hook").respond_with_json(limited, status=429)
    discord = channel("discord")
    with pytest.raises(TemporaryFailure) as failure:
        discord.send(discord.prepare(make_article()), "key")
    assert failure.value.retry_after == 1.5


@pytest.mark.parametrize("kind", KINDS)
def test_a_timeout_may_have_posted(kind, channel, httpserver, make_article):
    answered = threading.Event()

    def slow(request: Request) -> Response:
        answered.wait(5)  # until the client has given up
        return Response("ok")

    httpserver.expect_request("/hook").respond_with_handler(slow)
    hook = channel(kind, timeout=0.2)
    with pytest.raises(TemporaryFailure) as failure:
        hook.send(hook.prepare(make_article()), "key")
    assert failure.value.unknown_outcome
    answered.set()  # finish the request here, so it does not leak into the next test
    deadline = time.monotonic() + 5
    while not httpserver.log and time.monotonic() < deadline:
        time.sleep(0.01)


# -- end to end through the posting stage ----------------------------------------------------------


def test_discord_rate_limit_then_success_posts_once(httpserver, store, make_article, site):
    """429 (retry_after 0.01), then 200: one message, ledger ``sent``; a rerun posts nothing."""
    published = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    article = make_article(published=published, title="冰川 👩‍👩‍👧 report")
    store.apply("news", Scan(changed=[Item("glacier-report.md", "fp", article)]))
    limited = {"message": "You are being rate limited.", "retry_after": 0.01, "global": False}
    matcher = {"method": "POST", "query_string": "wait=true"}
    httpserver.expect_ordered_request("/hook", **matcher).respond_with_json(limited, status=429)
    httpserver.expect_ordered_request("/hook", **matcher).respond_with_json(
        {**MESSAGE, "guild_id": "1170000000000000003"}
    )
    options = DiscordOptions(
        type="discord",
        webhook_url=httpserver.url_for("/hook"),
        template=REPO / default_template("discord"),
    )
    ledger = Ledger(store.engine)
    waits: list[float] = []
    poster = Poster(store, ledger, sleep=waits.append)

    with requests.Session() as http:
        context = ChannelContext(http=http, site=site, memory=store)
        first = poster.run([DiscordChannel("discord", options, context)])["discord"]
        link = "https://discord.com/channels/1170000000000000003/1180000000000000002/"
        assert first.ok and first.sent == [(article.id, link + MESSAGE["id"])]
        assert waits == [0.01]  # Discord's retry_after, honoured
        entry = ledger.entries(post_stream("discord"))[article.id]
        assert entry.state == SENT and entry.remote_id == MESSAGE["id"]
        titles = [json.loads(r.get_data())["embeds"][0]["title"] for r, _ in httpserver.log]
        assert titles == ["冰川 👩‍👩‍👧 report"] * 2  # the same body, twice: one message

        second = poster.run([DiscordChannel("discord", options, context)])["discord"]
        assert second.ok and second.sent == [] and len(httpserver.log) == 2  # nothing re-sent
        assert ledger.entries(post_stream("discord"))[article.id] == entry
