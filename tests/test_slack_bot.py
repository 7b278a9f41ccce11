"""Slack through a bot token: posts with chat.postMessage and corrects them with chat.update
and chat.delete, through the real posting stage (ledger, Corrector), against a fake Slack
Web API on 127.0.0.1 that checks method, path, token and JSON body. Slack's ``ok: false``
refusals fail with Slack's reason, ``ratelimited`` waits. The options take a webhook URL
or a bot token, never both, and `pipeline check` knows which one can correct. Both
databases."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from typing import Any

import pytest
import requests
from werkzeug import Request, Response

from pipeline.channels import ChannelContext
from pipeline.channels.slack import SlackChannel, SlackOptions
from pipeline.correction_policy import abilities, update_policy
from pipeline.corrections import correction_item, fingerprint
from pipeline.ledger import FAILED, SENT, UNCERTAIN, Ledger
from pipeline.model import Item, Scan
from pipeline.posting import Poster, post_stream
from pipeline.settings import default_template
from tests.conftest import REPO, invoke
from tests.test_settings import MINIMAL, problems, write_config

NOW = dt.datetime(2026, 11, 3, 10, 0, tzinfo=dt.UTC)
TOKEN = "xoxb-1234567890-0987654321-slackbottoken"
CHANNEL = "C0123456789"
FIXED = "Glaciers lose mass for a sixth year"
ARTICLE = "news/glacier-report"
TS = "1793700000.000100"
PERMALINK = f"https://mountainnews.slack.com/archives/{CHANNEL}/p1793700000000100"


class FakeSlack:
    """Slack's Web API as far as the channel uses it: every call is logged; a wrong or
    missing token is ``invalid_auth``, as Slack answers it; messages are kept by ts; an
    answer queued in ``next`` for a method is given once, before the real behaviour."""

    def __init__(self, httpserver):
        self.url = httpserver.url_for("/api")
        self.calls: list[tuple[str, Request]] = []
        self.messages: dict[str, dict[str, Any]] = {}
        self.next: dict[str, list[Response]] = {}
        self._ts = (f"1793700000.{n:06d}" for n in itertools.count(100))
        for method in ("chat.postMessage", "chat.update", "chat.delete", "chat.getPermalink"):
            httpserver.expect_request(f"/api/{method}").respond_with_handler(self.handle)

    def handle(self, request: Request) -> Response:
        method = request.path.removeprefix("/api/")
        self.calls.append((method, request))
        if self.next.get(method):
            return self.next[method].pop(0)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return answer({"ok": False, "error": "invalid_auth"})
        if method == "chat.getPermalink":
            ts = request.args["message_ts"]
            permalink = f"https://mountainnews.slack.com/archives/{request.args['channel']}/p"
            return answer({"ok": True, "permalink": permalink + ts.replace(".", "")})
        body = request.get_json()
        if method == "chat.postMessage":
            ts = next(self._ts)
            self.messages[ts] = body
            return answer({"ok": True, "channel": body["channel"], "ts": ts, "message": {}})
        if body.get("ts") not in self.messages:
            return answer({"ok": False, "error": "message_not_found"})
        if method == "chat.update":
            self.messages[body["ts"]] = body
        else:
            del self.messages[body["ts"]]
        return answer({"ok": True, "channel": body["channel"], "ts": body["ts"]})

    def called(self, method: str) -> list[Request]:
        return [request for name, request in self.calls if name == method]

    def refuse(self, method: str, error: str, status: int = 200, **headers: str) -> None:
        """Answer the next call of ``method`` with Slack's ``ok: false`` and ``error``."""
        refusal = answer({"ok": False, "error": error}, status)
        refusal.headers.update(headers)
        self.next.setdefault(method, []).append(refusal)


def answer(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status, content_type="application/json; charset=utf-8")


@pytest.fixture
def slack(httpserver) -> FakeSlack:
    return FakeSlack(httpserver)


