"""Corrections: a posted article whose title, summary or URL changed, or that was taken
down, is corrected on each channel by its policy, once, as each network's API takes it
(checked at a local fake: method, path, auth, body). Both databases."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
from types import SimpleNamespace

import pytest
import requests
from werkzeug import Request, Response

from pipeline.channels import ChannelContext, Receipt
from pipeline.channels.bluesky import BlueskyChannel, BlueskyOptions, record_key
from pipeline.channels.discord import DiscordChannel, DiscordOptions
from pipeline.channels.file import FileChannel, FileOptions
from pipeline.channels.mastodon import MastodonChannel, MastodonOptions
from pipeline.channels.telegram import TelegramChannel, TelegramOptions
from pipeline.channels.webhook import WebhookChannel, WebhookOptions
from pipeline.correction_policy import correction_warnings
from pipeline.corrections import (
    Corrector,
    correction_item,
    delete_policy,
    fingerprint,
    update_policy,
)
from pipeline.errors import TemporaryFailure
from pipeline.ledger import SENT, UNCERTAIN, Ledger
from pipeline.model import Item, Scan
from pipeline.posting import Poster, idempotency_key, post_stream
from pipeline.settings import default_template
from pipeline.store import Store
from tests.conftest import REPO
from tests.test_channel_bluesky import DID, HANDLE, FakePds

NOW = dt.datetime(2026, 11, 3, 10, 0, tzinfo=dt.UTC)
TOKEN = "mastodon-token-123"
BOT = "123456:telegram-bot-token"
SECRET = "whsec-correction-test"
FIXED = "Glaciers lose mass for a sixth year"


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


@pytest.fixture
def context(http, site, store):
    return ChannelContext(http=http, site=site, memory=store, clock=lambda: NOW)


@pytest.fixture
def publish(store, make_article):
    """Publish (or change) the article; ``None`` takes it down (the source lost it)."""

    def publish(**fields):
        if fields.get("title") is None and "title" in fields:
            store.apply("news", Scan(complete=True))
            return None
        article = make_article(published=NOW - dt.timedelta(hours=1), **fields)
        store.apply(
            "news", Scan(changed=[Item("glacier-report.md", fingerprint(article), article)])
        )
        return article

    return publish


def run(store, channel):
    ledger = Ledger(store.engine, clock=lambda: NOW)
    return Poster(store, ledger, sleep=lambda s: None, clock=lambda: NOW).run([channel])[
        channel.name
    ]


def calls(server, method: str, path: str | None = None) -> list[Request]:
    return [r for r, _ in server.log if r.method == method and (path is None or r.path == path)]


def template(kind: str):
    return REPO / default_template(kind)


# -- Mastodon: PUT and DELETE /api/v1/statuses/:id ---------------------------------------

STATUS = {"id": "1101", "url": "https://social.example/@news/1101"}


def mastodon(httpserver, context, **options) -> MastodonChannel:
    """A channel on a fake instance that makes status 1101 for the first post."""
    from tests.test_channel_mastodon import instance_json

    httpserver.expect_request("/api/v2/instance").respond_with_json(instance_json())
    httpserver.expect_request("/api/v1/statuses", method="POST").respond_with_json(STATUS)
    settings = MastodonOptions(
        type="mastodon",
        instance=httpserver.url_for("").rstrip("/"),
        access_token=TOKEN,
        template=template("mastodon"),
        **options,
    )
    return MastodonChannel("masto", settings, context, poll_interval=0)


def test_mastodon_edits_the_status_once_then_deletes_it(httpserver, store, context, publish):
    masto = mastodon(httpserver, context, images=False)
    attached = {**STATUS, "media_attachments": [{"id": "77"}]}
    httpserver.expect_request("/api/v1/statuses/1101", method="GET").respond_with_json(attached)
    httpserver.expect_request("/api/v1/statuses/1101", method="PUT").respond_with_json(STATUS)
    httpserver.expect_request("/api/v1/statuses/1101", method="DELETE").respond_with_json(STATUS)
    publish()
    assert run(store, masto).sent == [("news/glacier-report", STATUS["url"])]

    publish(title=FIXED)
    first = run(store, masto)
    again = run(store, masto)

    (edit,) = calls(httpserver, "PUT")
    assert edit.headers["Authorization"] == f"Bearer {TOKEN}"
    body = edit.get_json()
    assert body["status"].startswith(FIXED) and body["media_ids"] == ["77"]
    assert "visibility" not in body  # an edit cannot change it
    assert first.corrected and not again.corrected and first.sent == again.sent == []
    assert len(calls(httpserver, "POST", "/api/v1/statuses")) == 1  # never a new post

    publish(title=None)
    gone = run(store, masto)
    run(store, masto)
    (deleted,) = calls(httpserver, "DELETE")
    assert deleted.path == "/api/v1/statuses/1101"
    assert deleted.headers["Authorization"] == f"Bearer {TOKEN}"
    assert [item for item, _ in gone.corrected] == ["news/glacier-report#delete"]


def test_a_status_deleted_by_hand_counts_as_deleted(httpserver, store, context, publish):
    masto = mastodon(httpserver, context)
    httpserver.expect_request("/api/v1/statuses/1101", method="DELETE").respond_with_json(
        {"error": "Record not found"}, status=404
    )
    publish()
    run(store, masto)
    publish(title=None)
    report = run(store, masto)
    assert report.ok and [i for i, _ in report.corrected] == ["news/glacier-report#delete"]


def test_ignore_leaves_the_post_as_it_was(httpserver, store, context, publish):
    masto = mastodon(httpserver, context, on_update="ignore", on_delete="ignore")
    publish()
    run(store, masto)
    publish(title=FIXED)
    run(store, masto)
    publish(title=None)
    run(store, masto)
    assert [r.method for r, _ in httpserver.log if "statuses" in r.path] == ["POST"]


def test_posts_from_before_corrections_are_never_corrected(httpserver, store, context, publish):
    """A row without a version (made before the upgrade) is left alone: no flood of edits."""
    masto = mastodon(httpserver, context)
    publish()
    run(store, masto)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE deliveries SET version = NULL")
    publish(title=FIXED)
    run(store, masto)
    publish(title=None)
    run(store, masto)
    assert [r.method for r, _ in httpserver.log if "statuses" in r.path] == ["POST"]


# -- Telegram: editMessageText, deleteMessage ---------------------------------------------


def telegram_channel(httpserver, context, chat_id: str) -> TelegramChannel:
    options = TelegramOptions(
        type="telegram",
        bot_token=BOT,
        chat_id=chat_id,
        api_url=httpserver.url_for("").rstrip("/"),
        template=template("telegram"),
    )
    return TelegramChannel("telegram", options, context)


def test_telegram_edits_and_deletes_the_message(httpserver, store, context, publish):
    sent = {"ok": True, "result": {"message_id": 42, "chat": {"username": "mountainnews"}}}
    bot = f"/bot{BOT}"
    httpserver.expect_request(f"{bot}/sendMessage", method="POST").respond_with_json(sent)
    not_modified = {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: message is "
        "not modified: specified new message content and reply markup are exactly "
        "the same",
    }
    httpserver.expect_oneshot_request(f"{bot}/editMessageText").respond_with_json(
        {"ok": True, "result": {"message_id": 42}}
    )
    httpserver.expect_request(f"{bot}/editMessageText").respond_with_json(not_modified, status=400)
    httpserver.expect_request(f"{bot}/deleteMessage").respond_with_json(
        {"ok": True, "result": True}
    )
    telegram = telegram_channel(httpserver, context, "@mountainnews")
    publish()
    run(store, telegram)
    publish(title=FIXED)
    report = run(store, telegram)

    (edit,) = calls(httpserver, "POST", f"{bot}/editMessageText")
    body = edit.get_json()
    assert body["chat_id"] == "@mountainnews" and body["message_id"] == 42
    assert FIXED in body["text"] and body["parse_mode"] == "HTML"
    assert [i for i, _ in report.corrected] == [
        correction_item("news/glacier-report", "update", _version(store))
    ]

    publish(title=None)
    run(store, telegram)
    (deleted,) = calls(httpserver, "POST", f"{bot}/deleteMessage")
    assert deleted.get_json() == {"chat_id": "@mountainnews", "message_id": 42}
    assert len(calls(httpserver, "POST", f"{bot}/sendMessage")) == 1


def test_telegram_message_not_modified_counts_as_done(httpserver, store, context, publish):
    """An edit that had arrived before the run stopped: sent again, Telegram says there
    is nothing to change, and that is success."""
    bot = f"/bot{BOT}"
    sent = {"ok": True, "result": {"message_id": 42, "chat": {}}}
    httpserver.expect_request(f"{bot}/sendMessage").respond_with_json(sent)
    not_modified = {"ok": False, "description": "Bad Request: message is not modified"}
    httpserver.expect_request(f"{bot}/editMessageText").respond_with_json(not_modified, status=400)
    telegram = telegram_channel(httpserver, context, "-1001234")
    publish()
    run(store, telegram)
    publish(title=FIXED)
    report = run(store, telegram)
    assert report.ok and len(report.corrected) == 1
    assert calls(httpserver, "POST", f"{bot}/editMessageText")[0].get_json()["chat_id"] == (
        -1001234
    )


# -- Discord: PATCH and DELETE {webhook}/messages/{id} ------------------------------------


def test_discord_patches_and_deletes_the_webhook_message(httpserver, store, context, publish):
    message = {"id": "1190000000000000001", "channel_id": "118", "guild_id": "117"}
    hook = "/api/webhooks/55/tok-en"
    httpserver.expect_request(hook, method="POST").respond_with_json(message)
    path = f"{hook}/messages/{message['id']}"
    httpserver.expect_request(path, method="PATCH").respond_with_json(message)
    httpserver.expect_request(path, method="DELETE").respond_with_data("", status=204)
    options = DiscordOptions(
        type="discord",
        webhook_url=httpserver.url_for(hook) + "?thread_id=9",
        template=template("discord"),
    )
    discord = DiscordChannel("discord", options, context)
    publish()
    run(store, discord)
    publish(title=FIXED)
    run(store, discord)
    run(store, discord)

    (edit,) = calls(httpserver, "PATCH")
    assert edit.path == path and edit.args.to_dict() == {"thread_id": "9"}
    assert edit.get_json()["embeds"][0]["title"] == FIXED
    assert edit.get_json()["allowed_mentions"] == {"parse": []}
    publish(title=None)
    run(store, discord)
    (deleted,) = calls(httpserver, "DELETE")
    assert deleted.path == path and deleted.args.to_dict() == {"thread_id": "9"}
    assert len(calls(httpserver, "POST", hook)) == 1


# -- webhook: signed article.updated / article.deleted events -----------------------------


def test_webhook_sends_signed_update_and_delete_events(httpserver, store, context, publish):
    httpserver.expect_request("/hook", method="POST").respond_with_json({"id": "r1"})
    options = WebhookOptions(
        type="webhook", url=httpserver.url_for("/hook"), secret=SECRET, template=template("webhook")
    )
    hook = WebhookChannel("hook", options, context)
    publish()
    run(store, hook)
    publish(title=FIXED)
    run(store, hook)
    run(store, hook)
    publish(title=None)
    run(store, hook)
    run(store, hook)

    events = calls(httpserver, "POST", "/hook")
    assert [e.get_json()["event"] for e in events] == [
        "article.published",
        "article.updated",
        "article.deleted",
    ]
    for event in events:
        signed = event.headers["X-Pipeline-Timestamp"].encode() + b"." + event.get_data()
        digest = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
        assert event.headers["X-Pipeline-Signature"] == f"sha256={digest}"
        assert event.headers["Idempotency-Key"] == event.get_json()["key"]
    updated, deleted = events[1].get_json(), events[2].get_json()
    assert updated["article"]["title"] == FIXED and FIXED in updated["text"]
    assert deleted["article"] == {"id": "news/glacier-report"}
    assert len({e.headers["Idempotency-Key"] for e in events}) == 3


class SlowReceiver:
    """A webhook receiver that holds the second event until released: the client gives
    up meanwhile, so its fate is unknown to it."""

    def __init__(self, httpserver, context):
        self.arrived: list[str] = []
        self.release = threading.Event()
        httpserver.expect_request("/hook").respond_with_handler(self.receive)
        self.options = WebhookOptions(
            type="webhook",
            url=httpserver.url_for("/hook"),
            template=template("webhook"),
            timeout=0.2,
        )
        self.channel = WebhookChannel("hook", self.options, context)

    def receive(self, request: Request) -> Response:
        self.arrived.append(request.get_json()["event"])
        if len(self.arrived) == 2:
            self.release.wait(10)
        return Response("{}", 200, content_type="application/json")


def test_a_webhook_correction_of_unknown_fate_is_not_sent_again(
    httpserver, store, context, publish
):
    """An event is a new request: one that may have arrived is uncertain, not repeated."""
    receiver = SlowReceiver(httpserver, context)
    publish()
    run(store, receiver.channel)
    publish(title=FIXED)
    report = run(store, receiver.channel)
    run(store, receiver.channel)
    receiver.release.set()
    assert receiver.arrived == ["article.published", "article.updated"]
    assert len(report.uncertain) == 1
    item = report.uncertain[0][0]
    assert Ledger(store.engine).entries(post_stream("hook"))[item].state == UNCERTAIN


# -- file: appended events, when asked for ------------------------------------------------


def test_the_file_channel_appends_events_only_when_asked(tmp_path, store, context, publish):
    quiet = FileChannel(
        "quiet",
        FileOptions(type="file", path=tmp_path / "quiet.jsonl", template=template("file")),
        context,
    )
    loud = FileChannel(
        "loud",
        FileOptions(
            type="file",
            path=tmp_path / "loud.jsonl",
            template=template("file"),
            on_update="edit",
            on_delete="delete",
        ),
        context,
    )
    publish()
    run(store, quiet), run(store, loud)
    publish(title=FIXED)
    run(store, quiet), run(store, loud), run(store, loud)
    publish(title=None)
    run(store, quiet), run(store, loud), run(store, loud)

    def lines(name):
        return [json.loads(x) for x in (tmp_path / f"{name}.jsonl").read_text().splitlines()]

    assert len(lines("quiet")) == 1
    posted, updated, deleted = lines("loud")
    assert "event" not in posted and posted["title"] != FIXED
    assert updated["event"] == "article.updated" and updated["title"] == FIXED
    assert deleted["event"] == "article.deleted" and deleted["id"] == "news/glacier-report"


# -- Bluesky: a reply by default; edit = re-create; deleteRecord --------------------------

DELETE = "/xrpc/com.atproto.repo.deleteRecord"


@pytest.fixture
def pds(httpserver):
    pds = FakePds(httpserver)

    def delete_record(request: Request) -> Response:
        body = request.get_json()
        assert request.headers["Authorization"] == f"Bearer {pds.access}"
        assert (body["repo"], body["collection"]) == (DID, "app.bsky.feed.post")
        pds.records.pop(body["rkey"], None)
        return Response("{}", 200, content_type="application/json")

    httpserver.expect_request(DELETE, method="POST").respond_with_handler(delete_record)
    return pds


def bluesky(pds, context, **options) -> BlueskyChannel:
    settings = BlueskyOptions(
        type="bluesky",
        handle=HANDLE,
        app_password=pds.password,
        service=pds.url,
        template=template("bluesky"),
        **options,
    )
    return BlueskyChannel("bluesky", settings, context)


def test_bluesky_replies_updated_under_the_post_by_default(pds, store, context, publish):
    sky = bluesky(pds, context)
    publish()
    run(store, sky)
    (original,) = pds.records
    publish(title=FIXED)
    run(store, sky)
    run(store, sky)

    assert len(pds.records) == 2 and original in pds.records
    (reply_key,) = set(pds.records) - {original}
    reply = pds.records[reply_key]
    assert reply["text"].startswith(f"Updated: {FIXED}")
    parent = {"uri": f"at://{DID}/app.bsky.feed.post/{original}", "cid": "bafyreib2rxk3rh6kzwq"}
    assert reply["reply"] == {"root": parent, "parent": parent}
    assert reply["embed"]["external"]["title"] == FIXED
    facet = reply["facets"][0]["features"][0]
    assert facet["uri"] == "https://news.example.org/news/glacier-report/"
    item = correction_item("news/glacier-report", "update", _version(store))
    assert reply_key == record_key(idempotency_key(post_stream("bluesky"), item))

    publish(title=None)
    run(store, sky)
    assert set(pds.records) == {reply_key}  # the post itself is deleted; the reply stays


def test_bluesky_edit_recreates_the_post_and_deletes_the_old_one(pds, store, context, publish):
    sky = bluesky(pds, context, on_update="edit")
    publish()
    run(store, sky)
    (original,) = pds.records
    publish(title=FIXED)
    report = run(store, sky)
    (remade,) = pds.records
    assert remade != original and pds.records[remade]["embed"]["external"]["title"] == FIXED
    url = report.corrected[0][1]
    assert url == f"https://bsky.app/profile/{HANDLE}/post/{remade}"

    publish(title=None)
    run(store, sky)
    assert pds.records == {}  # the re-created post is the one deleted
    deletes = [r.get_json()["rkey"] for r in pds.calls(DELETE)]
    assert deletes == [original, remade]


def test_a_pending_correction_is_superseded_by_a_newer_one(httpserver, store, context, publish):
    """Changed twice before the first correction went through: only the newest is made."""
    masto = mastodon(httpserver, context, max_attempts=1)
    httpserver.expect_request("/api/v1/statuses/1101", method="GET").respond_with_json(STATUS)
    httpserver.expect_oneshot_request("/api/v1/statuses/1101", method="PUT").respond_with_json(
        {"error": "busy"}, status=503
    )
    httpserver.expect_request("/api/v1/statuses/1101", method="PUT").respond_with_json(STATUS)
    publish()
    run(store, masto)
    publish(title="A first correction")
    assert run(store, masto).pending
    publish(title=FIXED)
    later = Ledger(store.engine, clock=lambda: NOW + dt.timedelta(hours=1))
    Poster(store, later, sleep=lambda s: None, clock=lambda: NOW).run([masto])
    edits = [r.get_json()["status"] for r in calls(httpserver, "PUT")]
    assert edits[0].startswith("A first correction") and edits[1].startswith(FIXED)
    entries = Ledger(store.engine).entries(post_stream("masto"))
    states = sorted(e.state for i, e in entries.items() if "#update" in i)
    assert states == ["sent", "skipped"]
    assert next(e for e in entries.values() if e.state == SENT and "#" in e.item).version == (
        _version(store)
    )


def _version(store) -> str:
    article = store.get("news/glacier-report")
    assert article is not None
    return fingerprint(article)


# -- pipeline check -----------------------------------------------------------------------


def test_check_warns_of_a_policy_the_network_cannot_follow(project, monkeypatch):
    from tests.conftest import invoke

    monkeypatch.setenv("SLACK_HOOK", "https://hooks.slack.com/services/T0/B0/x")
    monkeypatch.setenv("TEAMS_HOOK", "https://example.webhook.office.com/webhookb2/x")
    root = project()
    config = root / "config" / "pipeline.yaml"
    text = config.read_text(encoding="utf-8")
    asked = (
        "channels:\n"
        "  slack:\n"
        "    type: slack\n"
        "    webhook_url: ${SLACK_HOOK}\n"
        "    on_update: edit\n"
        "  teams:\n"
        "    type: teams\n"
        "    webhook_url: ${TEAMS_HOOK}\n"
        "    on_delete: delete\n"
        "  quiet:\n"
        "    type: slack\n"
        "    webhook_url: ${SLACK_HOOK}\n"
        "    on_update: ignore\n"
    )
    config.write_text(text.replace("channels:\n", asked, 1), encoding="utf-8")
    result = invoke(root, "check")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "channel" in line]
    assert lines == [
        "warning: channel slack: on_update: edit is not something a slack channel can do "
        "(it can: none: a message once sent stays as it is); its posts are not corrected "
        "that way",
        "warning: channel teams: on_delete: delete is not something a teams channel can do "
        "(it can: none: a message once sent stays as it is); its posts are not corrected "
        "that way",
    ]


def test_pipeline_post_says_what_it_corrected(project):
    from tests.conftest import invoke

    root = project()
    config = root / "config" / "pipeline.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("    per_run: 50\n", "    per_run: 50\n    on_update: edit\n"))
    assert invoke(root, "run").exit_code == 0
    article = root / "examples/site/news/2024-05-29-icimod-craes-clean-air-agreement.md"
    old = "ICIMOD and CRAES sign agreement to tackle air pollution across the region"
    article.write_text(article.read_text().replace(old, FIXED, 1), encoding="utf-8")
    assert invoke(root, "ingest").exit_code == 0

    result = invoke(root, "post")

    assert result.exit_code == 0 and "archive: 0 posted, 1 corrected" in result.stdout
    lines = (root / "var" / "posts.jsonl").read_text(encoding="utf-8").splitlines()
    last = json.loads(lines[-1])
    assert (last["event"], last["title"]) == ("article.updated", FIXED)
    assert "event" not in json.loads(lines[-2])


def test_an_uncertain_correction_is_listed_as_one(httpserver, store, context, publish):
    """`pipeline deliveries uncertain` names a correction whose fate is unknown as such."""
    from types import SimpleNamespace

    from pipeline.cli.deliveries import _uncertain

    receiver = SlowReceiver(httpserver, context)
    publish()
    run(store, receiver.channel)
    publish(title=FIXED)
    run(store, receiver.channel)
    receiver.release.set()
    project = SimpleNamespace(settings=SimpleNamespace(channels={"hook": receiver.options}))
    (unsure,) = _uncertain(project, store, "hook", None)
    assert unsure.what.startswith("update of the post to hook: https://news.example.org/news/")


def test_a_title_changed_back_and_forth_is_corrected_each_time(httpserver, store, context, publish):
    masto = mastodon(httpserver, context)
    httpserver.expect_request("/api/v1/statuses/1101", method="GET").respond_with_json(STATUS)
    httpserver.expect_request("/api/v1/statuses/1101", method="PUT").respond_with_json(STATUS)
    original = publish().title
    run(store, masto)
    for title in (FIXED, original, FIXED):
        publish(title=title)
        run(store, masto)
        run(store, masto)
    edits = [r.get_json()["status"] for r in calls(httpserver, "PUT")]
    assert [e.split("\n")[0] for e in edits] == [FIXED, original, FIXED]


def test_an_article_id_holding_a_hash_is_posted_once_and_corrected_once(
    httpserver, store, context, publish
):
    """A feed item keyed by a link with a fragment: its id holds "#", which must not make
    its post look like a correction (nor its corrections like another article's)."""
    masto = mastodon(httpserver, context, images=False)
    httpserver.expect_request("/api/v1/statuses/1101", method="GET").respond_with_json(STATUS)
    httpserver.expect_request("/api/v1/statuses/1101", method="PUT").respond_with_json(STATUS)
    article_id = "upstream:https://partner.example.org/report#comments"
    publish(id=article_id)
    posted = run(store, masto)
    again = run(store, masto)
    assert posted.sent == [(article_id, STATUS["url"])] and not posted.corrected
    assert again.sent == [] and not again.corrected

    publish(id=article_id, title=FIXED)
    fixed = run(store, masto)
    run(store, masto)
    assert [article for article, _ in fixed.corrected] == [
        correction_item(article_id, "update", fingerprint(store.get(article_id)), shown=1)
    ]
    assert len(calls(httpserver, "PUT")) == 1
    assert len(calls(httpserver, "POST", "/api/v1/statuses")) == 1


def test_a_scheduled_post_counts_its_corrections_in_the_run_history(project):
    from pipeline.actions import Action, Actions
    from pipeline.assembly import http_session
    from pipeline.settings import load_settings
    from tests.conftest import invoke

    root = project()
    config = root / "config" / "pipeline.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("    per_run: 50\n", "    per_run: 50\n    on_update: edit\n"))
    assert invoke(root, "run").exit_code == 0
    article = root / "examples/site/news/2024-05-29-icimod-craes-clean-air-agreement.md"
    old = "ICIMOD and CRAES sign agreement to tackle air pollution across the region"
    article.write_text(article.read_text().replace(old, FIXED, 1), encoding="utf-8")
    assert invoke(root, "ingest").exit_code == 0

    settings = load_settings(config)
    store = Store(settings.state, settings.site.url)
    try:
        (step,) = Actions(settings, store, http=http_session).run(Action("post"))
    finally:
        store.close()
    assert step.counts == {"posted": 0, "corrected": 1}


# -- which corrections are due ---------------------------------------------------------------


def publish_all(store, make_article, titles: dict[str, str | None]):
    """Publish each ``slug: title`` as ``news/{slug}``; a title of None takes it down."""
    items = []
    for slug, title in titles.items():
        if title is None:
            continue
        article = make_article(
            id=f"news/{slug}",
            url=f"https://news.example.org/news/{slug}/",
            title=title,
            published=NOW - dt.timedelta(hours=1),
        )
        items.append(Item(f"{slug}.md", fingerprint(article), article))
    store.apply("news", Scan(changed=items, complete=True))


def file_channel(tmp_path, context, name="out", **options) -> FileChannel:
    settings = FileOptions(
        type="file", path=tmp_path / f"{name}.jsonl", template=template("file"), **options
    )
    return FileChannel(name, settings, context)


def lines(channel: FileChannel) -> list[dict]:
    path = channel.options.path
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_only_the_changed_article_is_corrected_among_many(tmp_path, store, context, make_article):
    """A post from before corrections, an unchanged post and a changed one, in that order:
    each is looked at in turn, and only the changed one is corrected."""
    out = file_channel(tmp_path, context, on_update="edit", on_delete="delete")
    publish_all(store, make_article, {"a": "Old A", "b": "Same B", "c": "Old C"})
    assert run(store, out).ok
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE deliveries SET version = NULL WHERE item = 'news/a'")
    publish_all(store, make_article, {"a": "New A", "b": "Same B", "c": "New C"})
    stream = post_stream("out")
    due = Corrector(store, Ledger(store.engine, clock=lambda: NOW)).due(out, stream)
    version = fingerprint(store.get("news/c"))
    assert [(c.item, c.kind, c.article_id, c.version) for c in due] == [
        (correction_item("news/c", "update", version), "update", "news/c", version)
    ]
    report = run(store, out)
    assert report.ok and [i for i, _ in report.corrected] == [due[0].item]
    assert [(x.get("event"), x["id"]) for x in lines(out)[3:]] == [("article.updated", "news/c")]


def test_an_article_taken_down_holds_up_no_other_correction(tmp_path, store, context, make_article):
    out = file_channel(tmp_path, context, on_update="edit", on_delete="delete")
    publish_all(store, make_article, {"a": "Story A", "b": "Story B"})
    run(store, out)
    publish_all(store, make_article, {"a": None, "b": "Story B, corrected"})
    report = run(store, out)
    assert [i.split(":")[0] for i, _ in report.corrected] == ["news/a#delete", "news/b#update"]
    assert [(x.get("event"), x["id"]) for x in lines(out)[2:]] == [
        ("article.deleted", "news/a"),
        ("article.updated", "news/b"),
    ]


def test_each_policy_alone(httpserver, store, context, publish):
    """on_update: ignore with on_delete: delete deletes and never edits; on_update: edit
    with on_delete: ignore edits and never deletes."""
    from tests.test_channel_mastodon import instance_json

    httpserver.expect_request("/api/v2/instance").respond_with_json(instance_json())
    for n, status in (("1", "2201"), ("2", "2202")):
        httpserver.expect_request(
            "/api/v1/statuses", method="POST", headers={"Authorization": f"Bearer token-{n}"}
        ).respond_with_json({"id": status, "url": f"https://social.example/@news/{status}"})
        path = f"/api/v1/statuses/{status}"
        httpserver.expect_request(path, method="GET").respond_with_json({"id": status})
        httpserver.expect_request(path, method="PUT").respond_with_json({"id": status})
        httpserver.expect_request(path, method="DELETE").respond_with_json({"id": status})

    def channel(n, **policy):
        settings = MastodonOptions(
            type="mastodon",
            instance=httpserver.url_for("").rstrip("/"),
            access_token=f"token-{n}",
            template=template("mastodon"),
            images=False,
            **policy,
        )
        return MastodonChannel(f"masto{n}", settings, context, poll_interval=0)

    deletes = channel("1", on_update="ignore", on_delete="delete")
    edits = channel("2", on_update="edit", on_delete="ignore")
    publish()
    run(store, deletes), run(store, edits)
    publish(title=FIXED)
    run(store, deletes), run(store, edits)
    publish(title=None)
    run(store, deletes), run(store, edits)
    changes = [(r.method, r.path) for r in calls(httpserver, "PUT") + calls(httpserver, "DELETE")]
    assert changes == [("PUT", "/api/v1/statuses/2202"), ("DELETE", "/api/v1/statuses/2201")]


def test_after_a_delete_a_republished_article_is_left_alone(tmp_path, store, context, publish):
    out = file_channel(tmp_path, context, on_update="edit", on_delete="delete")
    publish()
    run(store, out)
    publish(title=None)
    run(store, out)
    publish(title=FIXED)  # back, and changed: its post is gone, so nothing to correct
    report = run(store, out)
    assert report.ok and report.sent == report.corrected == []
    assert [x.get("event") for x in lines(out)] == [None, "article.deleted"]


def test_a_delete_that_failed_for_now_is_made_on_a_later_run(httpserver, store, context, publish):
    masto = mastodon(httpserver, context, max_attempts=1)
    httpserver.expect_oneshot_request("/api/v1/statuses/1101", method="DELETE").respond_with_json(
        {"error": "busy"}, status=503
    )
    httpserver.expect_request("/api/v1/statuses/1101", method="DELETE").respond_with_json(STATUS)
    publish()
    run(store, masto)
    publish(title=None)
    assert run(store, masto).pending
    later = Ledger(store.engine, clock=lambda: NOW + dt.timedelta(hours=1))
    report = Poster(store, later, sleep=lambda s: None, clock=lambda: NOW).run([masto])["masto"]
    assert [i for i, _ in report.corrected] == ["news/glacier-report#delete"]
    assert len(calls(httpserver, "DELETE")) == 2


def test_a_superseded_correction_says_so(httpserver, store, context, publish):
    masto = mastodon(httpserver, context, max_attempts=1)
    httpserver.expect_request("/api/v1/statuses/1101", method="GET").respond_with_json(STATUS)
    httpserver.expect_oneshot_request("/api/v1/statuses/1101", method="PUT").respond_with_json(
        {"error": "busy"}, status=503
    )
    httpserver.expect_request("/api/v1/statuses/1101", method="PUT").respond_with_json(STATUS)
    publish()
    run(store, masto)
    publish(title="A first correction")
    run(store, masto)
    first = correction_item("news/glacier-report", "update", _version(store))
    publish(title=FIXED)
    run(store, masto)
    row = Ledger(store.engine).entries(post_stream("masto"))[first]
    assert (row.state, row.detail) == ("skipped", "superseded by a newer correction")


def test_an_edit_answered_without_a_url_keeps_the_posts(httpserver, store, context, publish):
    masto = mastodon(httpserver, context, images=False)
    httpserver.expect_request("/api/v1/statuses/1101", method="GET").respond_with_json(STATUS)
    httpserver.expect_request("/api/v1/statuses/1101", method="PUT").respond_with_json(
        {"id": "1101"}
    )
    publish()
    run(store, masto)
    publish(title=FIXED)
    assert [url for _, url in run(store, masto).corrected] == [STATUS["url"]]


def test_a_correction_says_what_a_new_post_would_with_the_articles_translations(
    tmp_path, store, context, make_article
):
    own = tmp_path / "with-languages.txt.j2"
    own.write_text("{{ title }} [{% for t in article.translations %}{{ t.language }}{% endfor %}]")
    settings = FileOptions(
        type="file", path=tmp_path / "out.jsonl", template=own, languages=("en",), on_update="edit"
    )
    out = FileChannel("out", settings, context)

    def publish(title):
        english = make_article(title=title, published=NOW - dt.timedelta(hours=1))
        french = make_article(
            id="news/glacier-report-fr",
            url="https://news.example.org/fr/news/glacier-report/",
            title="Les glaciers fondent",
            language="fr",
            translation_of="news/glacier-report",
            published=NOW - dt.timedelta(hours=1),
        )
        items = [Item(f"{a.id}.md", fingerprint(a), a) for a in (english, french)]
        store.apply("news", Scan(changed=items))

    publish("Glaciers lose mass")
    run(store, out)
    publish(FIXED)
    run(store, out)
    assert [x["text"] for x in lines(out)] == ["Glaciers lose mass [fr]", f"{FIXED} [fr]"]


def test_a_large_archive_is_looked_up_in_full(store, make_article):
    """More than a thousand posted articles, all still live: none is taken for removed."""
    from sqlalchemy import insert

    from pipeline.schema import deliveries

    count = 1001
    articles = [
        make_article(id=f"news/{n:04}", url=f"https://news.example.org/news/{n:04}/")
        for n in range(count)
    ]
    store.apply("news", Scan(changed=[Item(f"{a.id}.md", f"fp{a.id}", a) for a in articles]))
    moment = NOW.replace(tzinfo=None)
    rows = [
        {
            "stream": "post:out",
            "item": a.id,
            "state": SENT,
            "attempts": 1,
            "key": a.id,
            "version": fingerprint(a),
            "created_at": moment,
            "updated_at": moment,
        }
        for a in articles
    ]
    with store.engine.begin() as conn:
        conn.execute(insert(deliveries), rows)
    masto = SimpleNamespace(
        options=SimpleNamespace(on_update="edit", on_delete="delete"),
        corrections=frozenset({"edit", "delete"}),
    )
    corrector = Corrector(store, Ledger(store.engine, clock=lambda: NOW))
    assert corrector.due(masto, "post:out") == []  # type: ignore[arg-type]


# -- what a channel does with a change --------------------------------------------------------


def test_policies_of_built_in_and_plug_in_channels(tmp_path, context):
    def plug_in(**attributes):
        options = SimpleNamespace(on_update=None, on_delete=None)
        return SimpleNamespace(options=options, **attributes)

    mute = plug_in()  # from before corrections: says nothing, so can do nothing
    able = plug_in(corrections=frozenset({"edit", "delete"}))  # no defaults of its own
    slack = plug_in(corrections=frozenset(), default_on_update="edit")
    assert (update_policy(mute), delete_policy(mute)) == ("ignore", "ignore")  # type: ignore[arg-type]
    assert (update_policy(able), delete_policy(able)) == ("edit", "delete")  # type: ignore[arg-type]
    assert (update_policy(slack), delete_policy(slack)) == ("ignore", "ignore")  # type: ignore[arg-type]
    out = file_channel(tmp_path, context, on_update="reply", on_delete="delete")
    assert (update_policy(out), delete_policy(out)) == ("ignore", "delete")  # cannot reply


def test_check_names_what_a_network_can_do_instead(httpserver):
    def masto(**policy):
        return MastodonOptions(
            type="mastodon",
            instance="https://social.example",
            access_token=TOKEN,
            template=template("mastodon"),
            **policy,
        )

    assert correction_warnings({"fine": masto(on_update="edit", on_delete="delete")}) == []
    assert correction_warnings({"masto": masto(on_update="reply")}) == [
        "channel masto: on_update: reply is not something a mastodon channel can do (it can: "
        "delete, edit); its posts are not corrected that way"
    ]


def test_the_fingerprint_of_an_article_is_the_same_in_every_release(make_article):
    """Rows keep it: a fingerprint computed differently after an upgrade would correct
    every post ever made."""
    assert fingerprint(make_article()) == (
        "2e470a82fb31146272bb7ca3720c5c64f9a030474e6e710b2d553dded1234c45"
    )


# -- a correction a stopped run left ``sending`` -----------------------------------------------


def _crashed(store, stream: str, item: str, key: str) -> None:
    """A process on another host that claimed ``item`` two hours ago and stopped."""
    gone = Ledger(store.engine, clock=lambda: NOW - dt.timedelta(hours=2), owner="crashed-host:1")
    assert gone.claim(stream, item, key)


def test_an_interrupted_reply_is_made_again_with_its_own_key_and_never_twice(
    pds, store, context, make_article
):
    """Bluesky makes a reply under a record key derived from the key it was sent with:
    sent again with that key, a reply that had arrived is found, not made again."""
    sky = bluesky(pds, context)
    publish_all(store, make_article, {"a": "Story A", "b": "Story B"})
    run(store, sky)
    publish_all(store, make_article, {"a": "Story A, corrected", "b": "Story B, corrected"})
    stream = post_stream("bluesky")
    rows = Ledger(store.engine).entries(stream)
    items = {}
    for slug in ("a", "b"):
        article = store.get(f"news/{slug}")
        assert article is not None
        items[slug] = correction_item(article.id, "update", fingerprint(article))
        _crashed(store, stream, items[slug], f"first-key-{slug}")
    posted = rows["news/a"]
    sky.update(  # the stopped run's reply to A had arrived; B's had not
        sky.prepare(store.get("news/a")),
        Receipt(posted.remote_id, posted.remote_url),
        "first-key-a",
        "reply",
    )
    report = run(store, sky)
    assert sorted(i for i, _ in report.corrected) == sorted(items.values()) and report.ok
    replies = {k for k, r in pds.records.items() if "reply" in r}
    assert replies == {record_key("first-key-a"), record_key("first-key-b")}
    assert len(pds.records) == 4  # two posts, one reply each
    rows = Ledger(store.engine).entries(stream)
    for slug, item in items.items():
        assert rows[item].state == SENT
        assert rows[item].version == fingerprint(store.get(f"news/{slug}"))


def test_an_interrupted_webhook_correction_is_uncertain_and_listed(
    httpserver, store, context, publish
):
    """An event is a new request: one a stopped run may have sent is never repeated. The
    interrupted post of another article is posting's to settle, not the corrector's."""
    from types import SimpleNamespace as Project

    from pipeline.cli.deliveries import _uncertain
    from pipeline.posting import ChannelReport

    httpserver.expect_request("/hook", method="POST").respond_with_json({"id": "r1"})
    options = WebhookOptions(
        type="webhook", url=httpserver.url_for("/hook"), template=template("webhook")
    )
    hook = WebhookChannel("hook", options, context)
    stream = post_stream("hook")
    publish()
    run(store, hook)
    publish(title=FIXED)
    run(store, hook)
    (updated,) = [
        r for r in calls(httpserver, "POST", "/hook") if r.get_json()["event"] == "article.updated"
    ]
    item = correction_item("news/glacier-report", "update", _version(store))
    assert Ledger(store.engine).entries(stream)[item].key == updated.headers["Idempotency-Key"]

    publish(title=None)
    _crashed(store, stream, "news/another", "k-other")  # a post, left for posting; first
    _crashed(store, stream, "news/glacier-report#delete", "k-delete")
    ledger = Ledger(store.engine, clock=lambda: NOW)
    report = ChannelReport()
    courier = Poster(store, ledger, sleep=lambda s: None, clock=lambda: NOW).courier(hook, report)
    Corrector(store, ledger).run(hook, stream, courier, lambda i: idempotency_key(stream, i))
    courier.finish()

    rows = ledger.entries(stream)
    assert (rows["news/another"].state, rows["news/another"].owner) == ("sending", "crashed-host:1")
    deleted = rows["news/glacier-report#delete"]
    why = "the run stopped while correcting the post; it may or may not be corrected"
    assert (deleted.state, deleted.detail) == (UNCERTAIN, why)
    assert report.uncertain == [("news/glacier-report#delete", why)]
    assert len(calls(httpserver, "POST", "/hook")) == 2  # no delete event sent
    project = Project(settings=Project(channels={"hook": options}))
    (unsure,) = _uncertain(project, store, "hook", None)
    assert unsure.what == (
        "delete of the post to hook: https://news.example.org/news/glacier-report/ "
        "(news/glacier-report#delete)"
    )
    assert unsure.check.endswith("whether it got Idempotency-Key k-delete")


def test_a_correction_whose_text_cannot_be_made_now_waits_and_holds_up_nothing(
    tmp_path, store, context, make_article
):
    class Flaky(FileChannel):
        def __init__(self, *args):
            super().__init__(*args)
            self.failures: list[Exception] = []

        def prepare(self, article):
            if self.failures:
                raise self.failures.pop()
            return super().prepare(article)

    settings = FileOptions(
        type="file", path=tmp_path / "out.jsonl", template=template("file"), on_update="edit"
    )
    out = Flaky("out", settings, context)
    publish_all(store, make_article, {"a": "Story A", "b": "Story B"})
    run(store, out)
    publish_all(store, make_article, {"a": "Story A, corrected", "b": "Story B, corrected"})
    out.failures = [TemporaryFailure("GET /api/v2/instance: 503")]
    first = run(store, out)
    second = run(store, out)
    assert [i.split("#")[0] for i, _ in first.corrected] == ["news/b"]
    assert [i.split("#")[0] for i, _ in second.corrected] == ["news/a"]
    assert [(x.get("event"), x["id"]) for x in lines(out)[2:]] == [
        ("article.updated", "news/b"),
        ("article.updated", "news/a"),
    ]
