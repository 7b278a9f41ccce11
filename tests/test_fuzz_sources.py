"""Hostile input to every source: each item is accepted or rejected with a located
reason, the scan itself never raises anything but SourceUnavailable, what it accepts
can be stored, and each example finishes in bounded time and memory.

Markdown files are scanned from a real folder; RSS/Atom documents and WordPress
answers are served by a real HTTP server on 127.0.0.1, so the bounded fetch, the
parsers and the article rules all run as in production."""

from __future__ import annotations

import datetime as dt
import json
import resource
import tempfile
from contextlib import contextmanager
from pathlib import Path

import feedparser
import pytest
import requests
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from werkzeug import Request, Response

from pipeline.errors import SourceUnavailable
from pipeline.ingest import storable
from pipeline.sources.feed import _CHARREF, FeedSource, FeedSourceSettings, _no_surrogate
from pipeline.sources.markdown import MarkdownSource, MarkdownSourceSettings
from pipeline.sources.wordpress import WordPressSource, WordPressSourceSettings
from tests.test_source_wordpress import post

MB = 1_000_000
EXAMPLE = settings(
    max_examples=30,
    deadline=dt.timedelta(seconds=3),  # one example; a slow path here is a finding
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- hostile values shared by every format ---------------------------------------------

DATES = st.sampled_from(
    [
        "2024-03-01",
        "2026-02-30",
        "0000-01-01",
        "0001-01-01",
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59-05:00",
        "99999-01-01",
        "2024-13-01",
        "2024-03-01T25:61:00",
        "2024-03-01T09:30+24:00",
        "2024-03-01 09:30",
        "1969-12-31T23:59:59Z",
        "yesterday",
        "",
        "-1",
        "1e309",
        "Fri, 01 Mar 2024 09:30:00 +0545",
        "Mon, 31 Feb 0000 99:99:99 +9999",
        "Tue, 10 Jun 99999 04:00:00 GMT",
    ]
)
ODD_TEXT = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "\x07bell",
            "\ufeff",
            "\u202eevil",
            "\ud800",
            "x" * 3000,
            "雪" * 700,
            "&amp;#8217;",
            "&#0;",
            "&#xD800;",
            "<![CDATA[ ]]>",
            "]]>",
            "<script>alert(1)</script>",
            "javascript:alert(1)",
            "http://[::1",
            "http://" + "a" * 2100 + ".example/",
            "-1",
            "99999999999999999999999999",
            "NaN",
        ]
    ),
)


@contextmanager
def bounded_memory(limit: int = 200 * MB):
    """The process's peak memory grows by less than ``limit`` during the block. (Cheap,
    unlike tracemalloc, which slows feedparser tenfold; the exact peaks of the large
    inputs are measured in test_source_limits.)"""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    yield
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert grown < limit, f"peak memory grew by {grown:,} bytes"


def nested_html(depth: int) -> str:
    return "<div><b>" * depth + "deep" + "</b></div>" * depth


# -- Markdown and HTML files -----------------------------------------------------------

YAML_VALUES = st.one_of(
    DATES,
    ODD_TEXT.map(json.dumps),  # a quoted scalar, whatever it holds
    st.sampled_from(
        [
            "[a, b]",
            "{a: 1}",
            "&x [*x]",
            "*nowhere",
            "!!binary aGk=",
            "!!python/object:os.system x",
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[x]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
            "1e309",
            "0x_",
            "~",
            "yes",
            "|\n  block\n  text",
            '\t"tabbed"',
            "'unterminated",
            "12345678901234567890123456789012345678901234567890",
        ]
    ),
)
KEYS = st.sampled_from(
    [
        "title",
        "date",
        "author",
        "tags",
        "summary",
        "language",
        "section",
        "id",
        "url",
        "image",
        "updated",
        "draft",
        "translation_of",
        "tgas",
        "<<",
        "? complex",
        "",
    ]
)
FRONT = st.lists(st.tuples(KEYS, YAML_VALUES), max_size=8).map(
    lambda pairs: "\n".join(f"{key}: {value}" for key, value in pairs)
)
# Depths around and far beyond what parsers recurse through (Python's limit is 1,000);
# drawn from a few values, since a range would mostly give slow, equally deep ones.
DEPTH = st.sampled_from([2, 40, 400, 1200, 3000])
BODY = st.one_of(
    st.text(max_size=200),
    DEPTH.map(nested_html),
    DEPTH.map(lambda n: "> " * n + "quote"),
    st.sampled_from([2, 40, 250]).map(  # indentation grows too: 250 levels are 60 KB
        lambda n: "".join("  " * i + "- item\n" for i in range(n))
    ),
    DEPTH.map(lambda n: "[" * n + "link" + "](x)" * n),
    st.sampled_from(["<p>\x00</p>", "<!--", "<svg><script>x</script></svg>", "&#x110000;"]),
)
GOOD_FRONT = "title: Fine\ndate: 2024-05-01"
MARKDOWN_FILE = st.one_of(
    st.binary(max_size=300),
    st.tuples(FRONT, BODY).map(lambda p: f"---\n{p[0]}\n---\n{p[1]}".encode("utf-8", "replace")),
    st.tuples(FRONT, BODY).map(  # a valid start, then something hostile
        lambda p: f"---\n{GOOD_FRONT}\n{p[0]}\n---\n{p[1]}".encode("utf-8", "replace")
    ),
    BODY.map(lambda body: f"---\n{GOOD_FRONT}\n---\n{body}".encode("utf-8", "replace")),
)


