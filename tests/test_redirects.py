"""Channels never follow a redirect (finding a): a 3xx answer is a permanent failure
naming where it pointed, and the place it pointed to receives nothing.

Followed, a 301/302/303 turned the POST into a GET whose 200 landing page was recorded
"sent" while nothing was posted; a 307/308 re-sent the body, with its Authorization header
or signature, to the other host. Each channel type is tried against a real server on
127.0.0.1 whose posting endpoint redirects to a second server, which must stay silent.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Response

from pipeline.channels import Channel, ChannelContext, channel_types
from pipeline.channels.bluesky import BlueskyOptions
from pipeline.channels.discord import DiscordOptions
from pipeline.channels.mastodon import MastodonOptions
from pipeline.channels.slack import SlackOptions
from pipeline.channels.teams import TeamsOptions
from pipeline.channels.telegram import TelegramOptions
from pipeline.channels.webhook import WebhookOptions
from pipeline.errors import PermanentFailure
from pipeline.ledger import FAILED, Ledger
from pipeline.model import Item, Scan
from pipeline.posting import Poster, post_stream
from pipeline.redact import shown_url
from pipeline.settings import default_template
from pipeline.store import Store
from tests.conftest import REPO

STATUSES = [301, 302, 303, 307, 308]
# Every channel type that talks HTTP; the file channel only appends to a local file.
KINDS = ["mastodon", "bluesky", "slack", "discord", "teams", "telegram", "webhook"]

MASTODON_TOKEN = "mastodon-access-token-5f2a9c"
BLUESKY_PASSWORD = "bsky-app-pass-7h3k-2m9q"
TELEGRAM_TOKEN = "7011223344:AAH-telegram-bot-token-x9Qw"
SIGNING_SECRET = "whsec_signing-secret-41b7"
ACCESS_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkaWQ6cGxjOm5ld3Mi.access-signature-Zk3"
REFRESH_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzY29wZSI6InJlZnJlc2gi.refresh-signature-Pq8"
# Where each network posts; the webhook URLs are credentials in their own right.
HOOK_PATHS = {
    "slack": "/services/T0SLACK01/B0SLACK01/slack-hook-token-0123456789",
    "discord": "/api/webhooks/112233/discord-hook-token-0123456789abcdef",
    "teams": "/workflows/teams-flow-0123456789abcdef/triggers/manual/paths/invoke",
    "webhook": "/hooks/news-cms-hook-token-0123456789",
}
POST_PATHS = {
    "mastodon": "/api/v1/statuses",
    "bluesky": "/xrpc/com.atproto.repo.createRecord",
    "telegram": f"/bot{TELEGRAM_TOKEN}/sendMessage",
    **HOOK_PATHS,
}
SESSION_PATH = "/xrpc/com.atproto.server.createSession"
# What a landing page could answer that every channel would take for success: followed,
# a redirect would have been recorded "sent".
SUCCESS = {
    "id": "1101",
    "url": "https://social.example/@news/1101",
    "uri": "at://did:plc:news/app.bsky.feed.post/3kabc",
    "ok": True,
    "result": {"message_id": 7, "chat": {"id": 1, "username": "news"}},
}


class Memory:
    """The channel's memory between runs, in a dict: these tests touch no state store."""

    def __init__(self) -> None:
        self.values: dict[str, dict] = {}

    def value(self, name: str) -> dict:
        return dict(self.values.get(name, {}))

    def save_value(self, name: str, value: dict) -> None:
        self.values[name] = dict(value)


def serve_network(kind: str, server: HTTPServer) -> None:
    """The endpoints a channel needs before its post: Mastodon's limits, a Bluesky session
    and its "no such record yet" answer."""
    if kind == "mastodon":
        limits = {"configuration": {"statuses": {"max_characters": 500}}}
        server.expect_request("/api/v2/instance").respond_with_json(limits)
    if kind == "bluesky":
        session = {
            "accessJwt": ACCESS_JWT,
            "refreshJwt": REFRESH_JWT,
            "did": "did:plc:news",
            "handle": "news.example.org",
        }
        server.expect_request(SESSION_PATH, method="POST").respond_with_json(session)
        missing = {"error": "RecordNotFound", "message": "Could not locate record"}
        server.expect_request("/xrpc/com.atproto.repo.getRecord").respond_with_json(
            missing, status=400
        )


