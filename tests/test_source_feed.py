"""The feed source: RSS 2.0 and Atom 1.0 upstream, conditional GET, bad entries, errors."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import requests
from werkzeug import Request, Response

from pipeline.errors import SourceUnavailable
from pipeline.sources import feed as feed_module
from pipeline.sources.feed import FeedSource, FeedSourceSettings

UTC = dt.UTC
RSS = "application/rss+xml; charset=utf-8"

RSS_FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/">
<channel>
  <title>Himalayan Times Wire</title>
  <link>https://wire.example.com/</link>
  <description>Regional news wire</description>
  <language>en-us</language>
  <item>
    <title>Rivers &amp;amp; rain: what&amp;#8217;s next for the Koshi</title>
    <link>/2024/03/rivers-and-rain/</link>
    <guid isPermaLink="false">wire-101</guid>
    <pubDate>Fri, 01 Mar 2024 09:30:00 +0545</pubDate>
    <dc:creator>Asha Rai</dc:creator>
    <category>Climate</category>
    <category>Nepal</category>
    <description>Monsoon forecasts for the &lt;b&gt;Koshi&lt;/b&gt; basin.</description>
    <content:encoded><![CDATA[<p>The Koshi basin <a href="/koshi">floods</a> often.</p>
      <script>alert(1)</script><p>Second paragraph.</p>]]></content:encoded>
    <media:content url="https://cdn.example.com/koshi.jpg" medium="image" type="image/jpeg">
      <media:description>The Koshi river at dawn</media:description>
    </media:content>
  </item>
  <item>
    <title>Glacier lake monitored</title>
    <link>https://wire.example.com/2024/02/glacier-lake/</link>
    <guid>https://wire.example.com/?p=99</guid>
    <pubDate>Wed, 28 Feb 2024 06:00:00 GMT</pubDate>
    <author>desk@wire.example.com (Tenzin Norbu)</author>
    <description>Sensors now watch Tsho Rolpa around the clock.</description>
    <enclosure url="https://cdn.example.com/lake.png" type="image/png" length="1024"/>
  </item>
  <item>
    <link>https://wire.example.com/2024/02/untitled/</link>
    <guid isPermaLink="false">wire-98</guid>
    <pubDate>Tue, 27 Feb 2024 06:00:00 GMT</pubDate>
    <description>An entry without a title.</description>
  </item>
  <item>
    <title>Undated notice</title>
    <guid isPermaLink="false">wire-97</guid>
    <description>No date at all.</description>
  </item>
</channel>
</rss>"""

ATOM_FEED = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:media="http://search.yahoo.com/mrss/"
      xml:lang="en">
  <title>Biodiversity Desk</title>
  <link href="https://bio.example.net/"/>
  <link rel="self" href="https://bio.example.net/atom.xml"/>
  <id>urn:uuid:60a76c80-d399-11d9-b91C-0003939e0af6</id>
  <updated>2024-03-03T10:00:00Z</updated>
  <author><name>Biodiversity Desk</name></author>
  <entry xml:lang="zh-cn">
    <title type="html">中国的生物多样性保护 &amp;amp; 湿地</title>
    <link rel="alternate" href="https://bio.example.net/zh/2024/wetlands"/>
    <id>tag:bio.example.net,2024:wetlands-zh</id>
    <published>2024-03-01T08:00:00+08:00</published>
    <updated>2024-03-02T20:00:00+08:00</updated>
    <author><name>李华</name></author>
    <category term="湿地"/>
    <category term="China"/>
    <summary>湿地是重要的生态系统。</summary>
    <content type="html">&lt;p&gt;湿地是重要的生态系统，保护生物多样性。&lt;/p&gt;</content>
  </entry>
  <entry>
    <title>Snow leopards counted</title>
    <link href="https://bio.example.net/2024/snow-leopards"/>
    <id>tag:bio.example.net,2024:snow-leopards</id>
    <updated>2024-03-01T04:00:00Z</updated>
    <media:thumbnail url="https://bio.example.net/img/leopard.jpg"/>
    <content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>Camera traps
      counted <em>snow leopards</em>.</p></div></content>
  </entry>
