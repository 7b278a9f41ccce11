"""Corrections: a posted article whose title, summary or URL changed, or that was taken
down, is corrected on each channel by its policy, once, as each network's API takes it
(checked at a local fake: method, path, auth, body). Both databases."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading

import pytest
import requests
from werkzeug import Request, Response

from pipeline.channels import ChannelContext
from pipeline.channels.bluesky import BlueskyChannel, BlueskyOptions, record_key
from pipeline.channels.discord import DiscordChannel, DiscordOptions
from pipeline.channels.file import FileChannel, FileOptions
from pipeline.channels.mastodon import MastodonChannel, MastodonOptions
from pipeline.channels.telegram import TelegramChannel, TelegramOptions
from pipeline.channels.webhook import WebhookChannel, WebhookOptions
from pipeline.corrections import correction_item, fingerprint
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
def store(state_url, site):
    store = Store(state_url, site.url)
    yield store
    store.close()


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
