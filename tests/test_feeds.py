"""Feeds: what each format contains, permanent ids, reproducible bytes, atomic writes."""

from __future__ import annotations

import html
import json
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from pipeline.feeds import (
    FeedSpec,
    plan_feeds,
    render_atom,
    render_json,
    render_rss,
    write_feeds,
    write_if_changed,
)
from pipeline.model import Article, Translation
from pipeline.settings import ExtraFeedSettings, FeedSettings, SiteSettings

ATOM = "{http://www.w3.org/2005/Atom}"
MEDIA = "{http://search.yahoo.com/mrss/}"
DC = "{http://purl.org/dc/elements/1.1/}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
KATHMANDU = timezone(timedelta(hours=5, minutes=45))
ZH_TITLE = "2023年国际山岳日:恢复山地生态系统"

SITE = SiteSettings(name="Mountain News", url="https://example.org", language="en")
SPEC = FeedSpec(
    title="Mountain News",
    description="Mountain News",
    language="en",
    home_url="https://example.org",
    base_url="https://example.org/feeds",
    author="Mountain News",
)


def make_article(**fields) -> Article:
    defaults = {
        "id": "news/plain.md",
        "source": "news",
        "origin": "news/plain.md",
        "url": "https://example.org/news/plain/",
        "title": "Plain article",
        "published": datetime(2023, 12, 1, 8, 0, tzinfo=UTC),
        "language": "en",
        "section": "news",
        "summary": "A plain summary.",
        "body_html": "<p>Plain body.</p>",
        "read_minutes": 1,
        "guid": "urn:uuid:00000000-0000-4000-8000-000000000001",
    }
    return Article(**(defaults | fields))


ZH = make_article(
    id="news/zh.md",
    url="https://example.org/news/mountain-day-zh/",
    title=ZH_TITLE,
    authors=("王芳",),
    published=datetime(2023, 12, 11, 9, 0, tzinfo=KATHMANDU),
    updated=datetime(2023, 12, 12, 10, 30, tzinfo=KATHMANDU),
    language="zh-CN",
    tags=("China", "生物多样性"),
    summary="山地生态系统为人类提供淡水。",
    body_html="<p>山地生态系统为人类提供淡水。</p>",
    translation_of="news/en.md",
    translations=(
        Translation(
            id="news/en.md",
            language="en",
            url="https://example.org/news/mountain-day/",
            title="International Mountain Day 2023",
        ),
    ),
    guid="urn:uuid:00000000-0000-4000-8000-00000000000a",
)
EN = make_article(
    id="news/en.md",
    url="https://example.org/news/mountain-day/",
    title="International Mountain Day 2023: restoring mountain ecosystems",
    authors=("Ann Lee", "Bo Chen"),
    published=datetime(2023, 12, 11, 3, 0, tzinfo=UTC),
    tags=("biodiversity",),
    summary="Mountains give half of humanity <fresh> water & more.",
    body_html="<p>Mountains give <b>fresh</b> water &amp; more.</p>",
    image="/images/mountain.jpg",
    image_alt="Snow on Machapuchare at dawn",
    translations=(
        Translation(
            id="news/zh.md",
            language="zh-CN",
            url="https://example.org/news/mountain-day-zh/",
            title=ZH_TITLE,
        ),
    ),
    guid="https://example.org/news/mountain-day/",  # a guid that is the url: a permalink
)
BLOG = make_article(
    id="blog/tags.md",
    source="blog",
    url="https://example.org/blog/tags/",
    title="Field notes",
    published=datetime(2023, 12, 5, 12, 0, tzinfo=UTC),
    section="blog",
    tags=("China", "fieldwork"),
    guid="",  # no guid yet: the url stands in
)
ARTICLES = [ZH, EN, BLOG]  # newest first by published


class ListQuery:
    """In-memory ArticleQuery: filters a list the way the store's query does."""

    def __init__(self, articles: list[Article]) -> None:
        self.articles = articles
        self.calls: list[tuple[int, str | None, str | None, str | None]] = []

    def latest(self, limit, *, language=None, section=None, tag=None):
        self.calls.append((limit, language, section, tag))
        found = [
            a
            for a in self.articles
            if (language is None or a.language == language)
            and (section is None or a.section == section)
            and (tag is None or tag in a.tags)
        ]
        return sorted(found, key=lambda a: a.published, reverse=True)[:limit]


