"""The Telegram channel against a real HTTP server on 127.0.0.1 standing in for the Bot API."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import traceback
from pathlib import Path

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from pipeline.channels.compose import utf16_units
from pipeline.channels.telegram import (
    LIMIT,
    TelegramChannel,
    TelegramOptions,
    telegram_length,
    visible_text,
)
from pipeline.errors import DeliveryFailed, PermanentFailure, TemporaryFailure
from pipeline.ledger import SENT, Ledger
from pipeline.model import Item, Scan
from pipeline.posting import Poster, post_stream
from pipeline.store import Store

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "pipeline" / "templates" / "channels" / "telegram.txt.j2"
TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
PATH = f"/bot{TOKEN}/sendMessage"
URL = "https://news.example.org/news/glacier-report/"


@pytest.fixture(scope="module")
def server():
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


RELEASE = threading.Event()  # lets a deliberately slow answer finish


@pytest.fixture
def api(server):
    server.clear()
    RELEASE.clear()
    yield server
    RELEASE.set()
    # The server answers one request at a time: once this one is answered, any slow
    # answer from the test is finished and logged, and cannot leak into the next test.
    requests.get(server.url_for("/quiet"), timeout=10)
    server.clear()


def make_channel(api_url: str, context, **overrides) -> TelegramChannel:
    settings = {
        "type": "telegram",
        "bot_token": TOKEN,
        "chat_id": "@mountainnews",
        "api_url": api_url,
        "template": TEMPLATE,
        "timeout": 5,
    }
    return TelegramChannel("telegram", TelegramOptions(**(settings | overrides)), context)


@pytest.fixture
def channel(api, channel_context) -> TelegramChannel:
    return make_channel(api.url_for("/"), channel_context)


def ok(message_id: int = 42, username: str | None = "mountainnews") -> dict:
    chat = {"id": -1001234567890, "type": "channel"}
    if username:
        chat["username"] = username
    return {"ok": True, "result": {"message_id": message_id, "chat": chat, "date": 1, "text": ""}}


def error(code: int, description: str, **parameters) -> Response:
    body = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return Response(json.dumps(body), code, content_type="application/json")


# -- counting as Telegram counts ------------------------------------------------------------


def test_length_is_utf16_units_of_the_visible_text():
    assert visible_text("<b>R&amp;D &lt;fast&gt; &#34;q&#34;</b>") == 'R&D <fast> "q"'
    assert telegram_length("<b>R&amp;D</b>") == 3  # tags are free, an entity is one
    assert telegram_length('<a href="https://x.org/?a=1&amp;b=2">x</a>') == 1  # href is free
    assert telegram_length("😀") == 2  # outside the BMP: a surrogate pair
    assert telegram_length("湿地") == 2
    assert telegram_length("a\n\nb  c") == 7  # line breaks and spaces count as written


# -- the request ----------------------------------------------------------------------------


def test_posts_html_to_the_bot_path_with_title_escaped(api, channel, make_article):
    api.expect_oneshot_request(PATH, method="POST").respond_with_json(ok())
    article = make_article(title='R&D <fast> "quotes"', image="https://news.example.org/a.jpg")
    post = channel.prepare(article)
    receipt = channel.send(post, "key-1")

    (request, _), *_ = api.log
    sent = request.get_json()
    assert request.headers["Content-Type"] == "application/json"
    assert sent["chat_id"] == "@mountainnews" and sent["parse_mode"] == "HTML"
    assert sent["text"].startswith("<b>R&amp;D &lt;fast&gt; &#34;quotes&#34;</b>\n\n")
    assert sent["text"].endswith(f'<a href="{URL}">{URL}</a>')
    assert sent["link_preview_options"] == {"url": URL, "prefer_large_media": True}
    assert post.text.startswith('R&D <fast> "quotes"\n\nNew data')  # as readers see it
    assert post.length == utf16_units(post.text) and post.limit == LIMIT
    assert receipt.remote_id == "42"
    assert receipt.remote_url == "https://t.me/mountainnews/42"


def test_numeric_chat_id_is_sent_as_a_number_and_private_chats_have_no_link(
    api, channel_context, make_article
):
    api.expect_oneshot_request(PATH, method="POST").respond_with_json(ok(7, username=None))
    channel = make_channel(api.url_for("/"), channel_context, chat_id=-1001234567890)
    receipt = channel.send(channel.prepare(make_article()), "key-1")
    (request, _), *_ = api.log
    assert request.get_json()["chat_id"] == -1001234567890
    assert "prefer_large_media" not in request.get_json()["link_preview_options"]
    assert receipt.remote_id == "7" and receipt.remote_url is None


# -- fitting 4096 ---------------------------------------------------------------------------


def fixed_part(channel, make_article) -> int:
    """Units the template, title and link take, without the summary."""
    return channel.prepare(make_article(summary="x")).length - 1


@pytest.mark.parametrize("unit", ["湿", "🏔", "👨‍👩‍👧"])
def test_long_chinese_and_emoji_summaries_fit_with_the_link_whole(channel, make_article, unit):
    article = make_article(title="喜马拉雅冰川连续第五年消融", summary=unit * 5000)
    post = channel.prepare(article)
    assert LIMIT - 12 <= post.length <= LIMIT  # close to the limit, not far under it
    assert post.length == telegram_length(post.body["text"])
    assert post.text.endswith(f"…\n\n{URL}")  # summary cut, link whole
    assert post.body["text"].endswith(f'<a href="{URL}">{URL}</a>')
    post.text.encode("utf-8")  # no half surrogate pair or broken grapheme
    summary = post.text.split("\n\n")[1]
    assert set(summary.removesuffix("…").split(unit)) == {""}


def test_exactly_4096_units_fits_and_one_more_unit_is_cut(channel, make_article):
    room = LIMIT - fixed_part(channel, make_article)
    exact = channel.prepare(make_article(summary="湿" * room))
    assert exact.length == LIMIT and "…" not in exact.text
    # the same number of code points, but the emoji is two UTF-16 units: one too many
    over = channel.prepare(make_article(summary="湿" * (room - 1) + "😀"))
    assert over.length <= LIMIT and over.text.count("…") == 1 and "😀" not in over.text


def test_entities_count_once_so_escaped_text_is_not_cut_early(channel, make_article):
    summary = "R&D <x> " * 600  # 4,800 visible characters, about 9,000 once escaped
    post = channel.prepare(make_article(summary=summary))
    assert len(post.body["text"]) > LIMIT  # the HTML is far longer than 4096…
    assert LIMIT - 10 <= post.length <= LIMIT  # …but what Telegram counts just fits
    assert "&amp;D &lt;x&gt;" in post.body["text"]


def test_a_template_with_tags_telegram_lacks_is_refused(channel_context, make_article, tmp_path):
    template = tmp_path / "telegram.txt.j2"
    template.write_text("<p>{{ title }}</p><br>{{ url }}", encoding="utf-8")
    channel = make_channel("http://127.0.0.1:9", channel_context, template=template)
    with pytest.raises(PermanentFailure, match=r"<br>, <p>"):
        channel.prepare(make_article())


# -- failures -------------------------------------------------------------------------------


def sleepy(request: Request) -> Response:
    RELEASE.wait(5)  # far beyond the client's timeout; released when the test ends
    return Response("{}", 200, content_type="application/json")


FAULTS = {
    "429": lambda: error(429, "Too Many Requests: retry after 7", retry_after=7),
    "500": lambda: error(500, "Internal Server Error"),
    "400": lambda: error(400, "Bad Request: chat not found"),
    "401": lambda: error(401, "Unauthorized"),
    "403": lambda: error(403, "Forbidden: bot is not a member of the channel chat"),
}


def send_expecting_failure(api, channel, make_article, respond) -> DeliveryFailed:
    api.expect_request(PATH, method="POST").respond_with_handler(lambda request: respond())
    post = channel.prepare(make_article())
    with pytest.raises(DeliveryFailed) as caught:
        channel.send(post, "key-1")
    return caught.value


def test_429_waits_as_long_as_telegram_asks(api, channel, make_article):
    exc = send_expecting_failure(api, channel, make_article, FAULTS["429"])
    assert isinstance(exc, TemporaryFailure) and exc.retry_after == 7
    assert not exc.unknown_outcome


def test_500_is_temporary(api, channel, make_article):
    exc = send_expecting_failure(api, channel, make_article, FAULTS["500"])
    assert isinstance(exc, TemporaryFailure) and not exc.unknown_outcome


def test_chat_not_found_is_permanent_with_telegrams_words(api, channel, make_article):
    exc = send_expecting_failure(api, channel, make_article, FAULTS["400"])
    assert isinstance(exc, PermanentFailure)
    assert "Bad Request: chat not found" in exc.reason and "@mountainnews" in exc.reason


@pytest.mark.parametrize("status", ["401", "403"])
def test_unauthorized_and_forbidden_are_permanent(api, channel, make_article, status):
    exc = send_expecting_failure(api, channel, make_article, FAULTS[status])
    assert isinstance(exc, PermanentFailure) and f"answered {status}" in exc.reason


def test_ok_false_in_a_200_is_permanent(api, channel, make_article):
    exc = send_expecting_failure(api, channel, make_article, lambda: error(200, "Bad Request"))
    assert isinstance(exc, PermanentFailure) and "Bad Request" in exc.reason


def test_a_200_without_a_message_is_of_unknown_outcome(api, channel, make_article):
    exc = send_expecting_failure(api, channel, make_article, lambda: Response("<html>", 200))
    assert isinstance(exc, TemporaryFailure) and exc.unknown_outcome


def test_timeout_is_of_unknown_outcome(api, channel_context, make_article):
    channel = make_channel(api.url_for("/"), channel_context, timeout=0.3)
    api.expect_request(PATH, method="POST").respond_with_handler(sleepy)
    with pytest.raises(TemporaryFailure) as caught:
        channel.send(channel.prepare(make_article()), "key-1")
    assert caught.value.unknown_outcome


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("fault", [*FAULTS, "timeout", "refused"])
def test_the_token_appears_in_no_error_nor_its_traceback(api, channel_context, make_article, fault):
    api_url = api.url_for("/")
    if fault == "refused":  # requests' own message names the URL, token and all
        api_url = f"http://127.0.0.1:{closed_port()}"
    else:
        api.expect_request(PATH).respond_with_handler(
            sleepy if fault == "timeout" else lambda request: FAULTS[fault]()
        )
    channel = make_channel(api_url, channel_context, timeout=0.3)
    with pytest.raises(DeliveryFailed) as caught:
        channel.send(channel.prepare(make_article()), "key-1")
    exc = caught.value
    shown = "".join(traceback.format_exception(exc))
    assert TOKEN not in str(exc) and TOKEN not in shown and "ABC-DEF" not in shown
    assert exc.__cause__ is None and exc.__context__ is None


# -- end to end -----------------------------------------------------------------------------


def test_poster_sends_one_message_per_article_and_nothing_on_the_next_run(
    api, channel_context, make_article, site, state_url
):
    now = dt.datetime.now(dt.UTC)
    articles = [
        make_article(id="news/one", title="One", published=now - dt.timedelta(hours=2)),
        make_article(
            id="news/two", title="二", url="https://news.example.org/news/two/", published=now
        ),
    ]
    store = Store(state_url, site.url)
    try:
        store.apply("news", Scan(changed=[Item(a.id, "fp", a) for a in articles]))
        ids = iter(range(100, 200))
        api.expect_request(PATH, method="POST").respond_with_handler(
            lambda request: Response(json.dumps(ok(next(ids))), content_type="application/json")
        )
        channel = make_channel(api.url_for("/"), channel_context)
        poster = Poster(store, Ledger(store.engine), sleep=lambda s: None)

        first = poster.run([channel])["telegram"]
        assert first.ok and [a for a, _ in first.sent] == ["news/one", "news/two"]
        assert [r.get_json()["text"].split("\n")[0] for r, _ in api.log] == [
            "<b>One</b>",
            "<b>二</b>",
        ]
        entries = Ledger(store.engine).entries(post_stream("telegram"))
        assert {e.state for e in entries.values()} == {SENT}
        assert entries["news/one"].remote_url == "https://t.me/mountainnews/100"

        second = poster.run([channel])["telegram"]
        assert second.ok and not second.sent and len(api.log) == 2
    finally:
        store.close()
