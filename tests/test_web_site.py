"""The public pages of `pipeline serve` (pipeline/web/site.py), called in-process on the
example project after real digests went out through the SMTP server on 127.0.0.1:
`/`, `/feeds/`, `/digests/`, `/digests/NAME/` and its Atom feed, the web version of an
edition, 404s in the reader's language, and conditional GET. Every test runs on SQLite
and, when PIPELINE_TEST_POSTGRES is set, on PostgreSQL (the archive reads the store)."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path

import feedparser
import pytest
from lxml import etree, html
from sqlalchemy import insert

from pipeline.feeds import plan_feeds
from pipeline.ledger import SENT
from pipeline.schema import deliveries, editions
from pipeline.settings import Settings, load_settings
from pipeline.store import Store
from pipeline.web.app import create_app
from tests.conftest import invoke
from tests.rawmail import inbox, split  # noqa: F401  (the inbox that keeps raw bytes)
from tests.test_web_limits import Answer, Outbox, call

ATOM = "{http://www.w3.org/2005/Atom}"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
WHY = "You are receiving this email because"
WEB_FOOTER = "This is the web version of “This week at Mountain News”"
FEED_TYPES = {"application/rss+xml", "application/atom+xml", "application/feed+json"}


@dataclass
class Newsroom:
    root: Path
    settings: Settings
    store: Store
    app: object
    raw: list[bytes]

    def get(self, path: str, query: str = "", **headers: str) -> Answer:
        return call(self.app, "GET", path, query=query.encode(), headers=headers)

    def add(
        self,
        id_: str,
        status: str,
        *,
        subject: str = "Old",
        body: str = "<p>old</p>",
        articles: tuple[str, ...] = (),
        made: dt.datetime | None = None,
    ) -> None:
        """An edition row as the sending code leaves it (naive UTC columns)."""
        name, _, when = id_.partition("@")
        moment = made or dt.datetime.fromisoformat(when).astimezone(dt.UTC)
        naive = moment.replace(tzinfo=None)
        with self.store.engine.begin() as conn:
            conn.execute(
                insert(editions).values(
                    id=id_,
                    digest=name,
                    scheduled_for=naive,
                    status=status,
                    articles=json.dumps(list(articles)),
                    subject=subject,
                    html=body,
                    text=body,
                    detail=None,
                    created_at=naive,
                    finished_at=naive if status == "sent" else None,
                )
            )


@pytest.fixture
def newsroom(mail_project, inbox) -> Newsroom:  # noqa: F811  (rawmail's inbox)
    for name in ("weekly-en", "monthly-zh"):
        assert invoke(mail_project, "digest", "send", name).exit_code == 0
    settings = load_settings(mail_project / "config" / "pipeline.yaml")
    store = Store(settings.state, settings.site.url)
    yield Newsroom(
        mail_project, settings, store, create_app(settings, store, transport=Outbox()), inbox[0].raw
    )
    store.close()


def links(answer: Answer) -> dict[str, str]:
    """Link text → href of a page."""
    page = html.fromstring(answer.body)
    return {" ".join(a.text_content().split()): a.get("href") for a in page.iter("a")}


def autodiscovery(answer: Answer) -> list[tuple[str, str]]:
    page = html.fromstring(answer.body)
    return [(e.get("type"), e.get("href")) for e in page.xpath("//head/link[@rel='alternate']")]


def web_path(url: str) -> str:
    """The path of one of our public URLs (https://news.example.org/…)."""
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


# -- / and /feeds/ --------------------------------------------------------------------------


def test_home_names_the_site_its_digests_and_feeds_with_autodiscovery(newsroom):
    page = newsroom.get("/")
    assert page.status == 200 and '<html lang="en">' in page.text
    assert "<h1>Mountain News</h1>" in page.text
    found = links(page)
    for label, href in found.items():  # every page link of ours answers
        if href.startswith("/") and not href.startswith("/subscribe"):
            assert newsroom.get(href.split("?")[0]).status == 200, (label, href)
    assert '<h3 lang="zh-CN">山地新闻月报</h3>' in page.text and "Language: Chinese" in page.text
    assert 'href="/subscribe?lang=zh-CN"' in page.text and 'href="/subscribe?lang=en"' in page.text
    assert 'href="/digests/monthly-zh/"' in page.text
    subscribe = call(newsroom.app, "GET", "/subscribe", query=b"lang=zh-CN")
    assert '<option value="zh-CN" lang="zh-CN" selected>' in subscribe.text  # preselected
    discovered = autodiscovery(page)
    expected = [
        f"{planned.spec.base_url}/{name}"
        for planned in plan_feeds(newsroom.settings.site, newsroom.settings.feeds)
        for name in ("rss.xml", "atom.xml", "feed.json")
    ]
    assert [href for _, href in discovered] == expected
    assert {kind for kind, _ in discovered} == FEED_TYPES


def test_home_speaks_chinese_from_accept_language_or_lang(newsroom):
    for page in (
        newsroom.get("/", **{"Accept-Language": "zh-CN,zh;q=0.9"}),
        newsroom.get("/", "lang=zh-CN", **{"Accept-Language": "en"}),
    ):
        assert '<html lang="zh-CN">' in page.text
        assert "<h2>邮件摘要</h2>" in page.text and "语言：英语" in page.text
    # a language chosen by ?lang= stays on our links; Accept-Language needs no help
    chosen = newsroom.get("/", "lang=zh-CN")
    assert 'href="/digests/weekly-en/?lang=zh-CN"' in chosen.text
    assert "?lang=" not in links(newsroom.get("/", **{"Accept-Language": "zh-CN"}))["往期摘要"]


def test_the_feeds_page_lists_every_configured_feed_and_format(newsroom, tmp_path):
    page = newsroom.get("/feeds/")
    assert page.status == 200
    for planned in plan_feeds(newsroom.settings.site, newsroom.settings.feeds):
        for name in ("rss.xml", "atom.xml", "feed.json"):
            assert f'<span class="url">{planned.spec.base_url}/{name}</span>' in page.text
    assert "Section: blog" in page.text and "Tag: China" in page.text
    assert "Language: Chinese" in page.text  # the zh-CN feed, by its language's name
    assert "https://news.example.org/digests/weekly-en/feed.atom" in page.text
    chinese = newsroom.get("/feeds/", **{"Accept-Language": "zh"})
    assert "<h1>Mountain News的订阅源</h1>" in chinese.text and "栏目：blog" in chinese.text
    # the feed files themselves are still served below /feeds/
    assert invoke(newsroom.root, "feeds").exit_code == 0
    served = newsroom.get("/feeds/rss.xml")
    assert served.status == 200 and served.headers["content-type"].startswith("application/rss")


# -- the archive ----------------------------------------------------------------------------


def test_the_archive_lists_sent_editions_newest_first_with_their_lead_titles(newsroom):
    index = newsroom.get("/digests/")
    assert index.status == 200
    items = html.fromstring(index.body).xpath("//ul[@class='items']/li")
    assert len(items) == 2  # one edition of each digest
    times = [li.xpath(".//time/@datetime")[0] for li in items]
    assert times == sorted(times, reverse=True)
    weekly = newsroom.get("/digests/weekly-en/")
    (item,) = html.fromstring(weekly.body).xpath("//ul[@class='items']/li")
    leads = [li.text_content() for li in item.xpath(".//ul[@class='leads']/li")]
    assert leads[0] == "Snow Update 2026: Below-normal snow persistence for a fourth year"
    assert len(leads) == 4 and leads[-1] == "and 5 more"  # 3 titles of the 8 it carried
    edition_link = item.xpath(".//h3/a/@href")[0]
    assert re.fullmatch(r"/digests/weekly-en/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+05:45", edition_link)
    assert newsroom.get(edition_link).status == 200
    assert autodiscovery(weekly) == [
        ("application/atom+xml", "https://news.example.org/digests/weekly-en/feed.atom")
    ]
    chinese = newsroom.get("/digests/monthly-zh/", **{"Accept-Language": "zh-CN"})
    assert "<h1>《山地新闻月报》往期</h1>" in chinese.text and "年" in chinese.text


def test_editions_are_paged_twenty_at_a_time(newsroom):
    start = dt.datetime(2025, 1, 6, 3, 15, tzinfo=dt.UTC)
    for week in range(45):
        moment = start + dt.timedelta(weeks=week)
        local = moment.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=45)))
        newsroom.add(f"weekly-en@{local.isoformat(timespec='minutes')}", "sent", made=moment)
    pages = [newsroom.get("/digests/weekly-en/", f"page={n}") for n in (1, 2, 3)]
    counts = [len(html.fromstring(p.body).xpath("//ul[@class='items']/li")) for p in pages]
    assert counts == [20, 20, 6]  # 46: the real edition and the 45 older ones
    assert "Page 1 of 3" in pages[0].text and 'rel="next" href="/digests/weekly-en/?page=2"' in (
        pages[0].text
    )
    assert 'rel="prev" href="/digests/weekly-en/"' in pages[1].text
    assert 'rel="next"' not in pages[2].text
    dates = [t for p in pages for t in html.fromstring(p.body).xpath("//time/@datetime")]
    assert dates == sorted(dates, reverse=True) and len(set(dates)) == 46
    for bad in ("page=4", "page=0", "page=-1", "page=x", "page=99999999"):
        assert newsroom.get("/digests/weekly-en/", bad).status == 404, bad


