"""The Mastodon channel against a real HTTP server standing in for an instance: the request
contract, Mastodon's character counting, cached limits, images and every failure mode."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
import requests
from werkzeug import Request, Response

from pipeline.channels import ChannelContext
from pipeline.channels import mastodon as mastodon_module
from pipeline.channels.mastodon import MastodonChannel, MastodonOptions
from pipeline.channels.mastodon_length import status_length as mastodon_length
from pipeline.errors import PermanentFailure, TemporaryFailure
from pipeline.ledger import SENT, Ledger
from pipeline.model import Item, Scan
from pipeline.posting import Poster, idempotency_key, post_stream
from pipeline.store import Store

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "pipeline" / "templates" / "channels" / "mastodon.txt.j2"
TOKEN = "test-token-123"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def instance_json(max_characters: int = 500, per_url: int = 23, **media) -> dict:
    return {
        "domain": "social.example",
        "configuration": {
            "statuses": {
                "max_characters": max_characters,
                "max_media_attachments": 4,
                "characters_reserved_per_url": per_url,
            },
            "media_attachments": {
                "supported_mime_types": ["image/png", "image/jpeg"],
                "image_size_limit": 16777216,
                "description_limit": 1500,
                **media,
            },
        },
    }


def options(httpserver, **overrides) -> MastodonOptions:
    values = {
        "type": "mastodon",
        "instance": httpserver.url_for("").rstrip("/"),
        "access_token": TOKEN,
        "template": TEMPLATE,
        "timeout": 5,
    }
    values.update(overrides)
    return MastodonOptions(**values)


def channel(httpserver, context, name: str = "masto", **overrides) -> MastodonChannel:
    return MastodonChannel(name, options(httpserver, **overrides), context, poll_interval=0)


def serve_instance(httpserver, **kwargs) -> None:
    httpserver.expect_request("/api/v2/instance", method="GET").respond_with_json(
        instance_json(**kwargs)
    )


def status_json(status_id: str = "1101") -> dict:
    return {"id": status_id, "url": f"https://social.example/@news/{status_id}", "uri": "x"}


def requests_to(httpserver, path: str, method: str | None = None) -> list[Request]:
    return [
        r for r, _ in httpserver.log if r.path == path and (method is None or r.method == method)
    ]


# -- the request contract --------------------------------------------------------------------


def test_status_request_follows_the_api_contract(httpserver, channel_context, make_article):
    serve_instance(httpserver)
    httpserver.expect_request("/api/v1/statuses", method="POST").respond_with_json(status_json())
    chan = channel(httpserver, channel_context, visibility="unlisted")
    post = chan.prepare(make_article())
    receipt = chan.send(post, "key-abc")

    assert receipt.remote_id == "1101"
    assert receipt.remote_url == "https://social.example/@news/1101"
    (sent,) = requests_to(httpserver, "/api/v1/statuses")
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Idempotency-Key"] == "key-abc"
    body = sent.get_json()
    assert body == dict(post.body)  # Post.body is exactly what goes out (no image here)
    assert body["status"] == post.text
    assert body["visibility"] == "unlisted"
    assert body["language"] == "en"
    assert "media_ids" not in body
    assert "https://news.example.org/news/glacier-report/" in body["status"]
    assert "#Nepal #ClimateChange" in body["status"]
    (instance,) = requests_to(httpserver, "/api/v2/instance")
    assert instance.headers["Authorization"] == f"Bearer {TOKEN}"
    assert chan.dedupe_window == dt.timedelta(hours=1)


def test_language_is_sent_as_its_iso_639_code(httpserver, channel_context, make_article):
    serve_instance(httpserver)
    post = channel(httpserver, channel_context).prepare(
        make_article(language="zh-CN", title="喜马拉雅冰川连续第五年消融")
    )
    assert post.body["language"] == "zh"


def test_retried_send_carries_the_same_idempotency_key(httpserver, channel_context, make_article):
    serve_instance(httpserver)
    httpserver.expect_oneshot_request("/api/v1/statuses", method="POST").respond_with_json(
        {"error": "boom"}, status=500
    )
    httpserver.expect_oneshot_request("/api/v1/statuses", method="POST").respond_with_json(
        status_json()
    )
    chan = channel(httpserver, channel_context)
    post = chan.prepare(make_article())
    with pytest.raises(TemporaryFailure):
        chan.send(post, "same-key")
    assert chan.send(post, "same-key").remote_id == "1101"
    first, second = requests_to(httpserver, "/api/v1/statuses")
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"] == "same-key"
    assert first.get_json() == second.get_json()


# -- limits and fitting ----------------------------------------------------------------------


def fitted(httpserver, channel_context, article, max_characters=500):
    serve_instance(httpserver, max_characters=max_characters)
    post = channel(httpserver, channel_context).prepare(article)
    assert post.limit == max_characters
    assert post.length == mastodon_length(post.text) <= max_characters
    assert article.url in post.text.split()  # the link stays whole, on its own
    return post


def test_english_title_near_the_limit_fits(httpserver, channel_context, make_article):
    title = ("Glacier survey finds record losses across the Himalaya " * 9).strip()[:470]
    post = fitted(httpserver, channel_context, make_article(title=title))
    assert post.length > 450  # the budget is used, not wasted
    assert post.text.count("…") >= 1


def test_chinese_title_and_summary_fit(httpserver, channel_context, make_article):
    title = "喜马拉雅冰川连续第五年大幅消融，科学家呼吁加强监测" * 12
    summary = "新的监测数据显示，冰川物质损失再创新高。" * 30
    post = fitted(
        httpserver, channel_context, make_article(title=title, summary=summary, language="zh")
    )
    assert post.length > 450


def test_emoji_are_counted_as_mastodon_counts_them(httpserver, channel_context, make_article):
    family, flag = "👨‍👩‍👧", "🇳🇵"
    short = make_article(title=f"{family}{flag} Families {family}", summary="Short.", tags=())
    serve_instance(httpserver)
    chan = channel(httpserver, channel_context)
    post = chan.prepare(short)
    # 3 emoji graphemes + " Families " → 13; "\n\n" + "Short." + "\n\n" + 23 for the URL
    assert post.length == 13 + 2 + 6 + 2 + 23 == mastodon_length(post.text)

    heavy = make_article(title=f"{family} {flag} " * 200, summary=f"{flag}{family} " * 200)
    post = fitted(httpserver, channel_context, heavy)
    # no emoji was cut apart: every ZWJ sequence is whole, every flag a pair
    assert post.text.count("\u200d") == 2 * post.text.count(family)
    assert post.text.count("🇳") == post.text.count("🇵") == post.text.count(flag)


def test_a_long_url_counts_as_23(httpserver, channel_context, make_article):
    long_url = "https://news.example.org/news/" + "glacier-monitoring-report-" * 6 + "2026/"
    assert len(long_url) > 150
    article = make_article(url=long_url, summary="Short.", tags=())
    post = fitted(httpserver, channel_context, article, max_characters=100)
    assert post.length == len(article.title) + 2 + 6 + 2 + 23  # nothing was cut
    assert "…" not in post.text


def test_small_limit_cuts_the_summary_at_a_word_boundary(httpserver, channel_context, make_article):
    summary = (
        "New data from monitored glaciers across the Himalaya show another year of heavy "
        "losses, with meltwater lakes growing quickly and downstream villages preparing."
    )
    article = make_article(summary=summary, tags=())
    post = fitted(httpserver, channel_context, article, max_characters=100)
    title, cut, url = post.text.split("\n\n")
    assert title == article.title
    assert url == article.url
    assert cut.endswith("…") and len(cut) > 10
    kept = cut[:-1]
    assert summary.startswith(kept)
    assert summary[len(kept)] == " "  # cut between words, never inside one


def test_limits_are_fetched_once_and_cached(httpserver, channel_context, make_article):
    serve_instance(httpserver, max_characters=321)
    first = channel(httpserver, channel_context).prepare(make_article())
    channel(httpserver, channel_context).prepare(make_article(id="news/two"))
    second = channel(httpserver, channel_context).prepare(make_article(id="news/three"))
    assert first.limit == second.limit == 321
    assert len(requests_to(httpserver, "/api/v2/instance")) == 1
    cached = channel_context.memory.value("channel:masto:instance")
    assert cached["max_characters"] == 321 and "fetched_at" in cached


def test_limits_are_refreshed_after_a_day(httpserver, channel_context, make_article):
    serve_instance(httpserver, max_characters=321)
    channel(httpserver, channel_context).prepare(make_article())
    tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(hours=25)
    later = ChannelContext(
        http=channel_context.http,
        site=channel_context.site,
        memory=channel_context.memory,
        clock=lambda: tomorrow,
    )
    channel(httpserver, later).prepare(make_article())
    assert len(requests_to(httpserver, "/api/v2/instance")) == 2


def test_older_server_falls_back_to_v1_instance(httpserver, channel_context, make_article):
    httpserver.expect_request("/api/v2/instance").respond_with_json(
        {"error": "Not Found"}, status=404
    )
    httpserver.expect_request("/api/v1/instance").respond_with_json({"max_toot_chars": 5000})
    post = channel(httpserver, channel_context).prepare(make_article())
    assert post.limit == 5000


def test_defaults_only_when_no_instance_endpoint_exists(httpserver, channel_context, make_article):
    for path in ("/api/v2/instance", "/api/v1/instance"):
        httpserver.expect_request(path).respond_with_json({"error": "Not Found"}, status=404)
    post = channel(httpserver, channel_context).prepare(make_article())
    assert post.limit == 500


def test_instance_server_error_is_temporary_not_a_default(
    httpserver, channel_context, make_article
):
    httpserver.expect_request("/api/v2/instance").respond_with_data("down", status=503)
    with pytest.raises(TemporaryFailure):
        channel(httpserver, channel_context).prepare(make_article())


# -- images ----------------------------------------------------------------------------------


def image_article(httpserver, make_article, **overrides):
    httpserver.expect_request("/images/glacier.png", method="GET").respond_with_data(
        PNG, content_type="image/png"
    )
    fields = {"image": httpserver.url_for("/images/glacier.png"), "image_alt": "A glacier snout"}
    return make_article(**{**fields, **overrides})


def test_image_is_uploaded_with_alt_text(httpserver, channel_context, make_article):
    serve_instance(httpserver)
    article = image_article(httpserver, make_article)
    httpserver.expect_request("/api/v2/media", method="POST").respond_with_json(
        {"id": "m1", "type": "image", "url": "https://files.example/m1.png"}
    )
    httpserver.expect_request("/api/v1/statuses", method="POST").respond_with_json(status_json())
    chan = channel(httpserver, channel_context)
    chan.send(chan.prepare(article), "k1")

    (image,) = requests_to(httpserver, "/images/glacier.png")
    assert "Authorization" not in image.headers  # the token never leaves for the image host
    (upload,) = requests_to(httpserver, "/api/v2/media")
    assert upload.headers["Authorization"] == f"Bearer {TOKEN}"
    assert upload.mimetype == "multipart/form-data"
    assert upload.form["description"] == "A glacier snout"
    assert upload.files["file"].read() == PNG
    assert upload.files["file"].mimetype == "image/png"
    assert upload.files["file"].filename == "glacier.png"
    (status,) = requests_to(httpserver, "/api/v1/statuses")
    assert status.get_json()["media_ids"] == ["m1"]
    assert requests_to(httpserver, "/api/v1/media/m1") == []  # 200: no polling


def test_alt_text_falls_back_to_the_title(httpserver, channel_context, make_article):
    serve_instance(httpserver)
    article = image_article(httpserver, make_article, image_alt=None)
    httpserver.expect_request("/api/v2/media").respond_with_json(
        {"id": "m1", "url": "https://files.example/m1.png"}
    )
    httpserver.expect_request("/api/v1/statuses").respond_with_json(status_json())
    chan = channel(httpserver, channel_context)
    chan.send(chan.prepare(article), "k1")
    (upload,) = requests_to(httpserver, "/api/v2/media")
    assert upload.form["description"] == article.title


def test_image_still_processing_is_polled_until_ready(httpserver, channel_context, make_article):
    serve_instance(httpserver)
    article = image_article(httpserver, make_article)
    httpserver.expect_request("/api/v2/media", method="POST").respond_with_json(
        {"id": "m2", "type": "image", "url": None}, status=202
    )
    httpserver.expect_oneshot_request("/api/v1/media/m2", method="GET").respond_with_data(
        "", status=206
    )
    httpserver.expect_oneshot_request("/api/v1/media/m2", method="GET").respond_with_json(
        {"id": "m2", "type": "image", "url": "https://files.example/m2.png"}
    )
    httpserver.expect_request("/api/v1/statuses", method="POST").respond_with_json(status_json())
    chan = channel(httpserver, channel_context)
    chan.send(chan.prepare(article), "k2")

    polls = requests_to(httpserver, "/api/v1/media/m2")
    assert len(polls) == 2
    assert all(p.headers["Authorization"] == f"Bearer {TOKEN}" for p in polls)
    (status,) = requests_to(httpserver, "/api/v1/statuses")
    assert status.get_json()["media_ids"] == ["m2"]
    assert status.headers["Idempotency-Key"] == "k2"


def test_image_never_ready_posts_without_it(httpserver, channel_context, make_article):
    serve_instance(httpserver)
    article = image_article(httpserver, make_article)
    httpserver.expect_request("/api/v2/media").respond_with_json({"id": "m3", "url": None}, 202)
    httpserver.expect_request("/api/v1/media/m3").respond_with_data("", status=206)
    httpserver.expect_request("/api/v1/statuses").respond_with_json(status_json())
    chan = channel(httpserver, channel_context)
    chan.send(chan.prepare(article), "k3")
    assert len(requests_to(httpserver, "/api/v1/media/m3")) == mastodon_module.MEDIA_POLLS
    (status,) = requests_to(httpserver, "/api/v1/statuses")
    assert "media_ids" not in status.get_json()


def test_unfetchable_image_posts_without_it(httpserver, channel_context, make_article):
    serve_instance(httpserver)
    httpserver.expect_request("/images/missing.png").respond_with_data("gone", status=404)
    httpserver.expect_request("/api/v1/statuses").respond_with_json(status_json())
    article = make_article(image=httpserver.url_for("/images/missing.png"), image_alt="x")
    chan = channel(httpserver, channel_context)
    assert chan.send(chan.prepare(article), "k4").remote_id == "1101"
    assert requests_to(httpserver, "/api/v2/media") == []
    (status,) = requests_to(httpserver, "/api/v1/statuses")
    assert "media_ids" not in status.get_json()


def test_rejected_upload_posts_without_the_image(httpserver, channel_context, make_article):
    serve_instance(httpserver)
    article = image_article(httpserver, make_article)
    httpserver.expect_request("/api/v2/media").respond_with_json(
        {"error": "Validation failed: File content type is invalid"}, status=422
    )
    httpserver.expect_request("/api/v1/statuses").respond_with_json(status_json())
    chan = channel(httpserver, channel_context)
    chan.send(chan.prepare(article), "k5")
    (status,) = requests_to(httpserver, "/api/v1/statuses")
    assert "media_ids" not in status.get_json()


def test_images_off_fetches_nothing(httpserver, channel_context, make_article):
    serve_instance(httpserver)
    article = image_article(httpserver, make_article)
    httpserver.expect_request("/api/v1/statuses").respond_with_json(status_json())
    chan = channel(httpserver, channel_context, images=False)
    chan.send(chan.prepare(article), "k6")
    assert requests_to(httpserver, "/images/glacier.png") == []
    assert requests_to(httpserver, "/api/v2/media") == []


# -- failures --------------------------------------------------------------------------------


def send_against(httpserver, channel_context, make_article, **chan_options):
    chan = channel(httpserver, channel_context, **chan_options)
    return chan.send(chan.prepare(make_article()), "key")


def test_rate_limit_is_temporary_with_retry_after(httpserver, channel_context, make_article):
    serve_instance(httpserver)
    reset = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=90)).isoformat(timespec="milliseconds")
    httpserver.expect_request("/api/v1/statuses").respond_with_json(
        {"error": "Too many requests"},
        status=429,
        headers={
            "X-RateLimit-Limit": "300",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": reset,
        },
    )
    with pytest.raises(TemporaryFailure) as caught:
        send_against(httpserver, channel_context, make_article)
    assert caught.value.retry_after is not None and 80 < caught.value.retry_after <= 90
    assert not caught.value.unknown_outcome


def test_server_error_is_temporary(httpserver, channel_context, make_article):
    serve_instance(httpserver)
    httpserver.expect_request("/api/v1/statuses").respond_with_data("oops", status=500)
    with pytest.raises(TemporaryFailure):
        send_against(httpserver, channel_context, make_article)


def test_bad_token_is_permanent_with_the_servers_reason(httpserver, channel_context, make_article):
    serve_instance(httpserver)
    httpserver.expect_request("/api/v1/statuses").respond_with_json(
        {"error": "The access token is invalid"}, status=401
    )
    with pytest.raises(PermanentFailure, match="The access token is invalid"):
        send_against(httpserver, channel_context, make_article)


def test_validation_error_is_permanent(httpserver, channel_context, make_article):
    serve_instance(httpserver)
    httpserver.expect_request("/api/v1/statuses").respond_with_json(
        {"error": "Validation failed: Text character limit of 500 exceeded"}, status=422
    )
    with pytest.raises(PermanentFailure, match="character limit of 500 exceeded"):
        send_against(httpserver, channel_context, make_article)


def test_timeout_is_temporary_with_unknown_outcome(httpserver, channel_context, make_article):
    serve_instance(httpserver)

    def slow(request: Request) -> Response:
        time.sleep(1.0)
        return Response(json.dumps(status_json()), mimetype="application/json")

    httpserver.expect_request("/api/v1/statuses").respond_with_handler(slow)
    chan = channel(httpserver, channel_context, timeout=0.3)
    post = chan.prepare(make_article())
    with pytest.raises(TemporaryFailure) as caught:
        chan.send(post, "key")
    assert caught.value.unknown_outcome
    assert "may have been made" in caught.value.reason
    deadline = time.monotonic() + 5  # let the slow handler finish before the next test
    while not requests_to(httpserver, "/api/v1/statuses") and time.monotonic() < deadline:
        time.sleep(0.05)


# -- through the posting engine --------------------------------------------------------------


def test_engine_retries_once_and_records_the_status(httpserver, state_url, site, make_article):
    store = Store(state_url, site.url)
    try:
        published = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
        article = make_article(published=published)
        store.apply("news", Scan(changed=[Item("glacier-report.md", "fp", article)]))
        serve_instance(httpserver)
        httpserver.expect_oneshot_request("/api/v1/statuses", method="POST").respond_with_json(
            {"error": "Internal server error"}, status=500
        )
        httpserver.expect_oneshot_request("/api/v1/statuses", method="POST").respond_with_json(
            status_json("2202")
        )
        with requests.Session() as http:
            context = ChannelContext(http=http, site=site, memory=store)
            chan = channel(httpserver, context, name="mastodon")
            ledger = Ledger(store.engine)
            waits: list[float] = []
            reports = Poster(store, ledger, sleep=waits.append).run([chan])

        report = reports["mastodon"]
        assert report.sent == [(article.id, "https://social.example/@news/2202")]
        assert report.ok
        assert len(waits) == 1  # one backoff between the two tries
        entry = ledger.entries(post_stream("mastodon"))[article.id]
        assert entry.state == SENT
        assert entry.remote_id == "2202"
        assert entry.remote_url == "https://social.example/@news/2202"
        posts = requests_to(httpserver, "/api/v1/statuses", "POST")
        assert len(posts) == 2
        keys = {p.headers["Idempotency-Key"] for p in posts}
        assert keys == {idempotency_key(post_stream("mastodon"), article.id)}

        # a second run posts nothing more
        with requests.Session() as http:
            context = ChannelContext(http=http, site=site, memory=store)
            again = Poster(store, ledger, sleep=waits.append).run(
                [channel(httpserver, context, name="mastodon")]
            )
        assert again["mastodon"].sent == []
        assert len(requests_to(httpserver, "/api/v1/statuses", "POST")) == 2
        assert len(requests_to(httpserver, "/api/v2/instance")) == 1  # limits came from the store
    finally:
        store.close()


def test_stale_limits_are_used_when_the_refresh_fails(httpserver, channel_context, make_article):
    serve_instance(httpserver, max_characters=321)
    channel(httpserver, channel_context).prepare(make_article())
    httpserver.clear()
    httpserver.expect_request("/api/v2/instance").respond_with_data("down", status=502)
    tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(hours=25)
    later = ChannelContext(
        http=channel_context.http,
        site=channel_context.site,
        memory=channel_context.memory,
        clock=lambda: tomorrow,
    )
    assert channel(httpserver, later).prepare(make_article()).limit == 321
    assert len(requests_to(httpserver, "/api/v2/instance")) == 1  # it did try