@pytest.fixture
def context(site, store):
    with requests.Session() as http:
        yield ChannelContext(http=http, site=site, memory=store, clock=lambda: NOW)


@pytest.fixture
def publish(store, make_article):
    """Publish (or change) the article; ``title=None`` takes it down (the source lost it)."""

    def publish(**fields):
        if "title" in fields and fields["title"] is None:
            store.apply("news", Scan(complete=True))
            return None
        article = make_article(published=NOW - dt.timedelta(hours=1), **fields)
        store.apply(
            "news", Scan(changed=[Item("glacier-report.md", fingerprint(article), article)])
        )
        return article

    return publish


def bot(slack: FakeSlack, context, **options) -> SlackChannel:
    settings = SlackOptions(
        type="slack",
        bot_token=TOKEN,
        channel=CHANNEL,
        api_url=slack.url,
        template=REPO / default_template("slack"),
        **options,
    )
    return SlackChannel("slack", settings, context)


def run(store, channel, at: dt.datetime = NOW):
    ledger = Ledger(store.engine, clock=lambda: at)
    poster = Poster(store, ledger, sleep=lambda s: None, clock=lambda: NOW)
    return poster.run([channel])[channel.name]


def entry(store, item: str = ARTICLE):
    return Ledger(store.engine).entries(post_stream("slack"))[item]


# -- posting ------------------------------------------------------------------------------


def test_a_post_is_one_chat_post_message_and_keeps_its_ts(slack, store, context, publish):
    channel = bot(slack, context)
    article = publish()
    report = run(store, channel)
    again = run(store, channel)

    assert report.sent == [(ARTICLE, PERMALINK)] and again.sent == []
    (request,) = slack.called("chat.postMessage")
    assert request.method == "POST" and request.path == "/api/chat.postMessage"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    body = json.loads(request.get_data().decode("utf-8"))
    assert body == dict(channel.prepare(article).body)
    assert body["channel"] == CHANNEL and body["unfurl_links"] is False
    assert body["text"].startswith(article.title)
    section, byline = body["blocks"]
    assert section["text"]["text"].startswith(f"*<{article.url}|{article.title}>*")
    assert byline["type"] == "context"
    (link,) = slack.called("chat.getPermalink")
    assert link.method == "GET" and link.args.to_dict() == {"channel": CHANNEL, "message_ts": TS}
    assert link.headers["Authorization"] == f"Bearer {TOKEN}"
    posted = entry(store)
    assert (posted.state, posted.remote_id, posted.remote_url) == (
        SENT,
        f"{CHANNEL}/{TS}",
        PERMALINK,
    )


def test_a_permalink_slack_will_not_give_costs_only_the_link(slack, store, context, publish):
    slack.refuse("chat.getPermalink", "ratelimited", status=429, **{"Retry-After": "30"})
    channel = bot(slack, context)
    publish()
    report = run(store, channel)
    assert report.sent == [(ARTICLE, None)] and report.ok
    assert entry(store).remote_id == f"{CHANNEL}/{TS}"
    assert len(slack.called("chat.postMessage")) == 1  # never posted twice


# -- corrections --------------------------------------------------------------------------


def test_a_corrected_title_is_one_chat_update_with_the_new_text(slack, store, context, publish):
    channel = bot(slack, context)
    publish()
    run(store, channel)
    publish(title=FIXED)
    first = run(store, channel)
    again = run(store, channel)

    (update,) = slack.called("chat.update")
    assert update.method == "POST" and update.path == "/api/chat.update"
    assert update.headers["Authorization"] == f"Bearer {TOKEN}"
    body = update.get_json()
    assert set(body) == {"channel", "ts", "text", "blocks"}
    assert (body["channel"], body["ts"]) == (CHANNEL, TS)
    assert body["text"].startswith(FIXED)
    assert f"|{FIXED}>*" in body["blocks"][0]["text"]["text"]
    assert slack.messages[TS]["text"].startswith(FIXED)
    version = fingerprint(store.get(ARTICLE))
    assert [item for item, _ in first.corrected] == [correction_item(ARTICLE, "update", version)]
    assert not again.corrected and first.sent == again.sent == []
    assert len(slack.called("chat.postMessage")) == 1  # never a new message


