"""Upstream HTTP sources are bounded: decompressed size, total time per request, and
redirects. Each limit ends as SourceUnavailable for that source only, naming the
source, the URL (credentials masked) and the limit."""

from __future__ import annotations

import functools
import gzip
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
from werkzeug import Request, Response

from pipeline.errors import SourceUnavailable
from pipeline.ingest import ingest
from pipeline.sources.feed import FeedSource, FeedSourceSettings
from pipeline.sources.http import MAX_BYTES, Limits, fetch
from pipeline.sources.markdown import MarkdownSource, MarkdownSourceSettings
from pipeline.sources.wordpress import WordPressSource, WordPressSourceSettings
from pipeline.store import Store
from tests.conftest import write_article
from tests.test_source_feed import RSS, RSS_FEED

MB = 1_000_000


@functools.cache
def gzip_bomb_1gb() -> bytes:
    """1 GiB of zeros as 64 gzip members of 16 MiB each (a valid gzip body, ~1 MB):
    compressing 1 GiB in one piece would take this machine several seconds."""
    member = gzip.compress(b"\0" * (16 << 20), compresslevel=9)
    return member * 64


@functools.cache
def gzip_bomb_single() -> bytes:
    """32 MiB of zeros in one gzip member (one decompressor, ratio ~1000:1)."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = b"\0" * (1 << 20)
    return b"".join([squeeze.compress(zeros) for _ in range(32)] + [squeeze.flush()])


def feed_source(url: str, site, limits: Limits | None = None, **options) -> FeedSource:
    settings = FeedSourceSettings(type="feed", name="wire", url=url, **options)
    return FeedSource(settings, site, requests.Session(), limits)


def unavailable(source) -> str:
    with pytest.raises(SourceUnavailable) as caught:
        source.scan({}, {})
    return str(caught.value)


# -- size ------------------------------------------------------------------------------


@pytest.mark.parametrize("bomb", [gzip_bomb_1gb, gzip_bomb_single], ids=["1GiB", "single"])
def test_a_gzip_bomb_stops_at_the_limit_in_bounded_memory_and_time(httpserver, site, bomb):
    body = bomb()
    httpserver.expect_request("/feed.xml").respond_with_data(
        body, content_type=RSS, headers={"Content-Encoding": "gzip"}
    )
    url = httpserver.url_for("/feed.xml")
    tracemalloc.start()
    started = time.monotonic()
    try:
        message = unavailable(feed_source(url, site))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 15
    assert peak < 100 * MB, f"peak {peak:,} bytes"
    assert "'wire'" in message and url in message
    assert "decompresses to more than that" in message and f"{MAX_BYTES:,} bytes" in message


def test_a_50mb_body_announced_is_refused_without_reading_it(httpserver, site):
    httpserver.expect_request("/feed.xml").respond_with_data(b"<" * (50 * MB), content_type=RSS)
    url = httpserver.url_for("/feed.xml")
    message = unavailable(feed_source(url, site))
    assert "'wire'" in message and url in message
    assert "announces 50,000,000 bytes" in message and "20,000,000 bytes" in message


def test_a_50mb_body_streamed_without_length_is_cut_at_the_limit(httpserver, site):
    def stream(request: Request) -> Response:
        chunk = b"<item>" + b"x" * (MB - 6)
        return Response((chunk for _ in range(50)), content_type=RSS)  # chunked, no length

    httpserver.expect_request("/feed.xml").respond_with_handler(stream)
    url = httpserver.url_for("/feed.xml")
    tracemalloc.start()
    try:
        message = unavailable(feed_source(url, site))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "sends more than that" in message and "20,000,000 bytes" in message
    assert peak < 100 * MB


def test_a_smaller_limit_applies_to_wordpress_pages_too(httpserver, site):
    httpserver.expect_request("/wp-json/wp/v2/posts").respond_with_data(
        b"[" + b" " * 5000 + b"]", content_type="application/json"
    )
    settings = WordPressSourceSettings(
        type="wordpress", name="blog", url=httpserver.url_for("/").rstrip("/")
    )
    source = WordPressSource(settings, site, requests.Session(), Limits(max_bytes=4000))
    message = unavailable(source)
    assert "'blog'" in message and "/wp-json/wp/v2/posts" in message
    assert "4,000 bytes" in message


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", lambda data: gzip.compress(data[:500]) + gzip.compress(data[500:])),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as IIS sends
        ("gzip, gzip", lambda data: gzip.compress(gzip.compress(data))),
        ("gzip", lambda data: gzip.compress(data) + b"\0\0 trailing junk"),
    ],
)
def test_compressed_feeds_are_decoded(httpserver, site, coding, encode):
    body = encode(RSS_FEED.encode())
    httpserver.expect_request("/feed.xml").respond_with_data(
        body, content_type=RSS, headers={"Content-Encoding": coding}
    )
    scan = feed_source(httpserver.url_for("/feed.xml"), site).scan({}, {})
    assert [item.key for item in scan.changed] == ["wire-101", "https://wire.example.com/?p=99"]
    assert "Second paragraph." in scan.changed[0].article.body_html
    (request, _) = httpserver.log[0]
    assert request.headers["Accept-Encoding"] == "gzip, deflate"


@pytest.mark.parametrize(
    ("coding", "body", "expected"),
    [
        ("br", b"\x0b\x02\x80hello\x03", "unsupported Content-Encoding 'br'"),
        ("gzip", b"this is not gzip at all", "not valid gzip"),
    ],
)
def test_bodies_that_cannot_be_decoded_are_unavailable(httpserver, site, coding, body, expected):
    httpserver.expect_request("/feed.xml").respond_with_data(
        body, content_type=RSS, headers={"Content-Encoding": coding}
    )
    assert expected in unavailable(feed_source(httpserver.url_for("/feed.xml"), site))


# -- time ------------------------------------------------------------------------------


@contextmanager
def dripping_server(prefix: bytes, drip: bytes, every: float = 0.2) -> Iterator[str]:
    """A server that answers every request with ``prefix`` at once, then one byte of
    ``drip`` (repeated for ever) every ``every`` seconds: never silent long enough for
    a socket timeout."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    def answer(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(prefix)
                for index in range(100_000):
                    if stop.wait(every):
                        return
                    conn.sendall(drip[index % len(drip) : index % len(drip) + 1])
            except OSError:
                return  # the client gave up: that is the point

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/feed.xml"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 100000\r\n\r\n"


