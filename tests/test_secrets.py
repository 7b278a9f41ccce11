"""Secrets stay out of messages, logs and history (finding b), even when a server echoes
the request back: its URL, its headers (Authorization and all) and its body.

Servers here are real, on 127.0.0.1; the echo answers 400 and 500 in plain text and in
JSON written the way PHP writes it (``\\/`` for every slash).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from pathlib import Path

import pytest
import requests
from werkzeug import Request, Response

from pipeline import redact
from pipeline.channels import ChannelContext, channel_types
from pipeline.channels.http import reason
from pipeline.errors import DeliveryFailed
from pipeline.ledger import Ledger
from pipeline.logs import RedactingFilter, configure
from pipeline.model import Item, Scan
from pipeline.posting import Poster
from pipeline.redact import MASK, Redactor, secrets_of, shown_url
from pipeline.settings import load_settings
from pipeline.store import Store
from tests.conftest import invoke
from tests.test_redirects import (
    ACCESS_JWT,
    BLUESKY_PASSWORD,
    HOOK_PATHS,
    KINDS,
    MASTODON_TOKEN,
    POST_PATHS,
    REFRESH_JWT,
    SESSION_PATH,
    SIGNING_SECRET,
    TELEGRAM_TOKEN,
    Memory,
    channel_options,
    make_channel,
)

HOOK_TOKENS = [path.rsplit("/", 1)[-1] for path in HOOK_PATHS.values()]
TEAMS_FLOW = "teams-flow-0123456789abcdef"
SECRETS = [
    MASTODON_TOKEN,
    BLUESKY_PASSWORD,
    TELEGRAM_TOKEN,
    SIGNING_SECRET,
    ACCESS_JWT,
    REFRESH_JWT,
    TEAMS_FLOW,
    *HOOK_TOKENS,
]


def leaked(text: str) -> list[str]:
    """The secrets (or their first half: a cut token is still a leak) found in ``text``."""
    return [s for s in SECRETS if s in text or s[: len(s) // 2] in text]


def echo(status: int, shape: str):
    """A handler answering ``status`` with the whole request: line, headers, body."""

    def answer(request: Request) -> Response:
        lines = [f"{request.method} {request.url} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in request.headers.items()]
        text = "\n".join([*lines, "", request.get_data(as_text=True)])
        if shape == "text":
            return Response(text, status, content_type="text/plain")
        body = json.dumps({"error": text}).replace("/", "\\/")  # as PHP's json_encode does
        return Response(body, status, content_type="application/json")

    return answer


@pytest.fixture
def installed():
    """A clean slate for ``redact.install`` (it sets the process-wide redactor) and for
    ``logs.configure`` (it replaces the pipeline logger's handlers), restored after."""
    logger = logging.getLogger("pipeline")
    saved = logger.handlers[:], logger.propagate, logger.level
    redact._current = Redactor()
    yield
    redact._current = Redactor()
    logger.handlers[:], logger.propagate = saved[0], saved[1]
    logger.setLevel(saved[2])


@pytest.fixture
def context(site):
    with requests.Session() as http:
        yield ChannelContext(http=http, site=site, memory=Memory())


# -- what counts as a secret ---------------------------------------------------------------

CONFIG = """\
site: {name: Mountain News, url: "https://news.example.org"}
state: postgresql+psycopg://pipeline:db-pass-3141x@db.example.org/news
sources:
  - name: upstream
    type: feed
    url: https://reader:src-pass-0042x@feeds.example.org/rss?token=src-token-9911
channels:
  masto: {type: mastodon, instance: "https://social.example", access_token: "${T_MASTODON}"}
  sky: {type: bluesky, handle: news.example.org, app_password: "${T_BLUESKY}"}
  slack: {type: slack, webhook_url: "${T_SLACK}"}
  discord: {type: discord, webhook_url: "${T_DISCORD}"}
  teams: {type: teams, webhook_url: "${T_TEAMS}"}
  tg: {type: telegram, bot_token: "${T_TELEGRAM}", chat_id: "@news"}
  hook: {type: webhook, url: "https://cms.example/hooks/cms-hook-token-5150", secret: "${T_SIGN}"}
email:
  from: "Mountain News <news@news.example.org>"
  delivery: smtp
  smtp: {host: smtp.example.org, username: news, password: "${T_SMTP}"}
  unsubscribe: {url: "https://news.example.org/unsubscribe", secret: "${T_UNSUB}"}
"""
CONFIGURED = {
    "T_MASTODON": MASTODON_TOKEN,
    "T_BLUESKY": BLUESKY_PASSWORD,
    "T_SLACK": "https://hooks.slack.com/services/T0SLACK01/B0SLACK01/slack-hook-token-0123456789",
    "T_DISCORD": "https://discord.com/api/webhooks/112233/discord-hook-token-0123456789abcdef",
    "T_TEAMS": "https://prod.logic.azure.com/workflows/f/triggers/manual/paths/invoke?sig=teams-sig-8877665544",
    "T_TELEGRAM": TELEGRAM_TOKEN,
    "T_SIGN": SIGNING_SECRET,
    "T_SMTP": "smtp-pass-2718x",
    "T_UNSUB": "unsubscribe-key-1618x",
}
IN_FILE = [
    "db-pass-3141x",
    "src-pass-0042x",
    "src-token-9911",
    "https://cms.example/hooks/cms-hook-token-5150",
]


@pytest.fixture
def settings(tmp_path: Path, monkeypatch):
    for name, value in CONFIGURED.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "pipeline.yaml").write_text(CONFIG, encoding="utf-8")
    return load_settings(tmp_path / "config" / "pipeline.yaml")