def channel_options(kind: str, base: str, **extra: Any) -> Any:
    """Options of a ``kind`` channel whose network is the server at ``base``."""
    common = {"type": kind, "template": REPO / default_template(kind), "timeout": 5, **extra}
    if kind == "mastodon":
        return MastodonOptions(
            instance=base, access_token=MASTODON_TOKEN, **{"images": False, **common}
        )
    if kind == "bluesky":
        return BlueskyOptions(
            handle="news.example.org", app_password=BLUESKY_PASSWORD, service=base, **common
        )
    if kind == "telegram":
        return TelegramOptions(
            bot_token=TELEGRAM_TOKEN, chat_id="@mountainnews", api_url=base, **common
        )
    if kind == "webhook":
        return WebhookOptions(url=base + HOOK_PATHS[kind], secret=SIGNING_SECRET, **common)
    options = {"slack": SlackOptions, "discord": DiscordOptions, "teams": TeamsOptions}[kind]
    return options(webhook_url=base + HOOK_PATHS[kind], **common)


def make_channel(kind: str, server: HTTPServer, context: ChannelContext, **extra: Any) -> Channel:
    serve_network(kind, server)
    options = channel_options(kind, server.url_for("").rstrip("/"), **extra)
    return channel_types()[kind](kind, options, context)


def redirect(status: int, location: str) -> Response:
    return Response("Moved", status, {"Location": location}, content_type="text/plain")


def hits(server: HTTPServer, path: str) -> int:
    return sum(request.path == path for request, _ in server.log)


@pytest.fixture(scope="module")
def target():
    """The host a redirect points to: it answers as if all were well, and must hear nothing."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def landing(target):
    target.clear()
    target.expect_request("/landing").respond_with_json(SUCCESS)
    yield target
    target.clear()


@pytest.fixture
def context(site):
    with requests.Session() as http:
        yield ChannelContext(http=http, site=site, memory=Memory())


# -- each channel type, each redirect status ----------------------------------------------


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_redirect_fails_the_post_and_is_not_followed(
    kind, status, httpserver, landing, context, make_article
):
    channel = make_channel(kind, httpserver, context)
    location = landing.url_for("/landing")
    httpserver.expect_request(POST_PATHS[kind]).respond_with_response(redirect(status, location))

    with pytest.raises(PermanentFailure) as failure:
        channel.send(channel.prepare(make_article()), "key-1")

    reason = failure.value.reason
    assert f"answered {status}" in reason and location in reason
    assert landing.log == []  # not a GET, not a re-POST, not the credentials
    assert hits(httpserver, POST_PATHS[kind]) == 1  # and not retried here either


@pytest.mark.parametrize("status", [307, 308])
def test_a_redirected_sign_in_does_not_send_the_password_on(
    status, httpserver, landing, context, make_article
):
    """Bluesky's createSession carries the app password in its body: a 307 would re-post it."""
    location = landing.url_for("/landing")
    httpserver.expect_request(SESSION_PATH).respond_with_response(redirect(status, location))
    options = channel_options("bluesky", httpserver.url_for("").rstrip("/"))
    channel = channel_types()["bluesky"]("bluesky", options, context)
    with pytest.raises(PermanentFailure) as failure:
        channel.send(channel.prepare(make_article()), "key-1")
    assert location in failure.value.reason
    assert landing.log == []


@pytest.mark.parametrize("status", [302, 307])
def test_a_redirected_request_for_limits_keeps_the_token_home(
    status, httpserver, landing, context, make_article
):
    """A GET with an Authorization header is not followed either."""
    location = landing.url_for("/landing")
    httpserver.expect_request("/api/v2/instance").respond_with_response(redirect(status, location))
    options = channel_options("mastodon", httpserver.url_for("").rstrip("/"))
    channel = channel_types()["mastodon"]("mastodon", options, context)
    with pytest.raises(PermanentFailure) as failure:
        channel.prepare(make_article())
    assert location in failure.value.reason
    assert landing.log == []