def test_unsent_editions_never_show(newsroom):
    newsroom.add("weekly-en@2027-01-04T09:00+05:45", "sending", body="<p>DRAFT-NOT-OUT</p>")
    newsroom.add("weekly-en@2027-01-11T09:00+05:45", "skipped", body="<p>SKIPPED-ONE</p>")
    for path in (
        "/digests/weekly-en/2027-01-04T09:00+05:45",
        "/digests/weekly-en/2027-01-11T09:00+05:45",
    ):
        assert newsroom.get(path).status == 404
    everything = [
        newsroom.get(p).text
        for p in ("/digests/", "/digests/weekly-en/", "/digests/weekly-en/feed.atom")
    ]
    assert not any("2027-01-04" in page or "2027-01-11" in page for page in everything)
    # once one recipient has it, its readers can open it; the archive still waits
    now = dt.datetime(2027, 1, 4, 3, 20)
    with newsroom.store.engine.begin() as conn:
        conn.execute(
            insert(deliveries).values(
                stream="mail:weekly-en@2027-01-04T09:00+05:45",
                item="1",
                state=SENT,
                attempts=1,
                created_at=now,
                updated_at=now,
            )
        )
    opened = newsroom.get("/digests/weekly-en/2027-01-04T09:00+05:45")
    assert opened.status == 200 and "DRAFT-NOT-OUT" in opened.text
    assert "2027-01-04" not in newsroom.get("/digests/weekly-en/").text


