"""The webhook channel against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import threading
from pathlib import Path

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from pipeline.channels.webhook import WebhookChannel, WebhookOptions
from pipeline.errors import DeliveryFailed, PermanentFailure, TemporaryFailure

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "pipeline" / "templates" / "channels" / "webhook.txt.j2"
SECRET = "whsec_5up3r-s3cr3t"
NOW = dt.datetime(2026, 11, 3, 9, 30, tzinfo=dt.UTC)
RELEASE = threading.Event()  # lets a deliberately slow answer finish


@pytest.fixture(scope="module")
def server():
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def receiver(server):
    server.clear()
    RELEASE.clear()
    yield server
    RELEASE.set()
    requests.get(server.url_for("/quiet"), timeout=10)  # waits out any slow answer
    server.clear()


def make_channel(receiver, context, **overrides) -> WebhookChannel:
    settings = {
        "type": "webhook",
        "url": receiver.url_for("/hooks/news"),
        "template": TEMPLATE,
        "timeout": 5,
    }
    context = dataclasses.replace(context, clock=lambda: NOW)
    return WebhookChannel("cms-hook", WebhookOptions(**(settings | overrides)), context)


def received(receiver) -> tuple[Request, bytes]:
    (request, _), *_ = receiver.log
    return request, request.get_data()


def test_body_shape_and_headers(receiver, channel_context, make_article):
    receiver.expect_request("/hooks/news", method="POST").respond_with_json({"id": 981})
    channel = make_channel(receiver, channel_context)
    article = make_article(
        title="喜马拉雅冰川 🏔 R&D <fast>",
        updated=dt.datetime(2026, 11, 4, 8, 0, tzinfo=dt.UTC),
        image="https://news.example.org/a.jpg",
        image_alt="A glacier",
    )
    post = channel.prepare(article)
    receipt = channel.send(post, "k" * 40)

    request, raw = received(receiver)
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == "k" * 40
    assert "X-Pipeline-Signature" not in request.headers  # no secret, no signature
    assert "X-Pipeline-Timestamp" not in request.headers
    assert "喜马拉雅冰川 🏔".encode() in raw  # UTF-8, not \\u escapes
    body = json.loads(raw)
    assert list(body) == ["event", "channel", "key", "article", "text"]
    assert body["event"] == "article.published" and body["channel"] == "cms-hook"
    assert body["key"] == "k" * 40
    assert body["article"] == {
        "id": "news/glacier-report",
        "url": "https://news.example.org/news/glacier-report/",
        "title": "喜马拉雅冰川 🏔 R&D <fast>",
        "summary": "New data from monitored glaciers show another year of heavy losses.",
        "authors": ["Pema Gyamtsho"],
        "language": "en",
        "section": "news",
        "tags": ["Nepal", "climate change"],
        "published": "2026-11-03T09:00:00+00:00",
        "updated": "2026-11-04T08:00:00+00:00",
        "image": "https://news.example.org/a.jpg",
        "image_alt": "A glacier",
    }
    assert body["text"] == (  # plain text: nothing escaped
        "喜马拉雅冰川 🏔 R&D <fast>\n\n"
        "New data from monitored glaciers show another year of heavy losses.\n\n"
        "https://news.example.org/news/glacier-report/"
    )
    assert post.limit is None and post.text == body["text"]
    assert receipt.remote_id == "981" and receipt.remote_url is None


def test_signature_verifies_against_the_raw_body(receiver, channel_context, make_article):
    receiver.expect_request("/hooks/news", method="POST").respond_with_data("", status=204)
    channel = make_channel(receiver, channel_context, secret=SECRET)
    receipt = channel.send(channel.prepare(make_article(title="湿地 & 🦢")), "key-1")

    request, raw = received(receiver)
    timestamp = request.headers["X-Pipeline-Timestamp"]
    assert timestamp == str(int(NOW.timestamp()))
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256)
    signature = request.headers["X-Pipeline-Signature"]
    assert hmac.compare_digest(signature, "sha256=" + expected.hexdigest())
    tampered = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + raw + b" ", hashlib.sha256)
    assert signature != "sha256=" + tampered.hexdigest()
    assert SECRET not in raw.decode() and SECRET not in str(request.headers)
    assert receipt.remote_id is None  # 204: nothing to record


def test_a_retry_has_the_same_body_and_key_and_a_fresh_signature(
    receiver, channel_context, make_article
):
    receiver.expect_request("/hooks/news", method="POST").respond_with_json({"id": "a-1"})
    channel = make_channel(receiver, channel_context, secret=SECRET)
    post = channel.prepare(make_article())
    channel.send(post, "key-1")
    later = dataclasses.replace(channel.context, clock=lambda: NOW + dt.timedelta(seconds=30))
    channel.context = later
    receipt = channel.send(post, "key-1")

    (first, _), (second, _) = receiver.log
    assert first.get_data() == second.get_data()
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"] == "key-1"
    assert first.headers["X-Pipeline-Signature"] != second.headers["X-Pipeline-Signature"]
    assert receipt.remote_id == "a-1"


def test_receipt_takes_id_and_url_from_a_json_answer(receiver, channel_context, make_article):
    answer = {"id": "evt_12", "url": "https://cms.example.org/items/12"}
    receiver.expect_request("/hooks/news", method="POST").respond_with_json(answer, status=201)
    channel = make_channel(receiver, channel_context)
    receipt = channel.send(channel.prepare(make_article()), "key-1")
    assert receipt.remote_id == "evt_12"
    assert receipt.remote_url == "https://cms.example.org/items/12"


def slow(request: Request) -> Response:
    RELEASE.wait(5)  # far beyond the client's timeout; released when the test ends
    return Response("{}", 200, content_type="application/json")


def send_expecting_failure(receiver, context, make_article, handler, **options):
    receiver.expect_request("/hooks/news", method="POST").respond_with_handler(handler)
    channel = make_channel(receiver, context, secret=SECRET, **options)
    with pytest.raises(DeliveryFailed) as caught:
        channel.send(channel.prepare(make_article()), "key-1")
    assert SECRET not in str(caught.value)
    return caught.value


def test_500_is_temporary(receiver, channel_context, make_article):
    exc = send_expecting_failure(
        receiver, channel_context, make_article, lambda r: Response("boom", 500)
    )
    assert isinstance(exc, TemporaryFailure) and not exc.unknown_outcome
    assert "answered 500: boom" in exc.reason


def test_429_honours_retry_after(receiver, channel_context, make_article):
    def limited(request: Request) -> Response:
        return Response("slow down", 429, headers={"Retry-After": "30"})

    exc = send_expecting_failure(receiver, channel_context, make_article, limited)
    assert isinstance(exc, TemporaryFailure) and exc.retry_after == 30


def test_404_is_permanent(receiver, channel_context, make_article):
    exc = send_expecting_failure(
        receiver, channel_context, make_article, lambda r: Response("no such hook", 404)
    )
    assert isinstance(exc, PermanentFailure) and "answered 404: no such hook" in exc.reason


def test_timeout_is_of_unknown_outcome(receiver, channel_context, make_article):
    exc = send_expecting_failure(receiver, channel_context, make_article, slow, timeout=0.3)
    assert isinstance(exc, TemporaryFailure) and exc.unknown_outcome
    assert exc.__cause__ is None and exc.__context__ is None  # no requests error with the URL