def xml(data: bytes) -> etree._Element:
    return etree.fromstring(data)


def rss_item(data: bytes, article: Article) -> etree._Element:
    items = xml(data).findall("channel/item")
    return next(i for i in items if i.findtext("link") == article.url)


def atom_entry(data: bytes, article: Article) -> etree._Element:
    entries = xml(data).findall(f"{ATOM}entry")
    return next(e for e in entries if e.findtext(f"{ATOM}id") == (article.guid or article.url))


def json_item(data: bytes, article: Article) -> dict:
    return next(i for i in json.loads(data)["items"] if i["url"] == article.url)


# --- 1. permanent ids ----------------------------------------------------------------------


def test_ids_are_the_permanent_guid_or_the_url_when_there_is_none():
    rss, atom, feed = (render(SPEC, ARTICLES) for render in (render_rss, render_atom, render_json))
    zh_guid = rss_item(rss, ZH).find("guid")
    assert (zh_guid.text, zh_guid.get("isPermaLink")) == (ZH.guid, "false")
    en_guid = rss_item(rss, EN).find("guid")
    assert (en_guid.text, en_guid.get("isPermaLink")) == (EN.url, "true")
    blog_guid = rss_item(rss, BLOG).find("guid")
    assert (blog_guid.text, blog_guid.get("isPermaLink")) == (BLOG.url, "true")
    assert [e.findtext(f"{ATOM}id") for e in xml(atom).findall(f"{ATOM}entry")] == [
        ZH.guid,
        EN.guid,
        BLOG.url,
    ]
    assert [i["id"] for i in json.loads(feed)["items"]] == [ZH.guid, EN.guid, BLOG.url]


def test_ids_do_not_change_when_the_article_does():
    edited = ZH.model_copy(update={"title": "新标题", "updated": datetime(2024, 1, 1, tzinfo=UTC)})
    assert atom_entry(render_atom(SPEC, [edited]), ZH).findtext(f"{ATOM}id") == ZH.guid
    assert json_item(render_json(SPEC, [edited]), ZH)["id"] == ZH.guid


# --- 2. self links, feed ids and languages ------------------------------------------------


def test_feeds_link_to_themselves_and_declare_their_language():
    channel = xml(render_rss(SPEC, ARTICLES)).find("channel")
    self_link = channel.find(f"{ATOM}link")
    assert self_link.attrib == {
        "href": "https://example.org/feeds/rss.xml",
        "rel": "self",
        "type": "application/rss+xml",
    }
    assert channel.findtext("link") == "https://example.org"
    assert channel.findtext("language") == "en"

    feed = xml(render_atom(SPEC, ARTICLES))
    assert feed.get(XML_LANG) == "en"
    assert feed.findtext(f"{ATOM}id") == "https://example.org/feeds/atom.xml"
    links = {link.get("rel"): link.attrib for link in feed.findall(f"{ATOM}link")}
    assert links["self"]["href"] == "https://example.org/feeds/atom.xml"
    assert links["self"]["type"] == "application/atom+xml"
    assert links["alternate"]["href"] == "https://example.org"
    assert atom_entry(render_atom(SPEC, ARTICLES), ZH).get(XML_LANG) == "zh-CN"

    data = json.loads(render_json(SPEC, ARTICLES))
    assert data["feed_url"] == "https://example.org/feeds/feed.json"
    assert data["home_page_url"] == "https://example.org"
    assert data["language"] == "en"
    assert [i["language"] for i in data["items"]] == ["zh-CN", "en", "en"]


# --- 3. excerpt, content, authors, categories, dates --------------------------------------