@pytest.mark.parametrize(
    ("prefix", "drip"),
    [
        (HEADERS, b"<rss>"),  # the body, a byte at a time
        (b"HTTP/1.1 200 OK\r\n", b"X-Slow: aaaa"),  # a header line that never ends
        (b"", b"HTTP/1.1 200 OK\r\n"),  # even the status line
    ],
    ids=["body", "header", "status-line"],
)
def test_a_server_dripping_bytes_is_cut_off_at_the_deadline(site, prefix, drip):
    with dripping_server(prefix, drip) as url:
        source = feed_source(url, site, Limits(deadline=1))
        started = time.monotonic()
        message = unavailable(source)
        elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 2.5, elapsed
    assert "'wire'" in message and url in message
    assert "did not finish within 1 seconds, the limit for one request" in message


def test_the_deadline_uses_the_injected_clock(httpserver, site):
    """Deterministic: the clock jumps past the deadline after the first read."""
    httpserver.expect_request("/feed.xml").respond_with_data(RSS_FEED * 20, content_type=RSS)
    ticks = iter([0.0, 0.0, 0.0])

    def clock() -> float:
        return next(ticks, 1000.0)

    source = feed_source(httpserver.url_for("/feed.xml"), site, Limits(deadline=30, clock=clock))
    assert "did not finish within 30 seconds" in unavailable(source)


# -- redirects -------------------------------------------------------------------------


def test_a_redirect_loop_stops_after_five(httpserver, site):
    httpserver.expect_request("/loop").respond_with_data(
        "", status=302, headers={"Location": "/loop"}
    )
    url = httpserver.url_for("/loop")
    message = unavailable(feed_source(url, site))
    assert "'wire'" in message and url in message
    assert "redirected more than 5 times" in message
    assert len(httpserver.log) == 6  # the request and five redirects


def test_a_few_redirects_are_followed_and_the_final_url_used(httpserver, site):
    for hop in range(3):
        httpserver.expect_request(f"/old{hop}").respond_with_data(
            "", status=301, headers={"Location": f"/old{hop + 1}"}
        )
    httpserver.expect_request("/old3").respond_with_data(RSS_FEED, content_type=RSS)
    scan = feed_source(httpserver.url_for("/old0"), site).scan({}, {})
    assert len(scan.changed) == 2


def test_a_redirect_body_is_not_read(httpserver, site):
    """requests reads a redirect's body whole (decompressed) even with redirects off."""
    sent = []

    def redirect(request: Request) -> Response:
        def body() -> Iterator[bytes]:
            for chunk in range(200):  # 200 MB nobody should read
                sent.append(chunk)
                yield b"x" * MB

        return Response(body(), status=302, headers={"Location": "/feed.xml"})

    httpserver.expect_request("/moved").respond_with_handler(redirect)
    httpserver.expect_request("/feed.xml").respond_with_data(RSS_FEED, content_type=RSS)
    scan = feed_source(httpserver.url_for("/moved"), site).scan({}, {})
    assert len(scan.changed) == 2
    assert len(sent) < 50  # the server gave up when the connection was closed


