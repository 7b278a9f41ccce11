"""What feed readers get as links (issue 11, items 3-5), judged the way they judge them.

* A translated article: feedparser (the last ``alternate``) and SimplePie (the first)
  both open the article itself, and the translation is still there with ``hreflang``.
* Non-ASCII URLs: every link, guid and id is a URI (the W3C validator's "IRI found where
  URL expected"; JSON Feed's ``uri`` format), for a Chinese file name ingested end to end.
* ``javascript:`` and friends: refused at the front-matter line, dropped from bodies.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import feedparser
import pytest
from lxml import etree

from pipeline.feeds import FeedSpec, render_atom, render_json, render_rss
from pipeline.model import Article, Translation
from tests.conftest import invoke, write_article
from tests.test_urls import URI, is_uri

ATOM = "{http://www.w3.org/2005/Atom}"
SPEC = FeedSpec(
    title="Mountain News",
    description="Mountain News",
    language="en",
    home_url="https://news.example.org",
    base_url="https://news.example.org/feeds",
    author="Mountain News",
)
ZH_URL = "https://news.example.org/news/%E5%86%B0%E5%B7%9D%E6%B6%88%E8%9E%8D/"
EN_URL = "https://news.example.org/news/glacier-melt/"


def article(**fields) -> Article:
    base = {
        "id": "news/冰川消融",
        "source": "news",
        "origin": "news/冰川消融.md",
        "url": "https://news.example.org/news/冰川消融/",
        "title": "冰川消融",
        "published": datetime(2025, 2, 2, tzinfo=UTC),
        "language": "zh-CN",
        "section": "news",
        "summary": "冰川正在消融。",
        "body_html": "<p>冰川正在消融。</p>",
        "read_minutes": 1,
        "guid": "tag:news.example.org,2025-02-02:news/%E5%86%B0%E5%B7%9D%E6%B6%88%E8%9E%8D",
    }
    return Article(**(base | fields))


TRANSLATED = article(
    translations=(
        Translation(id="news/glacier-melt", language="en", url=EN_URL, title="Glaciers melt"),
    )
)


# -- item 3: which link a reader opens ---------------------------------------------------------


def simplepie_link(entry: etree._Element) -> str:
    """SimplePie's get_link(): the first atom:link whose rel is alternate (or absent)."""
    return next(
        link.get("href")
        for link in entry.iter(f"{ATOM}link")
        if link.get("rel", "alternate") == "alternate"
    )


def test_both_feedparser_and_simplepie_open_the_article_itself():
    data = render_atom(SPEC, [TRANSLATED])
    entry = feedparser.parse(data).entries[0]
    assert entry.link == ZH_URL  # feedparser: the last alternate
    assert simplepie_link(etree.fromstring(data).find(f"{ATOM}entry")) == ZH_URL
    # The translation stays discoverable: an alternate with its language and title.
    translations = [x for x in entry.links if x.get("hreflang") == "en"]
    assert [(x.rel, x.href, x.type, x.title) for x in translations] == [
        ("alternate", EN_URL, "text/html", "Glaciers melt")
    ]
    # RSS has one link: the article's own.
    assert feedparser.parse(render_rss(SPEC, [TRANSLATED])).entries[0].link == ZH_URL


def test_no_two_alternates_share_type_and_hreflang():
    """RFC 4287 §4.1.1, checked by the W3C validator as DuplicateAtomLink."""
    several = TRANSLATED.model_copy(
        update={
            "translations": (
                *TRANSLATED.translations,
                Translation(id="x", language="ne", url="https://news.example.org/ne/x/", title="x"),
            )
        }
    )
    for entry in etree.fromstring(render_atom(SPEC, [several, article()])).iter(f"{ATOM}entry"):
        alternates = [
            (link.get("type"), link.get("hreflang"))
            for link in entry.iter(f"{ATOM}link")
            if link.get("rel") == "alternate"
        ]
        assert len(alternates) == len(set(alternates)), alternates


def test_an_article_without_translations_has_one_link():
    entry = etree.fromstring(render_atom(SPEC, [article()])).find(f"{ATOM}entry")
    assert [link.get("href") for link in entry.iter(f"{ATOM}link")] == [ZH_URL]


