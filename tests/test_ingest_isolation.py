"""One bad item never stops an ingest: it is rejected with its location, everything else
is stored, and only an unreachable state store stops the run."""

from __future__ import annotations

import json

import feedparser
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError
from werkzeug import Request, Response

from pipeline.errors import StoreError
from pipeline.ingest import ingest
from pipeline.model import Scan
from pipeline.sources import markdown as markdown_module
from pipeline.sources.markdown import MarkdownSource, MarkdownSourceSettings
from pipeline.store import Store
from tests.conftest import invoke, write_article
from tests.test_ingest_streaming import blog
from tests.test_source_wordpress import post

GOOD = "title: Good\ndate: 2024-05-01"

# Each of these stopped the whole ingest (finding 1), with the line it must be named at.
BAD_FILES = {
    "feb-30.md": ("title: T\ndate: 2026-02-30", 3),
    "year-0.md": ("title: T\ndate: 0000-01-01", 3),
    "year-99999.md": ('title: T\ndate: "99999-01-01"', 3),
    "overflow.md": ("title: T\ndate: 0001-01-01T00:00:00+05:00", 3),
    "overflow-end.md": ("title: T\ndate: 9999-12-31T23:59:59-05:00", 3),
    "alias.md": ("title: &a [*a]\ndate: 2024-01-01", 2),
    "tab.md": ('title:\t"x"\ndate: 2024-01-01\ntgas: [x]', 2),
}


def feeds(root) -> dict[str, bytes]:
    out = root / "public" / "feeds"
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_bad_files_are_named_and_the_good_ones_stored_and_published(project):
    root = project()
    news = root / "examples" / "site" / "news"
    for name, (front, _) in BAD_FILES.items():
        write_article(news, name, front)
    result = invoke(root, "ingest")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "news: 8 added" in result.output
    assert f"{len(BAD_FILES)} rejected" in result.output
    for name, (_, line) in BAD_FILES.items():
        assert f"{name}:{line}" in result.stderr, (name, result.stderr)
    assert "blog: 5 added" in result.output  # the other source went in too

    run = invoke(root, "run")
    assert run.exit_code == 1 and "Traceback" not in run.output
    assert len(feedparser.parse(feeds(root)["atom.xml"]).entries) == 13


class Exploding:
    """A source whose scan fails in a way nobody foresaw."""

    name = "exploding"

    def scan(self, known, cursor):
        raise KeyError("entries")


def markdown_source(folder, site, name="news") -> MarkdownSource:
    settings = MarkdownSourceSettings(type="markdown", name=name, path=folder)
    return MarkdownSource(settings, site)


def test_a_source_failing_unexpectedly_is_unavailable_and_the_others_go_in(
    tmp_path, site, state_url
):
    write_article(tmp_path, "good.md", GOOD)
    store = Store(state_url, site.url)
    try:
        report = ingest([Exploding(), markdown_source(tmp_path, site)], store)
        assert report.unavailable == {"exploding": "could not be read: KeyError: 'entries'"}
        assert report.stored["news"].added == ["news/good"]
        assert not report.ok
    finally:
        store.close()


def test_any_exception_for_one_file_rejects_that_file_only(tmp_path, site, monkeypatch):
    write_article(tmp_path, "a-good.md", GOOD)
    write_article(tmp_path, "b-bad.md", GOOD)
    write_article(tmp_path, "c-good.md", GOOD)
    real = markdown_module.make_article

    def fragile(site, **fields):
        if fields["origin"].endswith("b-bad.md"):
            raise RuntimeError("renderer fell over\nsecond line")
        return real(site, **fields)

    monkeypatch.setattr(markdown_module, "make_article", fragile)
    scan = markdown_source(tmp_path, site).scan({}, {})
    assert sorted(item.key for item in scan.changed) == ["a-good.md", "c-good.md"]
    (problem,) = scan.rejected
    assert problem.file.endswith("b-bad.md")
    assert problem.message == "cannot be read: RuntimeError: renderer fell over"
    assert scan.held == {"b-bad.md"}  # its published version stays


@pytest.mark.parametrize(
    "error",
    [RecursionError("maximum recursion depth exceeded"), MemoryError(), UnicodeError("x")],
)
def test_front_matter_layer_errors_become_rejections(tmp_path, site, monkeypatch, error):
    write_article(tmp_path, "a.md", GOOD)
    write_article(tmp_path, "b.md", GOOD)
    real = markdown_module.parse_yaml

    def parse(text, file, line_offset=0):
        if file.endswith("b.md"):
            raise error
        return real(text, file, line_offset=line_offset)

    monkeypatch.setattr(markdown_module, "parse_yaml", parse)
    scan = markdown_source(tmp_path, site).scan({}, {})
    assert [item.key for item in scan.changed] == ["a.md"]
    (problem,) = scan.rejected
    assert problem.file.endswith("b.md") and problem.line == 2