</feed>"""


def make_source(httpserver, site, path="/feed.xml", **options) -> FeedSource:
    settings = FeedSourceSettings(type="feed", name="wire", url=httpserver.url_for(path), **options)
    return FeedSource(settings, site, requests.Session())


def serve(httpserver, body, content_type=RSS, path="/feed.xml", headers=None):
    httpserver.expect_request(path).respond_with_data(
        body, content_type=content_type, headers=headers or {}
    )


def by_key(scan) -> dict:
    return {item.key: item.article for item in scan.changed}


def test_rss_items_become_articles(httpserver, site):
    serve(httpserver, RSS_FEED)
    scan = make_source(httpserver, site).scan({}, {})
    articles = by_key(scan)
    assert list(articles) == ["wire-101", "https://wire.example.com/?p=99"]
    rivers = articles["wire-101"]
    assert rivers.id == "wire:wire-101"
    assert rivers.source == "wire" and rivers.section == "wire"
    assert rivers.title == "Rivers & rain: what’s next for the Koshi"
    assert rivers.url == "https://wire.example.com/2024/03/rivers-and-rain/"  # channel link base
    assert rivers.authors == ("Asha Rai",)
    assert rivers.published == dt.datetime(2024, 3, 1, 3, 45, tzinfo=UTC)
    assert rivers.published.utcoffset() == dt.timedelta(0)
    assert rivers.updated is None
    assert rivers.language == "en-US"
    assert rivers.tags == ("Climate", "Nepal")
    assert rivers.image == "https://cdn.example.com/koshi.jpg"
    assert rivers.image_alt == "The Koshi river at dawn"
    assert rivers.summary == "Monsoon forecasts for the Koshi basin."  # description + content
    assert 'href="https://wire.example.com/koshi"' in rivers.body_html
    assert "script" not in rivers.body_html and "Second paragraph." in rivers.body_html
    lake = articles["https://wire.example.com/?p=99"]
    assert lake.authors == ("Tenzin Norbu",)
    assert lake.image == "https://cdn.example.com/lake.png" and lake.image_alt is None
    assert lake.summary == "Sensors now watch Tsho Rolpa around the clock."
    assert scan.complete is False


def test_bad_entries_are_rejected_and_the_rest_go_on(httpserver, site):
    serve(httpserver, RSS_FEED)
    scan = make_source(httpserver, site).scan({}, {})
    assert len(scan.changed) == 2
    problems = {p.message.split(":")[0]: p for p in scan.rejected}
    assert set(problems) == {"entry wire-98", "entry wire-97"}
    assert "no title" in problems["entry wire-98"].message
    assert "no date" in problems["entry wire-97"].message
    for problem in scan.rejected:
        assert problem.file == httpserver.url_for("/feed.xml") and problem.line is None
        assert problem.hint


def test_atom_entries_languages_and_chinese_titles(httpserver, site):
    serve(httpserver, ATOM_FEED, content_type="application/atom+xml")
    articles = by_key(make_source(httpserver, site, section="biodiversity").scan({}, {}))
    zh = articles["tag:bio.example.net,2024:wetlands-zh"]
    assert zh.title == "中国的生物多样性保护 & 湿地"
    assert zh.language == "zh-CN"
    assert zh.authors == ("李华",)
    assert zh.tags == ("湿地", "China")
    assert zh.section == "biodiversity"
    assert zh.published == dt.datetime(2024, 3, 1, 0, 0, tzinfo=UTC)
    assert zh.updated == dt.datetime(2024, 3, 2, 12, 0, tzinfo=UTC)
    assert zh.summary == "湿地是重要的生态系统。"
    assert zh.body_html == "<p>湿地是重要的生态系统，保护生物多样性。</p>"
    leopards = articles["tag:bio.example.net,2024:snow-leopards"]
    assert leopards.language == "en"
    assert leopards.authors == ("Biodiversity Desk",)  # Atom: the feed's author
    assert leopards.published == dt.datetime(2024, 3, 1, 4, 0, tzinfo=UTC)
    assert leopards.image == "https://bio.example.net/img/leopard.jpg"
    assert "<em>snow leopards</em>" in leopards.body_html
    assert leopards.summary.startswith("Camera traps counted snow leopards")


def test_charset_from_content_type_header(httpserver, site):
    chinese = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>新闻</title><link>https://zh.example.cn/</link>
<language>zh-cn</language>
<item><title>雪豹数量增加</title><link>https://zh.example.cn/a/1</link>
<pubDate>Mon, 04 Mar 2024 02:00:00 GMT</pubDate>
<description>保护区的红外相机记录到雪豹。</description></item>
</channel></rss>"""
    serve(httpserver, chinese.encode("gb18030"), content_type="text/xml; charset=GB18030")
    (item,) = make_source(httpserver, site).scan({}, {}).changed
    assert item.key == "https://zh.example.cn/a/1"
    assert item.article.title == "雪豹数量增加"
    assert item.article.language == "zh-CN"
    assert item.article.summary == "保护区的红外相机记录到雪豹。"