# -- item 4: URIs, never IRIs ------------------------------------------------------------------


def xml_urls(data: bytes) -> list[str]:
    """Every URL the W3C validator checks in RSS or Atom: link/guid/id/url text and
    href/url/src attributes."""
    found = []
    for element in etree.fromstring(data).iter():
        if not isinstance(element.tag, str):
            continue
        found += [element.get(name) for name in ("href", "url", "src") if element.get(name)]
        named = etree.QName(element).localname in ("link", "guid", "id", "url", "logo", "icon")
        if named and element.text and element.text.strip():
            found.append(element.text.strip())
    return found


def json_urls(feed: dict) -> list[str]:
    urls = [feed["home_page_url"], feed["feed_url"], *([feed["icon"]] if "icon" in feed else [])]
    for item in feed["items"]:
        urls += [item["url"], *([item["image"]] if "image" in item else [])]
        urls += [t["url"] for t in item.get("_translations", {}).get("items", [])]
    return urls


def test_iri_fields_become_uris_in_every_format():
    iri = article(
        url="https://例子.广告/新闻/冰川消融/?版=1",
        image="图片/冰川 1.jpg",
        translations=(
            Translation(id="e", language="en", url="https://例子.广告/en/冰川/", title="e"),
        ),
        body_html='<p><a href="https://例子.广告/其他">链接</a></p>',
    )
    assert (
        iri.url
        == "https://xn--fsqu00a.xn--4rr70v/%E6%96%B0%E9%97%BB/%E5%86%B0%E5%B7%9D%E6%B6%88%E8%9E%8D/?%E7%89%88=1"
    )
    assert iri.image == iri.url.split("?")[0] + "%E5%9B%BE%E7%89%87/%E5%86%B0%E5%B7%9D%201.jpg"
    for render in (render_rss, render_atom):
        urls = xml_urls(render(SPEC, [iri]))
        assert iri.url in urls and iri.image in urls
        for url in urls:
            assert url.isascii() and (is_uri(url) or url.startswith("tag:")), url
    feed = json.loads(render_json(SPEC, [iri]))
    for url in json_urls(feed):
        assert URI.match(url), url  # JSON Feed: "url", "image" etc. are format "uri"


@pytest.fixture
def chinese_project(project):
    root = project(with_examples=False)
    news = root / "examples" / "site" / "news"
    write_article(
        news,
        "冰川消融.md",
        """
        title: 冰川消融加速
        date: 2025-02-02
        language: zh-CN
        image: 图片/冰川.jpg
        """,
        "冰川[监测](/zh/监测/)数据显示……\n",
    )
    write_article(
        news,
        "glacier-melt.md",
        """
        title: Glacier melt speeds up
        date: 2025-02-01
        translation_of: news/冰川消融
        """,
    )
    return root


def test_a_chinese_file_name_is_published_as_a_uri(chinese_project):
    root = chinese_project
    result = invoke(root, "ingest")
    assert result.exit_code == 0, result.output
    assert invoke(root, "feeds").exit_code == 0
    out = root / "public" / "feeds"
    image = ZH_URL + "%E5%9B%BE%E7%89%87/%E5%86%B0%E5%B7%9D.jpg"
    for name in ("rss.xml", "atom.xml"):
        data = (out / name).read_bytes()
        for url in xml_urls(data):
            assert url.isascii() and (is_uri(url) or url.startswith("tag:")), (name, url)
        parsed = feedparser.parse(data)
        assert parsed.bozo == 0
        zh = next(e for e in parsed.entries if e.title == "冰川消融加速")
        assert zh.link == ZH_URL and unquote(urlsplit(zh.link).path) == "/news/冰川消融/"
        assert image in xml_urls(data)
        assert 'href="https://news.example.org/zh/%E7%9B%91%E6%B5%8B/"' in zh.content[0].value
    atom = feedparser.parse((out / "atom.xml").read_bytes())
    en = next(e for e in atom.entries if e.title == "Glacier melt speeds up")
    assert en.link == EN_URL
    assert [x.href for x in en.links if x.get("hreflang") == "zh-CN"] == [ZH_URL]
    feed = json.loads((out / "feed.json").read_bytes())
    for url in json_urls(feed):
        assert URI.match(url), url
    assert ZH_URL in json_urls(feed) and image in json_urls(feed)