def test_rss_items_carry_excerpt_content_authors_tags_and_dates():
    item = rss_item(render_rss(SPEC, ARTICLES), EN)
    # RSS description is HTML: the plain-text excerpt is escaped once more.
    assert html.unescape(item.findtext("description")) == EN.summary
    assert item.findtext(f"{CONTENT}encoded") == EN.body_html
    assert [c.text for c in item.findall(f"{DC}creator")] == ["Ann Lee", "Bo Chen"]
    assert item.find("author") is None  # RSS author must be an email address
    assert [c.text for c in item.findall("category")] == ["biodiversity"]
    assert item.findtext("pubDate") == "Mon, 11 Dec 2023 03:00:00 +0000"
    assert item.findtext(f"{DC}language") == "en"
    channel = xml(render_rss(SPEC, ARTICLES)).find("channel")
    assert channel.findtext("lastBuildDate") == "Tue, 12 Dec 2023 10:30:00 +0545"


def test_atom_entries_carry_excerpt_content_authors_tags_and_dates():
    feed = xml(render_atom(SPEC, ARTICLES))
    assert feed.findtext(f"{ATOM}author/{ATOM}name") == "Mountain News"
    assert feed.findtext(f"{ATOM}updated") == "2023-12-12T10:30:00+05:45"
    entry = atom_entry(render_atom(SPEC, ARTICLES), ZH)
    assert entry.findtext(f"{ATOM}summary") == ZH.summary
    assert entry.find(f"{ATOM}summary").get("type") is None  # text
    content = entry.find(f"{ATOM}content")
    assert (content.get("type"), content.text) == ("html", ZH.body_html)
    assert [a.text for a in entry.findall(f"{ATOM}author/{ATOM}name")] == ["王芳"]
    assert [c.get("term") for c in entry.findall(f"{ATOM}category")] == ["China", "生物多样性"]
    assert entry.findtext(f"{ATOM}published") == "2023-12-11T09:00:00+05:45"
    assert entry.findtext(f"{ATOM}updated") == "2023-12-12T10:30:00+05:45"
    blog = atom_entry(render_atom(SPEC, ARTICLES), BLOG)
    assert blog.findtext(f"{ATOM}updated") == "2023-12-05T12:00:00+00:00"  # = published


def test_json_items_carry_excerpt_content_authors_tags_and_dates():
    item = json_item(render_json(SPEC, ARTICLES), EN)
    assert item["summary"] == EN.summary
    assert item["content_html"] == EN.body_html
    assert item["authors"] == [{"name": "Ann Lee"}, {"name": "Bo Chen"}]
    assert item["tags"] == ["biodiversity"]
    assert item["date_published"] == "2023-12-11T03:00:00+00:00"
    assert item["date_modified"] == "2023-12-11T03:00:00+00:00"
    assert json_item(render_json(SPEC, ARTICLES), ZH)["date_modified"] == (
        "2023-12-12T10:30:00+05:45"
    )
    assert "authors" not in json_item(render_json(SPEC, ARTICLES), BLOG)


def test_feedparser_reads_back_the_entry_fields():
    for data in (render_rss(SPEC, ARTICLES), render_atom(SPEC, ARTICLES)):
        entry = feedparser.parse(data).entries[1]
        assert entry.title == EN.title
        assert html.unescape(entry.summary) == EN.summary
        assert entry.content[0].value == EN.body_html
        assert [a.name for a in entry.authors] == ["Ann Lee", "Bo Chen"]
        assert [t.term for t in entry.tags] == ["biodiversity"]
        assert datetime(*entry.published_parsed[:6], tzinfo=UTC) == EN.published


# --- 4. lead image ---------------------------------------------------------------------------


def test_lead_image_as_media_rss_and_json_image():
    image = "https://example.org/images/mountain.jpg"  # the relative URL made absolute
    for data in (render_rss(SPEC, ARTICLES), render_atom(SPEC, ARTICLES)):
        root = xml(data)
        entry = rss_item(data, EN) if root.tag == "rss" else atom_entry(data, EN)
        content = entry.find(f"{MEDIA}content")
        assert (content.get("url"), content.get("medium")) == (image, "image")
        # No media:description: feedparser files it as the entry's summary_detail.
        assert content.find(f"{MEDIA}description") is None
        assert content.findtext(f"{MEDIA}title") == EN.image_alt
        assert entry.find(f"{MEDIA}thumbnail").get("url") == image
        parsed = feedparser.parse(data).entries[1]
        assert parsed.media_content[0]["url"] == image
        assert parsed.media_thumbnail[0]["url"] == image
        # media:title/description must not be taken for the entry's own title/summary
        assert (parsed.title, html.unescape(parsed.summary)) == (EN.title, EN.summary)
        assert html.unescape(parsed.summary_detail.value) == EN.summary
    assert json_item(render_json(SPEC, ARTICLES), EN)["image"] == image
    assert "image" not in json_item(render_json(SPEC, ARTICLES), ZH)
    assert rss_item(render_rss(SPEC, ARTICLES), ZH).find(f"{MEDIA}content") is None