def test_the_location_is_shown_without_its_credentials(httpserver, landing, context, make_article):
    port = landing.port
    location = f"http://editor:hunter2-pass@127.0.0.1:{port}/landing?token=tok-9f8e7d6c&page=2"
    channel = make_channel("webhook", httpserver, context)
    httpserver.expect_request(POST_PATHS["webhook"]).respond_with_response(redirect(302, location))
    with pytest.raises(PermanentFailure) as failure:
        channel.send(channel.prepare(make_article()), "key-1")
    reason = failure.value.reason
    assert shown_url(location) in reason
    assert f"editor:***@127.0.0.1:{port}/landing" in reason and "page=2" in reason
    assert "hunter2-pass" not in reason and "tok-9f8e7d6c" not in reason
    assert landing.log == []


def test_a_relative_location_is_named_in_full(httpserver, context, make_article):
    channel = make_channel("slack", httpserver, context)
    httpserver.expect_request(POST_PATHS["slack"]).respond_with_response(redirect(301, "/moved"))
    with pytest.raises(PermanentFailure) as failure:
        channel.send(channel.prepare(make_article()), "key-1")
    assert httpserver.url_for("/moved") in failure.value.reason
    assert hits(httpserver, "/moved") == 0


def test_a_redirect_that_names_the_webhook_url_does_not_show_it(httpserver, context, make_article):
    """An http → https upgrade points at the secret URL itself: the host is named, the
    path (the credential) is not."""
    channel = make_channel("discord", httpserver, context)
    moved = "https://discord.example" + HOOK_PATHS["discord"] + "?wait=true"
    httpserver.expect_request(POST_PATHS["discord"]).respond_with_response(redirect(308, moved))
    with pytest.raises(PermanentFailure) as failure:
        channel.send(channel.prepare(make_article()), "key-1")
    reason = failure.value.reason
    assert "https://discord.example" in reason
    assert "discord-hook-token" not in reason


def test_a_lead_image_behind_a_redirect_is_still_fetched_without_the_token(
    httpserver, landing, context, make_article
):
    """Only credential-free GETs may follow: an image moved to a CDN still comes along."""
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    landing.expect_request("/cdn/glacier.png").respond_with_data(png, content_type="image/png")
    httpserver.expect_request("/images/glacier.png").respond_with_response(
        redirect(302, landing.url_for("/cdn/glacier.png"))
    )
    httpserver.expect_request("/api/v2/media", method="POST").respond_with_json(
        {"id": "m1", "url": "https://files.example/m1.png"}
    )
    httpserver.expect_request("/api/v1/statuses", method="POST").respond_with_json(SUCCESS)
    channel = make_channel("mastodon", httpserver, context, images=True)
    article = make_article(image=httpserver.url_for("/images/glacier.png"))
    channel.send(channel.prepare(article), "key-1")
    (fetched,) = [r for r, _ in landing.log if r.path == "/cdn/glacier.png"]
    assert "Authorization" not in fetched.headers
    (status,) = [r for r, _ in httpserver.log if r.path == "/api/v1/statuses"]
    assert status.get_json()["media_ids"] == ["m1"]


# -- through the posting stage: the ledger says failed, never sent ------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_redirected_post_is_recorded_failed(
    kind, httpserver, landing, site, state_url, make_article
):
    now = dt.datetime.now(dt.UTC)
    article = make_article(published=now - dt.timedelta(hours=1))
    location = landing.url_for("/landing")
    store = Store(state_url, site.url)
    try:
        store.apply("news", Scan(changed=[Item(article.id, "fp", article)]))
        with requests.Session() as http:
            context = ChannelContext(http=http, site=site, memory=store)
            channel = make_channel(kind, httpserver, context)
            httpserver.expect_request(POST_PATHS[kind]).respond_with_response(
                redirect(302, location)
            )
            report = Poster(store, Ledger(store.engine), sleep=lambda s: None).run([channel])[kind]
        assert not report.sent and [a for a, _ in report.failed] == [article.id]
        entry = Ledger(store.engine).entries(post_stream(kind))[article.id]
        assert entry.state == FAILED and "302" in entry.detail and location in entry.detail
        assert landing.log == []
        assert json.dumps(SUCCESS) not in (entry.detail or "")
    finally:
        store.close()