def _md(front: str, body: str = "Body.") -> tuple[str, bytes]:
    return ".md", f"---\n{front}\n---\n{body}\n".encode()


# The outside tester's crashers run every time, beside whatever hypothesis draws.
@EXAMPLE
@example(files=[_md("title: T\ndate: 2026-02-30"), _md(GOOD_FRONT)])
@example(files=[_md("title: T\ndate: 0000-01-01"), _md(GOOD_FRONT)])
@example(files=[_md("title: T\ndate: 0001-01-01T00:00:00+05:00"), _md(GOOD_FRONT)])
@example(files=[_md("title: &a [*a]\ndate: 2024-01-01"), _md(GOOD_FRONT)])
@example(files=[_md('title:\t"x"\ndate: 2024-01-01\ntgas: [x]'), _md(GOOD_FRONT)])
@example(files=[_md(GOOD_FRONT + "\ntags: [" + "t" * 300 + "]"), _md(GOOD_FRONT)])
@given(
    files=st.lists(
        st.tuples(st.sampled_from([".md", ".html", ".markdown"]), MARKDOWN_FILE),
        min_size=1,
        max_size=4,
    )
)
def test_every_markdown_file_is_stored_or_rejected_with_its_location(site, store, files):
    with tempfile.TemporaryDirectory() as folder:
        names = []
        for number, (suffix, content) in enumerate(files):
            name = f"file-{number}{suffix}"
            (Path(folder) / name).write_bytes(content)
            names.append(name)
        source = MarkdownSource(
            MarkdownSourceSettings(type="markdown", name="news", path=Path(folder)), site
        )
        with bounded_memory():
            scan = source.scan({}, {})
        stored = {item.key for item in scan.changed}
        rejected = {Path(problem.file).name for problem in scan.rejected}
        for problem in scan.rejected:
            assert problem.message and (problem.line is None or problem.line >= 1)
        for name, (_, content) in zip(names, files, strict=True):
            if name not in stored | rejected:
                assert b"draft" in content, f"{name} neither stored nor rejected"
        report = store.apply("news", storable(scan, site.url))
        assert len(report.added) + len(report.updated) + report.unchanged <= len(stored)


# -- RSS and Atom ----------------------------------------------------------------------


def _bytes(document: str) -> bytes:
    return document.encode("utf-8", "surrogatepass")  # a lone surrogate stays, invalid