def test_unknown_digests_and_editions_answer_a_404_page_in_the_readers_language(newsroom):
    for path in (
        "/digests/nope/",
        "/digests/nope/feed.atom",
        "/digests/nope/2026-01-01T09:00+05:45",
        "/digests/weekly-en/2020-01-01T09:00+05:45",
        "/digests/weekly-en/not-a-time",
    ):
        english = newsroom.get(path)
        assert english.status == 404 and "<h1>Page not found</h1>" in english.text, path
        assert english.headers["cache-control"] == "no-cache"  # it may go out any minute
        chinese = newsroom.get(path, **{"Accept-Language": "zh-CN"})
        assert chinese.status == 404 and "<h1>找不到此页面</h1>" in chinese.text, path
        assert links(chinese)["首页"] == "/"


# -- the editions feed ----------------------------------------------------------------------


def test_the_editions_feed_is_valid_atom_built_from_the_data(newsroom):
    newsroom.add("weekly-en@2026-01-05T09:00+05:45", "sent", subject="Old <one> & co")
    newsroom.add("weekly-en@2026-01-12T09:00+05:45", "retrying", subject="Retrying one")
    answer = newsroom.get("/digests/weekly-en/feed.atom")
    assert (
        answer.status == 200
        and answer.headers["content-type"] == "application/atom+xml; charset=utf-8"
    )
    parsed = feedparser.parse(answer.body)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert [e.title.split(" — ")[0] for e in parsed.entries] == [
        "This week at Mountain News",
        "Retrying one",
        "Old <one> & co",
    ]  # newest first, as the archive lists them (feedgen would prepend)
    assert parsed.entries[2].title == "Old <one> & co — 5 January 2026"
    assert (
        parsed.entries[1].link
        == "https://news.example.org/digests/weekly-en/2026-01-12T09:00+05:45"
    )
    feed = etree.fromstring(answer.body)
    # the W3C validator's rules that can be checked here
    for required in ("id", "title", "updated", "author/" + ATOM + "name"):
        assert feed.findtext(ATOM + required), required
    self_link = feed.find(f"{ATOM}link[@rel='self']")
    assert self_link.get("href") == "https://news.example.org/digests/weekly-en/feed.atom"
    for entry in feed.iter(f"{ATOM}entry"):
        for required in ("id", "title", "updated"):
            assert entry.findtext(ATOM + required), required
        assert entry.find(f"{ATOM}link").get("href").startswith("https://news.example.org/")
    for element in feed.iter(f"{ATOM}updated", f"{ATOM}published"):
        assert RFC3339.match(element.text), element.text
    # updated comes from the data, not the clock: the same bytes every time
    newest = max(e.findtext(ATOM + "updated") for e in feed.iter(f"{ATOM}entry"))
    assert feed.findtext(ATOM + "updated") == newest
    assert newsroom.get("/digests/weekly-en/feed.atom").body == answer.body
    content = parsed.entries[0].content[0].value
    assert '<a href="https://news.example.org/news/hkh-snow-update-2026/">' in content


def test_an_empty_digest_has_an_empty_valid_feed(newsroom, mail_project):
    with newsroom.store.engine.begin() as conn:
        conn.execute(editions.delete())
    answer = newsroom.get("/digests/weekly-en/feed.atom")
    parsed = feedparser.parse(answer.body)
    assert parsed.bozo == 0 and parsed.entries == []
    assert parsed.feed.updated == "1970-01-01T00:00:00+00:00"
    assert "No edition has been sent yet." in newsroom.get("/digests/weekly-en/").text