def test_unstorable_items_are_rejected_before_the_transaction(tmp_path, site, state_url):
    """A value longer than its column fails the whole transaction on PostgreSQL and is
    silently kept on SQLite; either way it must cost that file only."""
    write_article(tmp_path, "good.md", GOOD)
    write_article(tmp_path, "long-id.md", GOOD + "\nid: " + "x" * 600)
    write_article(tmp_path, "long-tag.md", GOOD + "\ntags: [" + "t" * 300 + "]")
    write_article(tmp_path, "long-section.md", GOOD + "\nsection: " + "s" * 150)
    store = Store(state_url, site.url)
    try:
        report = ingest([markdown_source(tmp_path, site)], store)
        assert report.stored["news"].added == ["news/good"]
        messages = {p.file.rsplit("/", 1)[-1]: p.message for p in report.rejected}
        assert set(messages) == {"long-id.md", "long-tag.md", "long-section.md"}
        # (the model, the store and ingest each check widths; whichever says it first)
        assert "600" in messages["long-id.md"] and "512" in messages["long-id.md"]
        assert "300" in messages["long-tag.md"] and "200" in messages["long-tag.md"]
        assert "150" in messages["long-section.md"] and "100" in messages["long-section.md"]
        assert store.count() == 1
    finally:
        store.close()


def test_wordpress_post_on_two_pages_with_tags_is_stored_once(httpserver, site, state_url):
    """A post edited during the scan pushes the others down a place: the last post of
    page 1 comes again at the top of page 2. With tags, storing it twice in one
    transaction broke the article_tags primary key and lost the whole source."""
    tags = [[{"id": 5, "name": "Nepal", "slug": "nepal", "taxonomy": "post_tag"}]]
    page1 = [post(n, _embedded={"wp:term": tags}) for n in range(300, 200, -1)]
    page2 = [page1[-1]] + [post(n) for n in range(200, 150, -1)]

    def handler(request: Request) -> Response:
        page = [page1, page2][int(request.args["page"]) - 1]
        headers = {"X-WP-TotalPages": "2"}
        return Response(json.dumps(page), content_type="application/json", headers=headers)

    store = Store(state_url, site.url)
    try:
        report = ingest([blog(httpserver, handler, site)], store)
        assert report.ok, (report.unavailable, report.rejected)
        assert len(report.stored["blog"].added) == 150
        assert len(store.latest(200, tag="nepal")) == 100
    finally:
        store.close()


def test_a_key_listed_twice_is_stored_once(tmp_path, site, state_url):
    write_article(tmp_path, "good.md", GOOD + "\ntags: [a, b]")
    once = markdown_source(tmp_path, site).scan({}, {})

    class Twice:
        name = "news"

        def scan(self, known, cursor):
            return Scan(changed=[once.changed[0], once.changed[0]], complete=True)

    store = Store(state_url, site.url)
    try:
        report = ingest([Twice()], store)
        assert report.stored["news"].added == ["news/good"]
        assert "listed it twice" in report.rejected[0].message
    finally:
        store.close()


def test_a_store_refusing_one_source_costs_that_source_only(tmp_path, site, state_url):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_article(tmp_path / "a", "one.md", GOOD)
    write_article(tmp_path / "b", "two.md", GOOD)
    store = Store(state_url, site.url)
    real = store.apply

    def apply(source, scan, now=None):
        if source == "a":
            raise IntegrityError("INSERT …", {}, Exception("duplicate key value"))
        return real(source, scan, now)

    store.apply = apply
    try:
        sources = [markdown_source(tmp_path / n, site, name=n) for n in ("a", "b")]
        report = ingest(sources, store)
        assert report.unavailable["a"].startswith("could not be stored: IntegrityError")
        assert report.stored["b"].added == ["b/two"]
    finally:
        store.close()


def test_an_unreachable_store_stops_the_run(tmp_path, site, state_url):
    write_article(tmp_path, "good.md", GOOD)
    store = Store(state_url, site.url)

    def down(source, conn=None):
        raise OperationalError("SELECT …", {}, Exception("connection refused"))

    store.known = down
    try:
        with pytest.raises(StoreError, match="cannot be used: OperationalError"):
            ingest([markdown_source(tmp_path, site)], store)
    finally:
        store.close()


def test_storable_checks_what_no_model_sees(make_article):
    """The item key and fingerprint come from the source, not the Article: a key too wide
    for its column, a NUL or a lone surrogate would fail the whole transaction."""
    import datetime as dt

    from pipeline.ingest import storable
    from pipeline.model import Item

    good = make_article(id="news/a")
    items = [
        Item("a.md", "1:1", good),
        Item("k" * 1100, "1:1", make_article(id="news/b")),
        Item("c.md", "1:\x00", make_article(id="news/c")),
        Item("d\udcff.md", "1:1", make_article(id="news/d")),
        Item(
            "e.md",
            "1:1",
            make_article(
                id="news/e",
                published=dt.datetime(1, 1, 1, 3, 0, tzinfo=dt.timezone(dt.timedelta(hours=5))),
            ),
        ),
    ]
    scan = storable(Scan(changed=items, complete=True), "https://news.example.org")
    assert [item.key for item in scan.changed] == ["a.md"]
    reasons = [problem.message for problem in scan.rejected]
    assert "item_key is 1,100 characters long" in reasons[0]
    assert "NUL" in reasons[1]
    assert "not valid Unicode" in reasons[2]
    assert "out of range" in reasons[3]
    assert scan.held == {"k" * 1100, "c.md", "d\udcff.md", "e.md"}