# --- 5. translations and feedgen issue 135 -------------------------------------------------


def test_atom_entry_links_keep_rel_type_hreflang_and_list_translations():
    entry = atom_entry(render_atom(SPEC, ARTICLES), ZH)
    assert [link.attrib for link in entry.findall(f"{ATOM}link")] == [
        {
            "href": ZH.url,
            "rel": "alternate",
            "type": "text/html",
            "hreflang": "zh-CN",
        },
        {
            "href": EN.url,
            "rel": "alternate",
            "type": "text/html",
            "hreflang": "en",
            "title": "International Mountain Day 2023",
        },
        # once more last, without hreflang: feedparser takes the last alternate
        {"href": ZH.url, "rel": "alternate", "type": "text/html"},
    ]
    links = feedparser.parse(render_atom(SPEC, ARTICLES)).entries[0].links
    assert [(x.rel, x.get("hreflang"), x.href) for x in links] == [
        ("alternate", "zh-CN", ZH.url),
        ("alternate", "en", EN.url),
        ("alternate", None, ZH.url),
    ]
    # RSS has room for one link: the article's own.
    assert rss_item(render_rss(SPEC, ARTICLES), ZH).findtext("link") == ZH.url


def test_translation_links_skip_own_language_and_repeats():
    article = ZH.model_copy(
        update={
            "translations": (
                *ZH.translations,
                Translation(id="x", language="EN", url="https://example.org/x/", title="x"),
                Translation(id="y", language="zh-CN", url="https://example.org/y/", title="y"),
            )
        }
    )
    entry = atom_entry(render_atom(SPEC, [article]), ZH)
    hreflangs = [link.get("hreflang") for link in entry.findall(f"{ATOM}link")]
    assert hreflangs == ["zh-CN", "en", None]
    assert json_item(render_json(SPEC, [article]), ZH)["_translations"]["items"] == [
        {"language": "en", "url": EN.url, "title": "International Mountain Day 2023"}
    ]


def test_json_translations_extension():
    assert json_item(render_json(SPEC, ARTICLES), EN)["_translations"] == {
        "items": [{"language": "zh-CN", "url": ZH.url, "title": ZH_TITLE}]
    }
    assert "_translations" not in json_item(render_json(SPEC, ARTICLES), BLOG)


# --- 6. reproducible bytes -------------------------------------------------------------------


@pytest.mark.parametrize("render", [render_rss, render_atom, render_json])
def test_same_input_gives_identical_bytes(render):
    assert render(SPEC, ARTICLES) == render(SPEC, list(ARTICLES))
    assert render(SPEC, []) == render(SPEC, [])


def test_entries_stay_newest_first():
    assert [i.findtext("link") for i in xml(render_rss(SPEC, ARTICLES)).iter("item")] == [
        a.url for a in ARTICLES
    ]
    entries = xml(render_atom(SPEC, ARTICLES)).findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}id") for e in entries] == [ZH.guid, EN.guid, BLOG.url]


def test_empty_feed_is_dated_at_the_epoch():
    feed = xml(render_atom(SPEC, []))
    assert feed.findtext(f"{ATOM}updated") == "1970-01-01T00:00:00+00:00"
    channel = xml(render_rss(SPEC, [])).find("channel")
    assert channel.findtext("lastBuildDate") == "Thu, 01 Jan 1970 00:00:00 +0000"
    assert json.loads(render_json(SPEC, []))["items"] == []


# --- 7. atomic writes ------------------------------------------------------------------------


def feed_settings(tmp_path: Path, **fields) -> FeedSettings:
    return FeedSettings(output=tmp_path / "public" / "feeds", **fields)