# -- item 5: javascript: and friends -------------------------------------------------------------


@pytest.mark.parametrize(
    ("front", "line", "scheme"),
    [
        ('url: "javascript:alert(document.cookie)"', 4, "javascript"),
        ("image: data:image/svg+xml;base64,PHN2Zz4=", 4, "data"),
        ('image: " VBScript:msgbox(1)"', 4, "vbscript"),
    ],
)
def test_an_unsafe_front_matter_link_is_a_located_rejection(project, front, line, scheme):
    root = project(with_examples=False)
    news = root / "examples" / "site" / "news"
    write_article(news, "good.md", "title: Good\ndate: 2025-02-01")
    write_article(news, "bad.md", f"title: Bad\ndate: 2025-02-02\n{front}")
    result = invoke(root, "ingest")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"bad.md:{line}:" in result.stderr, result.stderr
    assert f"{scheme}: link" in result.stderr and "https://" in result.stderr
    assert invoke(root, "feeds").exit_code == 0
    data = (root / "public" / "feeds" / "atom.xml").read_bytes()
    assert [e.title for e in feedparser.parse(data).entries] == ["Good"]
    assert scheme.encode() not in data.lower()


def test_unsafe_body_links_are_dropped_with_a_warning(project, caplog):
    root = project(with_examples=False)
    write_article(
        root / "examples" / "site" / "news",
        "links.md",
        "title: Links\ndate: 2025-02-01",
        '<a href="javascript:alert(1)">click</a> <img src="data:image/png;base64,AA" alt="x">'
        ' <a href="mailto:desk@news.example.org">desk</a>\n',
    )
    with caplog.at_level(logging.WARNING):
        assert invoke(root, "ingest").exit_code == 0  # the article is published, minus them
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("links.md: dropped the link 'javascript:alert(1)'" in w for w in warnings)
    assert any("links.md: dropped the image 'data:image/png" in w for w in warnings)
    assert invoke(root, "feeds").exit_code == 0
    for name in ("rss.xml", "atom.xml", "feed.json"):
        data = (root / "public" / "feeds" / name).read_bytes()
        assert b"javascript" not in data and b"data:image" not in data, name
        assert b"mailto:desk@news.example.org" in data


def test_an_iri_stored_by_an_earlier_version_is_published_as_a_uri(state_url, site):
    """Loading runs the same conversion; a stored image no longer allowed is dropped, and
    loading never fails, or one old article would stop every feed and digest."""
    from pipeline.model import Item, Scan
    from pipeline.store import Store

    old = Article.model_construct(  # as an earlier version stored it: no checks
        **(
            article().model_dump()
            | {
                "url": "https://news.example.org/news/冰川消融/",
                "image": "javascript:alert(1)",
                "guid": "",
            }
        )
    )
    store = Store(state_url, site.url)
    try:
        store.apply("news", Scan(changed=[Item("冰川消融.md", "1", old)]))
        (loaded,) = store.latest(10)
    finally:
        store.close()
    assert loaded.url == ZH_URL and loaded.image is None
    assert feedparser.parse(render_atom(SPEC, [loaded])).entries[0].link == ZH_URL


def test_feeds_written_with_iris_still_give_their_ids_back(tmp_path):
    """After a fresh start the published feed ids are matched by URL; feeds written by
    an earlier version list IRIs, the articles now carry URIs."""
    from pipeline.feeds import published_entries
    from pipeline.settings import FeedSettings, SiteSettings

    site = SiteSettings(name="N", url="https://news.example.org")
    feeds = FeedSettings(output=tmp_path, formats=("json",))
    old = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "N",
        "items": [
            {
                "id": "tag:news.example.org,2025-02-02:x",
                "url": "https://news.example.org/news/冰川消融/",
            }
        ],
    }
    (tmp_path / "feed.json").write_text(json.dumps(old, ensure_ascii=False), encoding="utf-8")
    assert published_entries(site, feeds) == {ZH_URL: "tag:news.example.org,2025-02-02:x"}
