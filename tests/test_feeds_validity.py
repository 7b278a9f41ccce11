"""Feed validity: feedparser reads every feed cleanly, and the W3C validator's main rules
(checked by hand, since the validator is an online service) hold for RSS, Atom and JSON."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import feedparser
import pytest
from lxml import etree

from pipeline.feeds import FeedSpec, render_atom, render_json, render_rss
from pipeline.model import Article, Translation

ATOM = "{http://www.w3.org/2005/Atom}"
ZH_TITLE = "2023年国际山岳日:恢复山地生态系统"
RFC822 = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}$"
)
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
ABSOLUTE = re.compile(r"^https?://[^/\s]+")

SPEC = FeedSpec(
    title="山岳新闻",
    description="山岳新闻 — zh-CN",
    language="zh-CN",
    home_url="https://example.org",
    base_url="https://example.org/feeds/language/zh-cn",
    author="Mountain News",
    logo="/logo.png",
)


def article(n: int, **fields) -> Article:
    base = {
        "id": f"news/{n}.md",
        "source": "news",
        "origin": f"news/{n}.md",
        "url": f"https://example.org/news/{n}/",
        "title": f"Article {n}",
        "published": datetime(2023, 12, n, 9, 30, 15, 123456, tzinfo=UTC),
        "language": "zh-CN",
        "section": "news",
        "summary": f"Summary {n}",
        "body_html": f"<p>Body {n}</p>",
        "read_minutes": 1,
        "guid": f"tag:example.org,2023:news/{n}",
    }
    return Article(**(base | fields))


ARTICLES = [
    article(
        3,
        title=ZH_TITLE,
        authors=("王芳", "李雷"),
        tags=("生物多样性", "China"),
        image="images/3.jpg",
        image_alt="玛哈普查雷峰",
        updated=datetime(2023, 12, 20, tzinfo=UTC),
        translations=(
            Translation(id="en/3", language="en", url="/en/news/3/", title="Mountain Day"),
        ),
    ),
    article(2, summary="", body_html=""),
    article(1, guid=""),
]
FEEDS = {"full": ARTICLES, "empty": []}


def urls_in_xml(root: etree._Element) -> list[str]:
    found = []
    for element in root.iter():
        for name in ("href", "url", "uri"):
            if element.get(name) is not None:
                found.append(element.get(name))
        tag = etree.QName(element).localname if isinstance(element.tag, str) else ""
        if tag in ("link", "logo", "icon", "docs", "url") and element.text:
            found.append(element.text)
    return found


@pytest.mark.parametrize("name", FEEDS)
def test_rss_is_valid(name):
    data = render_rss(SPEC, FEEDS[name])
    parsed = feedparser.parse(data)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "rss20"
    channel = etree.fromstring(data).find("channel")
    for required in ("title", "link", "description"):
        assert channel.findtext(required), required
    assert channel.find(f"{ATOM}link[@rel='self']") is not None
    dates = [e.text for e in channel.iter("pubDate", "lastBuildDate")]
    assert dates
    for date in dates:
        assert RFC822.match(date), date
        assert parsedate_to_datetime(date).tzinfo is not None
    for item in channel.iter("item"):
        assert item.findtext("title") and item.findtext("guid") and item.findtext("link")
    urls = urls_in_xml(etree.fromstring(data))
    assert urls and all(ABSOLUTE.match(u) for u in urls), urls
    assert channel.findtext("image/url") == "https://example.org/logo.png"


@pytest.mark.parametrize("name", FEEDS)
def test_atom_is_valid(name):
    data = render_atom(SPEC, FEEDS[name])
    parsed = feedparser.parse(data)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    feed = etree.fromstring(data)
    for required in ("id", "title", "updated", "author/" + ATOM + "name"):
        assert feed.findtext(ATOM + required), required
    for entry in feed.iter(f"{ATOM}entry"):
        for required in ("id", "title", "updated"):
            assert entry.findtext(ATOM + required), required
        # an entry without content needs an alternate link
        assert entry.find(f"{ATOM}link[@rel='alternate']") is not None
        # ids are IRIs
        assert re.match(r"^[a-z][a-z0-9+.-]*:", entry.findtext(f"{ATOM}id"))
    for element in feed.iter(f"{ATOM}updated", f"{ATOM}published"):
        assert RFC3339.match(element.text), element.text
    urls = urls_in_xml(feed)
    assert urls and all(ABSOLUTE.match(u) for u in urls), urls


@pytest.mark.parametrize("name", FEEDS)
def test_json_feed_is_valid(name):
    data = json.loads(render_json(SPEC, FEEDS[name]).decode("utf-8"))
    assert data["version"] == "https://jsonfeed.org/version/1.1"
    assert data["title"] == "山岳新闻"
    assert data["feed_url"] == "https://example.org/feeds/language/zh-cn/feed.json"
    assert data["icon"] == "https://example.org/logo.png"
    for item in data["items"]:
        for key in ("id", "url", "title", "content_html", "date_published"):
            assert isinstance(item[key], str), key
        assert item["id"]
        assert RFC3339.match(item["date_published"])
        assert RFC3339.match(item["date_modified"])
        assert ABSOLUTE.match(item["url"])
        if "image" in item:
            assert ABSOLUTE.match(item["image"])
        for translation in item.get("_translations", {}).get("items", []):
            assert ABSOLUTE.match(translation["url"])
        assert all(key.startswith("_") or key in JSON_ITEM_KEYS for key in item)


JSON_ITEM_KEYS = {
    "id",
    "url",
    "external_url",
    "title",
    "content_html",
    "content_text",
    "summary",
    "image",
    "banner_image",
    "date_published",
    "date_modified",
    "authors",
    "tags",
    "language",
    "attachments",
}


def test_json_is_utf8_compact_and_ends_with_a_newline():
    """Compact (an indent forces Python's slow encoder), indented only when asked."""
    data = render_json(SPEC, ARTICLES)
    assert ZH_TITLE.encode("utf-8") in data  # not \u escapes
    assert data.startswith(b'{"version":"https://jsonfeed.org/version/1.1","title":')
    assert data.count(b"\n") == 1 and data.endswith(b"}\n")
    pretty = render_json(SPEC, ARTICLES, indent=2)
    assert pretty.startswith(b'{\n  "version": ') and pretty.endswith(b"}\n")
    assert json.loads(pretty) == json.loads(data)


@pytest.mark.parametrize("render", [render_rss, render_atom])
def test_chinese_text_round_trips_through_feedparser(render):
    parsed = feedparser.parse(render(SPEC, ARTICLES))
    assert parsed.feed.title == "山岳新闻"
    entry = parsed.entries[0]
    assert entry.title == ZH_TITLE
    assert [a.name for a in entry.authors] == ["王芳", "李雷"]
    assert [t.term for t in entry.tags] == ["生物多样性", "China"]


def test_chinese_text_round_trips_through_json():
    assert json.loads(render_json(SPEC, ARTICLES))["items"][0]["title"] == ZH_TITLE


def test_relative_image_and_translation_urls_are_made_absolute():
    item = json.loads(render_json(SPEC, ARTICLES))["items"][0]
    assert item["image"] == "https://example.org/news/3/images/3.jpg"
    assert item["_translations"]["items"][0]["url"] == "https://example.org/en/news/3/"