def test_second_write_leaves_files_untouched(tmp_path):
    feeds = feed_settings(tmp_path)
    first = write_feeds(ListQuery(ARTICLES), SITE, feeds)
    out = feeds.output
    assert first.written == [out / "rss.xml", out / "atom.xml", out / "feed.json"]
    assert first.unchanged == []
    for path in first.written:
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    second = write_feeds(ListQuery(ARTICLES), SITE, feeds)
    assert (second.written, second.unchanged) == ([], first.written)
    assert all(p.stat().st_mtime_ns == 1_000_000_000 for p in first.written)
    assert sorted(p.name for p in out.iterdir()) == ["atom.xml", "feed.json", "rss.xml"]


def test_only_changed_feeds_are_rewritten(tmp_path):
    feeds = feed_settings(tmp_path, extra=(ExtraFeedSettings(section="blog"),))
    write_feeds(ListQuery(ARTICLES), SITE, feeds)
    edited = ZH.model_copy(update={"title": "新标题", "updated": datetime(2024, 1, 1, tzinfo=UTC)})
    report = write_feeds(ListQuery([edited, EN, BLOG]), SITE, feeds)
    out = feeds.output
    assert report.written == [out / "rss.xml", out / "atom.xml", out / "feed.json"]
    assert report.unchanged == [
        out / "section/blog" / n for n in ("rss.xml", "atom.xml", "feed.json")
    ]
    assert "新标题" in (out / "feed.json").read_text(encoding="utf-8")


def test_write_if_changed_replaces_atomically_and_keeps_permissions(tmp_path):
    path = tmp_path / "a" / "b" / "rss.xml"
    assert write_if_changed(path, b"one") is True  # folders created
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o640)
    inode = path.stat().st_ino
    assert write_if_changed(path, b"two") is True
    assert path.read_bytes() == b"two"
    assert path.stat().st_ino != inode  # a new file renamed over the old one
    assert path.stat().st_mode & 0o777 == 0o640
    assert write_if_changed(path, b"two") is False
    assert [p.name for p in path.parent.iterdir()] == ["rss.xml"]  # no temp files left


# --- 10. extra feeds -------------------------------------------------------------------------


def test_extra_feeds_are_filtered_by_the_query(tmp_path):
    feeds = feed_settings(
        tmp_path,
        items=2,
        formats=("rss", "json"),
        extra=(
            ExtraFeedSettings(language="zh-CN"),
            ExtraFeedSettings(tag="China", title="China coverage"),
            ExtraFeedSettings(section="news", language="en"),
        ),
    )
    query = ListQuery(ARTICLES)
    report = write_feeds(query, SITE, feeds)
    assert query.calls == [
        (2, None, None, None),
        (2, "zh-CN", None, None),
        (2, None, None, "China"),
        (2, "en", "news", None),
    ]
    out = feeds.output
    assert report.written == [
        out / "rss.xml",
        out / "feed.json",
        out / "language/zh-cn/rss.xml",
        out / "language/zh-cn/feed.json",
        out / "tag/china/rss.xml",
        out / "tag/china/feed.json",
        out / "language/en/section/news/rss.xml",
        out / "language/en/section/news/feed.json",
    ]
    assert not (out / "atom.xml").exists()

    zh = json.loads((out / "language/zh-cn/feed.json").read_bytes())
    assert zh["title"] == "Mountain News — zh-CN"
    assert zh["language"] == "zh-CN"
    assert zh["feed_url"] == "https://example.org/feeds/language/zh-cn/feed.json"
    assert [i["id"] for i in zh["items"]] == [ZH.guid]

    china = json.loads((out / "tag/china/feed.json").read_bytes())
    assert (china["title"], china["language"]) == ("China coverage", "en")
    assert [i["id"] for i in china["items"]] == [ZH.guid, BLOG.url]

    news = feedparser.parse((out / "language/en/section/news/rss.xml").read_bytes())
    assert news.feed.title == "Mountain News — en, news"
    assert [e.id for e in news.entries] == [EN.guid]
    main = json.loads((out / "feed.json").read_bytes())
    assert [i["id"] for i in main["items"]] == [ZH.guid, EN.guid]  # items=2