def test_every_configured_secret_is_collected(settings):
    found = set(secrets_of(settings))
    assert set(CONFIGURED.values()) | set(IN_FILE) <= found
    assert "https://social.example" not in found and "news.example.org" not in found


def test_a_settings_redactor_masks_them_all_however_spelt(settings):
    clean = redact.redactor_for(settings)
    for value in [*CONFIGURED.values(), *IN_FILE]:
        for spelt in (value, requests.utils.quote(value, safe=""), json.dumps(value)[1:-1]):
            assert value not in clean(f"echo: {spelt} (end)"), spelt
    request_line = "POST /services/T0SLACK01/B0SLACK01/slack-hook-token-0123456789 HTTP/1.1"
    assert "slack-hook-token" not in clean(request_line)  # the path alone, without its host
    assert "slack-hook-token" not in clean(CONFIGURED["T_SLACK"].replace("/", "\\/"))
    assert clean("nothing secret here: https://news.example.org/a?page=2") == (
        "nothing secret here: https://news.example.org/a?page=2"
    )


def test_urls_show_no_credentials():
    url = "https://reader:pa55word@feeds.example.org/rss?token=abc123xyz&page=2"
    assert shown_url(url) == f"https://reader:{MASK}@feeds.example.org/rss?token={MASK}&page=2"
    assert (
        shown_url("https://feeds.example.org/rss?page=2") == "https://feeds.example.org/rss?page=2"
    )
    clean = Redactor()  # even unconfigured: a URL's password, a bearer token, a JWT
    text = f"GET {url}\nAuthorization: Bearer opaque-token-1234\nX: {ACCESS_JWT}"
    shown = clean(text)
    assert "pa55word" not in shown and "abc123xyz" not in shown
    assert "opaque-token-1234" not in shown and ACCESS_JWT not in shown


def test_a_reason_cut_to_length_keeps_no_half_of_a_token():
    response = requests.Response()
    response.status_code, response.encoding = 400, "utf-8"
    response._content = ("x" * 290 + MASTODON_TOKEN + " and more").encode()
    shown = reason(response, Redactor([MASTODON_TOKEN]))
    assert len(shown) <= 300 and not leaked(shown)


# -- a server echoing the request: each channel's failure reason ---------------------------