def test_an_unpublished_article_is_one_chat_delete(slack, store, context, publish):
    channel = bot(slack, context)
    publish()
    run(store, channel)
    publish(title=None)
    gone = run(store, channel)
    run(store, channel)

    (delete,) = slack.called("chat.delete")
    assert delete.method == "POST" and delete.path == "/api/chat.delete"
    assert delete.headers["Authorization"] == f"Bearer {TOKEN}"
    assert delete.get_json() == {"channel": CHANNEL, "ts": TS}
    assert [item for item, _ in gone.corrected] == [f"{ARTICLE}#delete"]
    assert slack.messages == {}


def test_a_message_deleted_by_hand_counts_as_deleted(slack, store, context, publish):
    channel = bot(slack, context)
    publish()
    run(store, channel)
    slack.messages.clear()  # someone deleted it in Slack
    publish(title=None)
    report = run(store, channel)
    assert report.ok and [item for item, _ in report.corrected] == [f"{ARTICLE}#delete"]


def test_ignore_leaves_the_message_as_it_was(slack, store, context, publish):
    channel = bot(slack, context, on_update="ignore", on_delete="ignore")
    publish()
    run(store, channel)
    publish(title=FIXED)
    run(store, channel)
    publish(title=None)
    run(store, channel)
    assert [name for name, _ in slack.calls] == ["chat.postMessage", "chat.getPermalink"]


def test_a_post_the_webhook_made_cannot_be_corrected_by_the_bot(
    httpserver, slack, store, context, publish
):
    """A channel switched from webhook_url to bot_token: the webhook kept no message id,
    so the correction fails with that reason instead of editing some other message."""
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    template = REPO / default_template("slack")
    options = SlackOptions(type="slack", webhook_url=httpserver.url_for("/hook"), template=template)
    hook = SlackChannel("slack", options, context)
    publish()
    assert run(store, hook).sent == [(ARTICLE, None)]
    publish(title=FIXED)
    report = run(store, bot(slack, context))
    ((item, reason),) = report.failed
    assert item.startswith(f"{ARTICLE}#update:") and "no message ts" in reason
    assert slack.calls == []


# -- failures -----------------------------------------------------------------------------

REFUSALS = [
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "msg_too_long",
    "invalid_blocks",
]


@pytest.mark.parametrize("error", REFUSALS)
def test_a_refused_post_fails_at_once_with_slacks_reason(error, slack, store, context, publish):
    slack.refuse("chat.postMessage", error)
    channel = bot(slack, context)
    publish()
    report = run(store, channel)
    ((item, reason),) = report.failed
    assert item == ARTICLE and f"Slack refused chat.postMessage: {error}" in reason
    assert entry(store).state == FAILED and entry(store).detail == reason
    assert len(slack.called("chat.postMessage")) == 1  # not retried: it cannot help
    assert TOKEN not in reason


@pytest.mark.parametrize(
    ("method", "error", "change"),
    [
        ("chat.update", "message_not_found", FIXED),
        ("chat.update", "cant_update_message", FIXED),
        ("chat.delete", "cant_delete_message", None),
        ("chat.delete", "channel_not_found", None),
    ],
)
def test_a_refused_correction_fails_with_slacks_reason(
    method, error, change, slack, store, context, publish
):
    channel = bot(slack, context)
    publish()
    run(store, channel)
    slack.refuse(method, error)
    publish(title=change)
    report = run(store, channel)
    ((item, reason),) = report.failed
    assert item.startswith(f"{ARTICLE}#") and f"Slack refused {method}: {error}" in reason
    assert len(slack.called(method)) == 1