def _xml(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;")


# Each field is often fine, so that entries get past the first check to the later ones.
RSS_ITEM = st.fixed_dictionaries(
    {
        "title": st.one_of(st.just("Rivers and rain"), ODD_TEXT),
        "guid": st.one_of(st.uuids().map(str), ODD_TEXT, st.just("same-id")),
        "link": st.one_of(st.just("/2024/03/rivers/"), ODD_TEXT),
        "date": st.one_of(st.just("Fri, 01 Mar 2024 09:30:00 +0545"), DATES),
        "body": st.one_of(ODD_TEXT, st.sampled_from([2, 40, 400, 1200]).map(nested_html)),
        "raw": st.booleans(),  # put values in unescaped: broken XML on purpose
        "media": ODD_TEXT,
    }
).map(
    lambda i: (
        "<item>"
        + "".join(
            f"<{tag}>{i[key] if i['raw'] else _xml(i[key])}</{tag}>"
            for tag, key in (("title", "title"), ("guid", "guid"), ("link", "link"))
        )
        + f"<pubDate>{_xml(i['date'])}</pubDate>"
        + f"<description>{_xml(i['body'])}</description>"
        + f'<media:content url="{_xml(i["media"])}" medium="image">'
        + f"<media:description>{_xml(i['title'])}</media:description></media:content>"
        + "</item>"
    )
)
ATOM_ENTRY = st.tuples(ODD_TEXT, ODD_TEXT, DATES, ODD_TEXT).map(
    lambda e: (
        f"<entry><id>{_xml(e[0])}</id><title type='html'>{_xml(e[1])}</title>"
        f"<updated>{_xml(e[2])}</updated><content type='xhtml'><div "
        f"xmlns='http://www.w3.org/1999/xhtml'>{_xml(e[3])}</div></content>"
        f"<link href='{_xml(e[3])}'/></entry>"
    )
)
RSS_DOC = st.tuples(ODD_TEXT, st.lists(RSS_ITEM, max_size=5)).map(
    lambda d: (
        '<?xml version="1.0"?><rss version="2.0" '
        'xmlns:media="http://search.yahoo.com/mrss/"><channel>'
        f"<title>Wire</title><link>{_xml(d[0])}</link><language>{_xml(d[0][:20])}</language>"
        + "".join(d[1])
        + "</channel></rss>"
    )
)
ATOM_DOC = st.tuples(ODD_TEXT, st.lists(ATOM_ENTRY, max_size=5)).map(
    lambda d: (
        f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="{_xml(d[0][:30])}">'
        f"<title>Wire</title><author><name>{_xml(d[0])}</name></author>" + "".join(d[1]) + "</feed>"
    )
)
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + n)} "{("&" + chr(97 + n) + ";") * 10}">' for n in range(9))
    + ']><rss version="2.0"><channel><title>&j;</title><item><title>&j;</title>'
    "<guid>x</guid><pubDate>Fri, 01 Mar 2024 09:30:00 GMT</pubDate></item></channel></rss>"
)
FEED_DOCUMENT = st.one_of(
    RSS_DOC.map(_bytes),
    ATOM_DOC.map(_bytes),
    st.tuples(RSS_DOC, st.integers(0, 2000)).map(lambda d: _bytes(d[0][: d[1]])),  # truncated
    st.binary(max_size=300),
    st.just(BILLION_LAUGHS.encode()),
    st.just(BILLION_LAUGHS.encode("utf-16")),
    # deep nesting; feedparser is linear in it (~30 µs an element), so 5,000 is plenty
    DEPTH.map(lambda n: f"<rss>{'<x>' * n}".encode()),
)


@pytest.fixture
def serve(httpserver):
    """Serve whatever the current example sets, at one URL, for the whole test."""
    current: dict = {"body": b"", "type": "application/rss+xml", "headers": {}, "status": 200}

    def handler(request: Request) -> Response:
        return Response(
            current["body"],
            status=current["status"],
            content_type=current["type"],
            headers=current["headers"],
        )

    httpserver.expect_request("/feed.xml").respond_with_handler(handler)
    httpserver.expect_request("/wp-json/wp/v2/posts").respond_with_handler(handler)
    return current


@EXAMPLE
@example(document=b"<rss><channel><item><guid>a</guid><title>Lake &#xD800;</item></rss>")
@example(document=BILLION_LAUGHS.encode())
@given(document=FEED_DOCUMENT)
def test_every_feed_entry_is_stored_or_rejected(httpserver, serve, site, store, document):
    serve.update(body=document, type="application/rss+xml", headers={}, status=200)
    url = httpserver.url_for("/feed.xml")
    source = FeedSource(
        FeedSourceSettings(type="feed", name="wire", url=url), site, requests.Session()
    )
    try:
        with bounded_memory():
            scan = source.scan({}, {})
    except SourceUnavailable as exc:
        assert "'wire'" in str(exc)
        event("unavailable")
        return
    event(f"stored: {bool(scan.changed)}, rejected: {bool(scan.rejected)}")
    # the entries feedparser finds in what the source parses (character references fixed)
    entries = len(feedparser.parse(_CHARREF.sub(_no_surrogate, document)).entries)
    assert len(scan.changed) + len(scan.rejected) == entries
    for problem in scan.rejected:
        assert problem.file == url and problem.message.startswith("entry ")
    store.apply("wire", storable(scan, site.url))