def test_feed_folder_url_setting_and_non_ascii_slugs(tmp_path):
    feeds = feed_settings(
        tmp_path, url="https://cdn.example.net/f/", extra=(ExtraFeedSettings(tag="生物多样性"),)
    )
    main, extra = plan_feeds(SITE, feeds)
    assert main.spec.url("atom") == "https://cdn.example.net/f/atom.xml"
    assert extra.folder == feeds.output / "tag" / "生物多样性"
    assert extra.spec.url("rss") == (
        "https://cdn.example.net/f/tag/%E7%94%9F%E7%89%A9%E5%A4%9A%E6%A0%B7%E6%80%A7/rss.xml"
    )
    assert extra.spec.home_url == "https://example.org"


def test_extra_feeds_sharing_a_folder_are_refused_by_the_settings(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="tag/china"):
        feed_settings(
            tmp_path, extra=(ExtraFeedSettings(tag="China"), ExtraFeedSettings(tag="china"))
        )
    with pytest.raises(ValidationError, match="at least one letter or digit"):
        ExtraFeedSettings(tag="!!!")


# --- 8. text feedgen would refuse -----------------------------------------------------------


def test_control_characters_are_dropped_not_fatal():
    article = make_article(
        title="Bell\x07 and\x0b tab\tok", summary="x\x00y", authors=("A\x1b",), tags=("t\x01",)
    )
    for render in (render_rss, render_atom):
        parsed = feedparser.parse(render(SPEC, [article]))
        assert parsed.bozo == 0
        assert parsed.entries[0].title == "Bell and tab\tok"
    assert json_item(render_json(SPEC, [article]), article)["summary"] == "xy"


# --- 11. storage faults and starting over -----------------------------------------------------


def test_a_fault_while_writing_names_the_file_and_keeps_what_was_there(tmp_path, monkeypatch):
    """A full disk raised OSError out of the command (a traceback); now a StorageError
    of one line, and every file is still whole: the old version or the new one."""
    from pipeline.errors import StorageError

    feeds = feed_settings(tmp_path)
    write_feeds(ListQuery([EN]), SITE, feeds)
    before = {p.name: p.read_bytes() for p in feeds.output.iterdir()}

    def full(fd, *args, **kwargs):
        os.close(fd)
        return open("/dev/full", "wb")  # closed by the caller's `with`

    monkeypatch.setattr(os, "fdopen", full)
    with pytest.raises(StorageError) as caught:
        write_feeds(ListQuery(ARTICLES), SITE, feeds)
    message = str(caught.value)
    assert message.startswith(f"cannot write the feed {feeds.output / 'rss.xml'}: ")
    assert "no space left on the device — free some space" in message and "\n" not in message
    assert {p.name: p.read_bytes() for p in feeds.output.iterdir()} == before  # no .tmp


def test_a_file_where_a_feed_folder_should_be_is_named(tmp_path):
    from pipeline.errors import StorageError

    feeds = feed_settings(tmp_path, extra=(ExtraFeedSettings(section="blog"),))
    feeds.output.mkdir(parents=True)
    (feeds.output / "section").write_text("in the way")
    with pytest.raises(StorageError) as caught:
        write_feeds(ListQuery(ARTICLES), SITE, feeds)
    blocker = feeds.output / "section"
    assert f"the feeds into {blocker}: a file stands where a folder should be" in str(caught.value)
    assert (feeds.output / "rss.xml").exists()  # the main feed went out before it


def test_published_entries_reads_every_format_back(tmp_path):
    """What the feeds on disk list: evidence that the project published, and the feed
    ids to give articles back when the state store starts over."""
    from pipeline.feeds import published_entries

    feeds = feed_settings(tmp_path, extra=(ExtraFeedSettings(section="blog"),))
    assert published_entries(SITE, feeds) == {}
    write_feeds(ListQuery(ARTICLES), SITE, feeds)
    expected = {a.url: a.guid or a.url for a in ARTICLES}
    assert published_entries(SITE, feeds) == expected
    for name in ("feed.json", "atom.xml"):  # any one format is enough
        (feeds.output / name).unlink()
        (feeds.output / "section" / "blog" / name).unlink()
    (feeds.output / "rss.xml").write_text("<rss><channel><item><link>x", encoding="utf-8")
    assert published_entries(SITE, feeds) == {
        a.url: a.guid or a.url for a in ARTICLES if a.section == "blog"
    }