def test_the_scope_a_token_lacks_is_named(slack, store, context, publish):
    refusal = {"ok": False, "error": "missing_scope", "needed": "chat:write"}
    slack.next["chat.postMessage"] = [answer(refusal)]
    publish()
    ((_, reason),) = run(store, bot(slack, context)).failed
    assert "missing_scope (needs chat:write)" in reason and "chat:write scope" in reason


def test_an_answer_echoing_the_token_is_masked(slack, store, context, publish):
    echo = {
        "ok": False,
        "error": "invalid_blocks",
        "response_metadata": {"messages": [f"[ERROR] sent with Bearer {TOKEN}"]},
    }
    slack.next["chat.postMessage"] = [answer(echo)]
    publish()
    ((_, reason),) = run(store, bot(slack, context)).failed
    assert "invalid_blocks ([ERROR] sent with Bearer" in reason and TOKEN not in reason


@pytest.mark.parametrize("status", [429, 200])
def test_ratelimited_waits_as_long_as_slack_asks_then_posts(status, slack, store, context, publish):
    """Slack says ``ratelimited`` with a 429 (and might in a 200): the post waits for
    Retry-After, beyond this run, and is made on a later one."""
    slack.refuse("chat.postMessage", "ratelimited", status=status, **{"Retry-After": "600"})
    channel = bot(slack, context)
    publish()
    first = run(store, channel)
    ((item, reason),) = first.pending
    assert item == ARTICLE and "ratelimited" in reason
    waiting = entry(store)
    assert waiting.next_attempt_at is not None
    assert waiting.next_attempt_at >= (NOW + dt.timedelta(seconds=600)).replace(tzinfo=None)
    assert run(store, channel).sent == []  # not yet due

    later = run(store, channel, at=NOW + dt.timedelta(hours=1))
    assert later.sent == [(ARTICLE, PERMALINK)]
    assert len(slack.called("chat.postMessage")) == 2


def test_a_short_ratelimit_is_waited_out_within_the_run(slack, store, context, publish):
    slack.refuse("chat.postMessage", "ratelimited", status=429, **{"Retry-After": "1"})
    channel = bot(slack, context)
    publish()
    assert run(store, channel).sent == [(ARTICLE, PERMALINK)]
    assert len(slack.called("chat.postMessage")) == 2


def test_a_ratelimited_correction_is_made_later(slack, store, context, publish):
    channel = bot(slack, context)
    publish()
    run(store, channel)
    slack.refuse("chat.update", "ratelimited", status=429, **{"Retry-After": "600"})
    publish(title=FIXED)
    assert run(store, channel).pending
    later = run(store, channel, at=NOW + dt.timedelta(hours=1))
    assert len(later.corrected) == 1 and len(slack.called("chat.update")) == 2


def test_a_5xx_is_temporary(slack, store, context, publish):
    for _ in range(4):  # max_attempts: every try of this run
        slack.next.setdefault("chat.postMessage", []).append(Response("busy", 503))
    publish()
    report = run(store, bot(slack, context))
    ((item, reason),) = report.pending
    assert item == ARTICLE and "Slack answered 503" in reason


def test_an_answer_that_is_not_slacks_leaves_the_post_uncertain(slack, store, context, publish):
    """A 200 that is not a Web API result: the message may exist, so it is not re-sent."""
    slack.next["chat.postMessage"] = [Response("<html>proxy</html>", 200)]
    channel = bot(slack, context)
    publish()
    report = run(store, channel)
    run(store, channel, at=NOW + dt.timedelta(hours=1))
    assert [item for item, _ in report.uncertain] == [ARTICLE]
    assert entry(store).state == UNCERTAIN and len(slack.called("chat.postMessage")) == 1


# -- options and abilities ----------------------------------------------------------------