# -- the web version of an edition ---------------------------------------------------------


def test_the_web_version_offers_to_subscribe_and_the_email_keeps_its_footer(newsroom):
    mail = next(
        split(raw) for raw in newsroom.raw if b"pema@example.org" in raw.split(b"\r\n\r\n")[0]
    )
    email_html = mail.parts["text/html"]
    assert WHY in email_html and WEB_FOOTER not in email_html
    assert "token=" in email_html  # its own unsubscribe link
    view = re.search(r'href="(https://news\.example\.org/digests/weekly-en/[^"]+)"', email_html)
    page = newsroom.get(web_path(view.group(1)))
    assert page.status == 200
    assert WHY not in page.text and WEB_FOOTER in page.text
    assert (
        links(page)["Subscribe to receive it by email"]
        == "https://news.example.org/subscribe?lang=en"
    )
    assert "token=" not in page.text and "%%" not in page.text and "Unsubscribe" not in page.text
    chinese = next(
        split(raw) for raw in newsroom.raw if b"li.wen@example.org" in raw.split(b"\r\n\r\n")[0]
    )
    zh_view = re.search(
        r'href="(https://news\.example\.org/digests/monthly-zh/[^"]+)"', chinese.parts["text/html"]
    )
    zh_page = newsroom.get(web_path(zh_view.group(1)))
    assert "这是Mountain News邮件摘要《山地新闻月报》的网页版。" in zh_page.text
    assert links(zh_page)["订阅，通过电子邮件接收"].endswith("/subscribe?lang=zh-CN")


def test_an_edition_stored_before_the_web_footer_gets_the_offer_too(newsroom):
    legacy = (
        "<html><body><p>Old news</p><div>You are receiving this email because you subscribed "
        "to “This week at Mountain News” from Mountain News.</div><div>"
        '<a href="%%UNSUBSCRIBE_URL%%">Unsubscribe</a>%%IF_VIEW_URL%% · '
        '<a href="%%VIEW_URL%%">View</a>%%END%%</div></body></html>'
    )
    newsroom.add("weekly-en@2025-03-03T09:00+05:45", "sent", body=legacy)
    page = newsroom.get("/digests/weekly-en/2025-03-03T09:00+05:45")
    assert WHY not in page.text and WEB_FOOTER in page.text
    assert 'href="https://news.example.org/subscribe?lang=en"' in page.text
    assert "%%" not in page.text


def test_a_preview_leaves_out_the_view_link_that_would_lead_nowhere(newsroom, tmp_path):
    (newsroom.root / "examples" / "site" / "news" / "later.md").write_text(
        "---\ntitle: A later piece\ndate: 2026-12-01\nlanguage: en\n---\nBody.\n", encoding="utf-8"
    )
    assert invoke(newsroom.root, "ingest").exit_code == 0
    result = invoke(newsroom.root, "digest", "preview", "weekly-en", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "a preview leaves out “View in your browser”; sent ones" in result.output
    preview = (tmp_path / "weekly-en.html").read_text(encoding="utf-8")
    assert "A later piece" in preview and "Unsubscribe" in preview
    assert "View in your browser" not in preview and "/digests/" not in preview
    assert "View in your browser" not in (tmp_path / "weekly-en.txt").read_text(encoding="utf-8")


# -- HEAD and conditional GET --------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/", "/feeds/", "/digests/", "/digests/weekly-en/", "/digests/weekly-en/feed.atom", "edition"],
)
def test_pages_answer_head_and_if_none_match(newsroom, path):
    if path == "edition":
        archive = html.fromstring(newsroom.get("/digests/weekly-en/").body)
        path = archive.xpath("//ul[@class='items']//h3/a/@href")[0]
    first = newsroom.get(path)
    tag = first.headers["etag"]
    assert first.status == 200 and re.fullmatch(r'"[0-9a-f]{32}"', tag)
    again = newsroom.get(path, **{"If-None-Match": tag})
    assert again.status == 304 and again.body == b"" and again.headers["etag"] == tag
    assert newsroom.get(path, **{"If-None-Match": f'W/"x", {tag}'}).status == 304
    assert newsroom.get(path, **{"If-None-Match": '"other"'}).status == 200
    head = call(newsroom.app, "HEAD", path)
    assert head.status == 200 and head.headers["etag"] == tag
    assert head.values("x-content-type-options") == ["nosniff"]
    if path != "/digests/weekly-en/feed.atom" and "+" not in path:
        assert first.headers["vary"] == "Accept-Language"
        chinese = newsroom.get(path, **{"Accept-Language": "zh-CN"})
        assert chinese.headers["etag"] != tag  # another language, another representation