@pytest.mark.parametrize("shape", ["text", "json"])
@pytest.mark.parametrize("status", [400, 500])
@pytest.mark.parametrize("kind", KINDS)
def test_an_echoed_request_leaves_no_secret_in_the_reason(
    kind, status, shape, httpserver, context, make_article
):
    channel = make_channel(kind, httpserver, context)
    httpserver.expect_request(POST_PATHS[kind]).respond_with_handler(echo(status, shape))
    with pytest.raises(DeliveryFailed) as failure:
        channel.send(channel.prepare(make_article()), "key-1")
    exc = failure.value
    assert str(status) in exc.reason  # still says what happened
    assert not leaked(exc.reason) and not leaked(str(exc))
    (sent,) = [r for r, _ in httpserver.log if r.path == POST_PATHS[kind]]
    assert leaked(echo(status, "text")(sent).get_data(as_text=True))  # there was one to leak


@pytest.mark.parametrize("status", [400, 401, 500])
def test_an_echoed_sign_in_leaves_no_password(status, httpserver, context, make_article):
    httpserver.expect_request(SESSION_PATH).respond_with_handler(echo(status, "json"))
    options = channel_options("bluesky", httpserver.url_for("").rstrip("/"))
    channel = channel_types()["bluesky"]("bluesky", options, context)
    with pytest.raises(DeliveryFailed) as failure:
        channel.send(channel.prepare(make_article()), "key-1")
    assert "createSession" in failure.value.reason and not leaked(failure.value.reason)


def test_an_echoed_image_upload_leaves_no_token_in_the_log(
    httpserver, context, make_article, caplog
):
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    httpserver.expect_request("/images/a.png").respond_with_data(png, content_type="image/png")
    httpserver.expect_request("/api/v2/media").respond_with_handler(echo(422, "text"))
    httpserver.expect_request("/api/v1/statuses").respond_with_json({"id": "1"})
    channel = make_channel("mastodon", httpserver, context, images=True)
    article = make_article(image=httpserver.url_for("/images/a.png"))
    with caplog.at_level(logging.WARNING):
        channel.send(channel.prepare(article), "key-1")
    assert "without its image" in caplog.text and "422" in caplog.text
    assert not leaked(caplog.text)


# -- the ledger and history ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mastodon", "telegram", "slack", "webhook"])
def test_history_keeps_no_echoed_secret(kind, httpserver, site, state_url, make_article):
    now = dt.datetime.now(dt.UTC)
    first = make_article(id="news/one", published=now - dt.timedelta(hours=2))
    second = make_article(id="news/two", url="https://news.example.org/two/", published=now)
    store = Store(state_url, site.url)
    try:
        store.apply("news", Scan(changed=[Item(a.id, "fp", a) for a in (first, second)]))
        statuses = iter([400, 500])
        httpserver.expect_request(POST_PATHS[kind]).respond_with_handler(
            lambda request: echo(next(statuses), "text")(request)
        )
        with requests.Session() as http:
            context = ChannelContext(http=http, site=site, memory=store)
            channel = make_channel(kind, httpserver, context, max_attempts=1)
            report = Poster(store, Ledger(store.engine), sleep=lambda s: None).run([channel])[kind]
        assert [a for a, _ in report.failed] == ["news/one"]
        assert [a for a, _ in report.pending] == ["news/two"]
        entries = Ledger(store.engine).history("post:")
        assert len(entries) == 2 and all(e.detail for e in entries)
        assert not leaked(" ".join(e.detail or "" for e in entries))
        assert not leaked(" ".join(r for _, r in report.failed + report.pending))
    finally:
        store.close()