SLACK = MINIMAL + "channels:\n  slack:\n    type: slack\n"


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (
            "    webhook_url: ${SLACK_HOOK}\n    bot_token: ${SLACK_BOT}\n",
            "give either `webhook_url` or `bot_token`, not both",
        ),
        ("    channel: C0123456789\n", "give `webhook_url` (an incoming webhook) or `bot_token`"),
        ("    bot_token: ${SLACK_BOT}\n", "`bot_token` needs `channel`"),
        (
            "    webhook_url: ${SLACK_HOOK}\n    channel: C0123456789\n",
            "`channel` goes with `bot_token`",
        ),
    ],
    ids=["both", "neither", "a-bot-without-channel", "a-webhook-with-channel"],
)
def test_a_webhook_url_or_a_bot_token_exactly(keys, expected, tmp_path, monkeypatch):
    monkeypatch.setenv("SLACK_HOOK", "https://hooks.slack.com/services/T0/B0/x")
    monkeypatch.setenv("SLACK_BOT", TOKEN)
    path = write_config(tmp_path, SLACK + keys)
    (message,) = problems(path)
    assert message.startswith(f"{path}:9:3: `channels.slack`: ")  # the channel's entry
    assert expected in message


def test_a_channel_name_is_not_a_channel_id(tmp_path, monkeypatch):
    monkeypatch.setenv("SLACK_BOT", TOKEN)
    path = write_config(tmp_path, SLACK + "    bot_token: ${SLACK_BOT}\n    channel: '#news'\n")
    (message,) = problems(path)
    assert message.startswith(f"{path}:12:14: `channels.slack.channel`: '#news' is not")
    assert "C0123456789" in message


def test_a_bot_token_is_a_secret(tmp_path, monkeypatch):
    path = write_config(tmp_path, SLACK + f"    bot_token: {TOKEN}\n    channel: {CHANNEL}\n")
    (message,) = problems(path)
    assert message.startswith(f"{path}:11:16: `channels.slack.bot_token` is a secret")
    monkeypatch.setenv("SLACK_BOT", TOKEN)
    from pipeline.settings import load_settings

    write_config(tmp_path, SLACK + f"    bot_token: ${{SLACK_BOT}}\n    channel: {CHANNEL}\n")
    options = load_settings(path).channels["slack"]
    assert options.bot_token == TOKEN and options.api_url == "https://slack.com/api"
    assert TOKEN not in repr(options)


def test_only_a_bot_can_correct(slack, httpserver, context):
    hook = SlackOptions(type="slack", webhook_url=httpserver.url_for("/hook"))
    token = SlackOptions(type="slack", bot_token=TOKEN, channel=CHANNEL)
    assert abilities(SlackChannel, hook) == frozenset()
    assert abilities(SlackChannel, token) == {"edit", "delete"}
    assert update_policy(bot(slack, context)) == "edit"


def test_check_warns_about_a_webhook_that_should_correct_and_not_a_bot(project, monkeypatch):
    monkeypatch.setenv("SLACK_HOOK", "https://hooks.slack.com/services/T0/B0/x")
    monkeypatch.setenv("SLACK_BOT", TOKEN)
    root = project()
    config = root / "config" / "pipeline.yaml"
    text = config.read_text(encoding="utf-8")
    asked = (
        "channels:\n"
        "  hook:\n"
        "    type: slack\n"
        "    webhook_url: ${SLACK_HOOK}\n"
        "    on_update: edit\n"
        "  bot:\n"
        "    type: slack\n"
        "    bot_token: ${SLACK_BOT}\n"
        f"    channel: {CHANNEL}\n"
        "    on_update: edit\n"
        "    on_delete: delete\n"
    )
    config.write_text(text.replace("channels:\n", asked, 1), encoding="utf-8")
    result = invoke(root, "check")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "channel" in line]
    assert lines == [
        "warning: channel hook: on_update: edit is not something a slack channel can do "
        "(it can: none: a message once sent stays as it is); its posts are not corrected "
        "that way"
    ]