def test_conditional_get_sends_validators_and_304_keeps_everything(httpserver, site):
    validators = {"ETag": '"v1-abc"', "Last-Modified": "Fri, 01 Mar 2024 10:00:00 GMT"}
    serve(httpserver, RSS_FEED, headers=validators)
    source = make_source(httpserver, site)
    first = source.scan({}, {})
    assert first.cursor == {"etag": '"v1-abc"', "last_modified": "Fri, 01 Mar 2024 10:00:00 GMT"}
    assert "If-None-Match" not in httpserver.log[0][0].headers

    httpserver.clear()
    httpserver.expect_request("/feed.xml").respond_with_data("", status=304)
    known = {item.key: item.fingerprint for item in first.changed}
    second = source.scan(known, first.cursor)
    request = httpserver.log[-1][0]
    assert request.headers["If-None-Match"] == '"v1-abc"'
    assert request.headers["If-Modified-Since"] == "Fri, 01 Mar 2024 10:00:00 GMT"
    assert second.changed == [] and second.rejected == []
    assert second.unchanged == known
    assert second.cursor is None  # keep the saved validators
    assert second.complete is False


def test_unchanged_entries_are_skipped_without_building(httpserver, site, monkeypatch):
    serve(httpserver, RSS_FEED)
    source = make_source(httpserver, site)
    first = source.scan({}, {})
    known = {item.key: item.fingerprint for item in first.changed}

    httpserver.clear()
    serve(httpserver, RSS_FEED.replace("Glacier lake monitored", "Glacier lake monitored daily"))
    built = []
    real = feed_module.make_article
    monkeypatch.setattr(
        feed_module, "make_article", lambda *a, **k: built.append(k) or real(*a, **k)
    )
    second = source.scan(known, {})
    assert [item.key for item in second.changed] == ["https://wire.example.com/?p=99"]
    assert second.changed[0].article.title == "Glacier lake monitored daily"
    assert second.changed[0].fingerprint != known["https://wire.example.com/?p=99"]
    assert second.unchanged == {"wire-101": known["wire-101"]}
    assert len(built) == 1
    assert second.cursor == {}  # the server sent no validators: clear any saved ones


def test_feed_with_errors_but_entries_is_used(httpserver, site):
    broken = RSS_FEED.replace("Glacier lake monitored", "Glacier & lake monitored")  # bare &
    serve(httpserver, broken)
    scan = make_source(httpserver, site).scan({}, {})
    titles = sorted(item.article.title for item in scan.changed)
    assert titles == ["Glacier & lake monitored", "Rivers & rain: what’s next for the Koshi"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [("<html><body><p>Login required</p></body></html>", "text/html"), ("{not xml", RSS)],
)
def test_something_not_a_feed_is_unavailable(httpserver, site, body, content_type):
    serve(httpserver, body, content_type=content_type)
    with pytest.raises(SourceUnavailable, match=r"'wire'.*not an RSS or Atom feed"):
        make_source(httpserver, site).scan({}, {})


@pytest.mark.parametrize(("status", "reason"), [(404, "NOT FOUND"), (500, "INTERNAL SERVER ERROR")])
def test_http_errors_are_unavailable(httpserver, site, status, reason):
    httpserver.expect_request("/feed.xml").respond_with_data("nope", status=status)
    with pytest.raises(SourceUnavailable) as caught:
        make_source(httpserver, site).scan({"wire-101": "x"}, {})
    message = str(caught.value)
    assert "'wire'" in message and httpserver.url_for("/feed.xml") in message
    assert f"HTTP {status}" in message and reason in message.upper()


def test_timeout_is_unavailable(httpserver, site):
    def slow(request: Request) -> Response:
        time.sleep(0.3)
        return Response(RSS_FEED, content_type=RSS)

    httpserver.expect_request("/feed.xml").respond_with_handler(slow)
    with pytest.raises(SourceUnavailable, match=r"did not answer within 0\.1 seconds"):
        make_source(httpserver, site, timeout=0.1).scan({}, {})
    deadline = time.monotonic() + 5  # let the server finish, so the next test starts clean
    while not httpserver.log and time.monotonic() < deadline:
        time.sleep(0.05)


def test_unreachable_server_is_unavailable(site):
    settings = FeedSourceSettings(type="feed", name="wire", url="http://127.0.0.1:9/feed.xml")
    with pytest.raises(SourceUnavailable, match=r"'wire'.*cannot read http://127\.0\.0\.1:9/"):
        FeedSource(settings, site, requests.Session()).scan({}, {})


# -- one bad entry or an odd document never stops the scan -----------------------------