# -- WordPress -------------------------------------------------------------------------

JSON_ODD = st.one_of(
    ODD_TEXT,
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)
RENDERED = st.one_of(JSON_ODD, st.fixed_dictionaries({"rendered": JSON_ODD}))
TERM = st.fixed_dictionaries(
    {
        "name": JSON_ODD,
        "slug": JSON_ODD,
        "taxonomy": st.sampled_from(["post_tag", "category", "other", None]),
    }
)
EMBEDDED = st.one_of(
    JSON_ODD,
    st.fixed_dictionaries(
        {
            "author": st.one_of(JSON_ODD, st.lists(st.fixed_dictionaries({"name": JSON_ODD}))),
            "wp:term": st.one_of(JSON_ODD, st.lists(st.lists(TERM, max_size=3), max_size=2)),
            "wp:featuredmedia": st.one_of(
                JSON_ODD,
                st.lists(
                    st.fixed_dictionaries({"source_url": JSON_ODD, "alt_text": JSON_ODD}),
                    max_size=1,
                ),
            ),
        }
    ),
)
POST = st.one_of(
    JSON_ODD,
    st.fixed_dictionaries(
        {
            "id": st.one_of(st.integers(-5, 10), st.integers(), JSON_ODD),
            "date": st.one_of(DATES, JSON_ODD),
            "date_gmt": st.one_of(DATES, JSON_ODD),
            "modified_gmt": st.one_of(DATES, JSON_ODD),
            "slug": JSON_ODD,
            "link": JSON_ODD,
            "title": RENDERED,
            "content": st.one_of(
                RENDERED,
                st.fixed_dictionaries({"rendered": DEPTH.map(nested_html), "protected": JSON_ODD}),
            ),
            "excerpt": RENDERED,
            "_embedded": EMBEDDED,
        }
    ),
)
# A real post with one to three fields made hostile, so that most get past the id check.
SPOILED_POST = st.tuples(
    st.integers(1, 40),
    st.dictionaries(
        st.sampled_from(
            ["date", "date_gmt", "modified_gmt", "slug", "link", "title", "content", "excerpt"]
        ),
        st.one_of(DATES, JSON_ODD, RENDERED),
        max_size=3,
    ),
    EMBEDDED,
    st.booleans(),
).map(lambda p: {**post(p[0], **p[1]), **({"_embedded": p[2]} if p[3] else {})})
WP_BODY = st.one_of(
    st.lists(st.one_of(SPOILED_POST, SPOILED_POST, POST), max_size=6).map(json.dumps),
    JSON_ODD.map(json.dumps),
    st.sampled_from([10, 1000, 100_000]).map(lambda n: "[" * n + "]" * n),
    st.text(max_size=100),
)


@EXAMPLE
@example(body="[" * 100_000 + "]" * 100_000, pages="1", status=200)
@example(body=json.dumps([post(1)]), pages="²", status=200)
@example(body=json.dumps(["a post", {"id": 2}]), pages="1", status=200)
@given(
    body=WP_BODY,
    pages=st.sampled_from(["1", "2", "1", "²", "9" * 5000, "-1", "", "0"]),
    status=st.sampled_from([200] * 6 + [400, 500]),
)
def test_every_wordpress_post_is_stored_or_rejected(
    httpserver, serve, site, store, body, pages, status
):
    serve.update(
        body=body.encode("utf-8", "surrogatepass"),
        type="application/json",
        headers={"X-WP-TotalPages": pages},
        status=status,
    )
    base = httpserver.url_for("/").rstrip("/")
    source = WordPressSource(
        WordPressSourceSettings(type="wordpress", name="blog", url=base, max_pages=2),
        site,
        requests.Session(),
    )
    try:
        scan = source.scan({}, {})
    except SourceUnavailable as exc:
        assert "'blog'" in str(exc)
        event("unavailable")
        return
    event(f"stored: {bool(scan.changed)}, rejected: {bool(scan.rejected)}")
    keys = [item.key for item in scan.changed]
    assert len(keys) == len(set(keys))  # a post listed twice is stored once
    for problem in scan.rejected:
        assert problem.file == base and problem.message.startswith("post ")
    store.apply("blog", storable(scan, site.url))