def test_a_redirect_away_from_http_is_refused(httpserver, site):
    httpserver.expect_request("/feed.xml").respond_with_data(
        "", status=302, headers={"Location": "file:///etc/passwd"}
    )
    message = unavailable(feed_source(httpserver.url_for("/feed.xml"), site))
    assert "a redirect to file:///etc/passwd, which is not http(s)" in message


def test_credentials_go_only_to_the_host_that_was_given_them(httpserver, site):
    httpserver.expect_request("/a").respond_with_data("", status=302, headers={"Location": "/b"})
    httpserver.expect_request("/b").respond_with_data(RSS_FEED, content_type=RSS)
    url = httpserver.url_for("/a").replace("http://", "http://editor:s3cret@")
    feed_source(url, site).scan({}, {})
    assert [r.headers.get("Authorization", "")[:6] for r, _ in httpserver.log] == ["Basic "] * 2

    session = requests.Session()
    httpserver.clear()
    elsewhere = httpserver.url_for("/b").replace("localhost", "127.0.0.1")
    httpserver.expect_request("/a").respond_with_data(
        "", status=302, headers={"Location": elsewhere}
    )
    httpserver.expect_request("/b").respond_with_data(RSS_FEED, content_type=RSS)
    fetch(session, url, source="wire", timeout=5)
    assert [bool(r.headers.get("Authorization")) for r, _ in httpserver.log] == [True, False]


# -- secrets and isolation -------------------------------------------------------------


def secret_url(httpserver, path: str) -> str:
    return httpserver.url_for(path).replace("http://", "http://editor:s3cret@") + "?token=t0ps3cr"


@pytest.mark.parametrize("failure", ["status", "bomb", "redirects", "unreachable"])
def test_a_password_in_the_source_url_never_appears_in_the_message(httpserver, site, failure):
    if failure == "status":
        httpserver.expect_request("/feed.xml").respond_with_data("no", status=500)
    elif failure == "bomb":
        httpserver.expect_request("/feed.xml").respond_with_data(
            gzip_bomb_1gb(), content_type=RSS, headers={"Content-Encoding": "gzip"}
        )
    elif failure == "redirects":
        httpserver.expect_request("/feed.xml").respond_with_data(
            "", status=302, headers={"Location": httpserver.url_for("/feed.xml") + "?token=x"}
        )
    url = secret_url(httpserver, "/feed.xml")
    if failure == "unreachable":
        url = "http://editor:s3cret@127.0.0.1:9/feed.xml?token=t0ps3cr"
    message = unavailable(feed_source(url, site))
    assert "s3cret" not in message and "t0ps3cr" not in message
    assert "editor:***@" in message


def test_a_password_never_appears_in_rejections(httpserver, site):
    broken = RSS_FEED.replace("<title>Glacier lake monitored</title>", "")
    httpserver.expect_request("/feed.xml").respond_with_data(broken, content_type=RSS)
    scan = feed_source(secret_url(httpserver, "/feed.xml"), site).scan({}, {})
    assert scan.rejected
    for problem in scan.rejected:
        assert "s3cret" not in str(problem) and "t0ps3cr" not in str(problem)

    httpserver.expect_request("/wp-json/wp/v2/posts").respond_with_data(
        '[{"id": 7, "title": {"rendered": ""}}]', content_type="application/json"
    )
    base = httpserver.url_for("/").rstrip("/").replace("http://", "http://editor:s3cret@")
    settings = WordPressSourceSettings(type="wordpress", name="blog", url=base)
    (problem,) = WordPressSource(settings, site, requests.Session()).scan({}, {}).rejected
    assert "s3cret" not in str(problem) and "editor:***@" in str(problem)


def test_a_bomb_costs_its_source_only(httpserver, tmp_path, site, state_url):
    httpserver.expect_request("/feed.xml").respond_with_data(
        gzip_bomb_1gb(), content_type=RSS, headers={"Content-Encoding": "gzip"}
    )
    write_article(tmp_path, "good.md", "title: Good\ndate: 2024-05-01")
    markdown = MarkdownSource(
        MarkdownSourceSettings(type="markdown", name="news", path=tmp_path), site
    )
    store = Store(state_url, site.url)
    try:
        report = ingest([feed_source(httpserver.url_for("/feed.xml"), site), markdown], store)
        assert "decompresses to more than that" in report.unavailable["wire"]
        assert report.stored["news"].added == ["news/good"]
    finally:
        store.close()