def test_an_entry_failing_unexpectedly_is_rejected_and_the_rest_go_on(
    httpserver, site, monkeypatch
):
    serve(httpserver, RSS_FEED)
    real = feed_module._images

    def fragile(entry):
        if entry.get("id") == "wire-101":
            raise KeyError("medium")
        return real(entry)

    monkeypatch.setattr(feed_module, "_images", fragile)
    scan = make_source(httpserver, site).scan({}, {})
    assert [item.key for item in scan.changed] == ["https://wire.example.com/?p=99"]
    messages = {p.message for p in scan.rejected}
    assert "entry wire-101: cannot be read: KeyError: 'medium'" in messages


def test_a_character_reference_to_a_surrogate_does_not_stop_the_feed(httpserver, site):
    """feedparser's lenient parser (for feeds that are not well-formed) raised on these."""
    broken = RSS_FEED.replace("<title>Glacier lake monitored</title>", "<title>Lake &#xD800;")
    serve(httpserver, broken)
    scan = make_source(httpserver, site).scan({}, {})
    assert "wire-101" in {item.key for item in scan.changed}


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_entity_declarations_are_refused_before_parsing(httpserver, site, encoding):
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">'
        + "".join(f'<!ENTITY {chr(98 + n)} "{("&" + chr(97 + n) + ";") * 10}">' for n in range(9))
        + ']><rss version="2.0"><channel><title>&j;</title></channel></rss>'
    )
    serve(httpserver, laughs.encode(encoding), content_type="application/rss+xml")
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="declares XML entities"):
        make_source(httpserver, site).scan({}, {})
    assert time.monotonic() - started < 1


# -- links that may not leave, and IRIs (issue 11, items 4 and 5) ---------------------------

UNSAFE_LINKS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/">
<channel>
  <title>Wire</title>
  <link>https://wire.example.com/</link>
  <description>d</description>
  <item>
    <title>Hostile</title>
    <link>javascript:alert(document.cookie)</link>
    <guid isPermaLink="false">wire-1</guid>
    <pubDate>Fri, 01 Mar 2024 09:30:00 GMT</pubDate>
    <description>&lt;a href="javascript:alert(1)"&gt;x&lt;/a&gt; text</description>
    <media:content url="data:image/svg+xml;base64,PHN2Zz4=" medium="image"/>
    <media:content url="https://cdn.example.com/safe.jpg" medium="image"/>
  </item>
  <item>
    <title>Only a bad image</title>
    <link>https://wire.example.com/2024/03/only/</link>
    <guid isPermaLink="false">wire-2</guid>
    <pubDate>Fri, 01 Mar 2024 09:30:00 GMT</pubDate>
    <description>text</description>
    <enclosure url="javascript:alert(1)" type="image/png" length="1"/>
  </item>
  <item>
    <title>冰川</title>
    <link>https://wire.example.com/新闻/冰川/</link>
    <guid isPermaLink="false">wire-3</guid>
    <pubDate>Fri, 01 Mar 2024 09:30:00 GMT</pubDate>
    <description>text</description>
    <media:content url="https://例子.广告/图/冰川.jpg" medium="image"/>
  </item>
</channel>
</rss>"""


def test_unsafe_upstream_links_are_dropped_and_the_entry_kept(httpserver, site, caplog):
    """As feed readers do: feedparser blanks a javascript: link, readers' sanitisers
    drop such an image; the entry's text still reaches the readers."""
    serve(httpserver, UNSAFE_LINKS)
    with caplog.at_level("WARNING", logger="pipeline.sources.build"):
        scan = make_source(httpserver, site).scan({}, {})
    assert not scan.rejected
    articles = by_key(scan)
    hostile = articles["wire-1"]
    assert hostile.url == "https://news.example.org/wire/hostile/"  # the default, as with no link
    assert hostile.image == "https://cdn.example.com/safe.jpg"  # the next image that is safe
    assert "javascript" not in hostile.body_html
    assert articles["wire-2"].image is None
    assert articles["wire-2"].url == "https://wire.example.com/2024/03/only/"
    warnings = [r.getMessage() for r in caplog.records]
    assert any("entry wire-1: image dropped: 'data:image/svg" in w for w in warnings), warnings
    assert any("entry wire-2: image dropped: 'javascript:" in w for w in warnings), warnings


def test_upstream_iris_become_uris(httpserver, site):
    serve(httpserver, UNSAFE_LINKS)
    article = by_key(make_source(httpserver, site).scan({}, {}))["wire-3"]
    assert article.url == "https://wire.example.com/%E6%96%B0%E9%97%BB/%E5%86%B0%E5%B7%9D/"
    assert article.image == "https://xn--fsqu00a.xn--4rr70v/%E5%9B%BE/%E5%86%B0%E5%B7%9D.jpg"