def test_post_and_history_commands_show_no_secret(project, httpserver, monkeypatch):
    """``pipeline post`` against servers that echo, then ``pipeline history``."""
    monkeypatch.setenv("NEWS_MASTODON_TOKEN", MASTODON_TOKEN)
    monkeypatch.setenv("NEWS_TELEGRAM_TOKEN", TELEGRAM_TOKEN)
    monkeypatch.setenv("NEWS_SLACK_URL", httpserver.url_for(HOOK_PATHS["slack"]))
    monkeypatch.setenv("NEWS_HOOK_SECRET", SIGNING_SECRET)
    base = httpserver.url_for("").rstrip("/")
    root = project()
    config = root / "config" / "pipeline.yaml"
    every = "    max_age_hours: 100000\n    per_run: 2\n    max_attempts: 1\n"
    config.write_text(
        config.read_text(encoding="utf-8")
        + f"""  masto:
    type: mastodon
    instance: {base}
    access_token: ${{NEWS_MASTODON_TOKEN}}
    images: false
{every}  tg:
    type: telegram
    bot_token: ${{NEWS_TELEGRAM_TOKEN}}
    chat_id: "@mountainnews"
    api_url: {base}
{every}  team-chat:
    type: slack
    webhook_url: ${{NEWS_SLACK_URL}}
{every}  cms:
    type: webhook
    url: {base}{HOOK_PATHS["webhook"]}
    secret: ${{NEWS_HOOK_SECRET}}
{every}""",
        encoding="utf-8",
    )
    limits = {"configuration": {"statuses": {"max_characters": 500}}}
    httpserver.expect_request("/api/v2/instance").respond_with_json(limits)
    for kind, status in [("mastodon", 400), ("telegram", 500), ("slack", 400), ("webhook", 500)]:
        httpserver.expect_request(POST_PATHS[kind]).respond_with_handler(echo(status, "text"))
    assert invoke(root, "ingest").exit_code == 0

    posted = invoke(root, "post", "masto", "tg", "team-chat", "cms")
    assert posted.exit_code == 1, posted.output
    assert "masto: failed" in posted.stderr and "cms: pending" in posted.stderr
    history = invoke(root, "history", "--limit", "100")
    assert history.exit_code == 0 and "  post  masto " in history.output
    for shown in (posted.output, posted.stderr, history.output):
        assert not leaked(shown), leaked(shown)
        assert httpserver.url_for(HOOK_PATHS["slack"]) not in shown


# -- logs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_log_lines_are_redacted_whatever_logger_wrote_them(settings, installed, log_format):
    stream = io.StringIO()
    configure(log_format, stream, level=logging.DEBUG)
    redact.install(settings)
    child = logging.getLogger("pipeline.channels.mastodon")
    child.warning("token %s refused", MASTODON_TOKEN)
    logging.getLogger("pipeline").info(
        "run failed", extra={"event": "run.failed", "fields": {"detail": CONFIGURED["T_SLACK"]}}
    )
    try:
        raise RuntimeError("cannot read https://reader:src-pass-0042x@feeds.example.org/rss")
    except RuntimeError:
        child.exception("source failed: %s", CONFIGURED["T_SMTP"])
    written = stream.getvalue()
    assert "refused" in written and "run failed" in written and "RuntimeError" in written
    for value in [MASTODON_TOKEN, CONFIGURED["T_SLACK"], "src-pass-0042x", CONFIGURED["T_SMTP"]]:
        assert value not in written


def test_installing_guards_captured_and_last_resort_logs(
    settings, installed, httpserver, context, make_article, caplog
):
    """urllib3 logs every request line at DEBUG: the Telegram token is in its path."""
    caplog.set_level(logging.DEBUG)
    redact.install(settings)
    assert any(isinstance(f, RedactingFilter) for f in logging.lastResort.filters)
    channel = make_channel("telegram", httpserver, context)
    httpserver.expect_request(POST_PATHS["telegram"]).respond_with_json({"ok": False}, status=400)
    with pytest.raises(DeliveryFailed):
        channel.send(channel.prepare(make_article()), "key-1")
    assert "sendMessage" in caplog.text  # urllib3 did log the request line
    assert TELEGRAM_TOKEN not in caplog.text
    assert all(TELEGRAM_TOKEN not in r.getMessage() for r in caplog.records)


def test_scrub_uses_the_installed_settings(settings, installed):
    message = f"source 'upstream': cannot read feed, password src-pass-0042x, {SIGNING_SECRET}"
    assert redact.scrub(message) == message  # nothing installed yet: values unknown
    redact.install(settings)
    assert "src-pass-0042x" not in redact.scrub(message)
    assert SIGNING_SECRET not in redact.scrub(message)
