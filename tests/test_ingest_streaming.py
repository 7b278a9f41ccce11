"""Streaming ingest: items are written in batches while the source is still being read;
removals and the cursor wait for the whole scan; one refused item costs that item."""

from __future__ import annotations

import json

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError
from werkzeug import Request, Response

from pipeline.errors import SourceUnavailable
from pipeline.ingest import ingest
from pipeline.model import Item, Scan
from pipeline.schema import LIVE, articles
from pipeline.sources import StreamingSource
from pipeline.sources.markdown import MarkdownSource, MarkdownSourceSettings
from pipeline.sources.wordpress import WordPressSource, WordPressSourceSettings
from pipeline.store import Store
from pipeline.storing import BATCH, Streamed, stored_json
from tests.conftest import write_article
from tests.test_source_wordpress import API, post


def blog(httpserver, handler, site) -> WordPressSource:
    """The WordPress source "blog", its API answered by ``handler``."""
    httpserver.expect_request(API).respond_with_handler(handler)
    settings = WordPressSourceSettings(
        type="wordpress", name="blog", url=httpserver.url_for("/").rstrip("/")
    )
    return WordPressSource(settings, site, requests.Session())


def live(store: Store) -> int:
    """Live rows, counted on a connection of its own (what another process would see)."""
    with store.engine.connect() as conn:
        query = select(func.count()).select_from(articles).where(articles.c.status == LIVE)
        return conn.scalar(query) or 0


class Counted:
    """A streaming source of ``count`` articles that notes what the store holds each
    time it is asked for the next one, and may fail after ``fail_after`` items."""

    name = "news"

    def __init__(self, make_article, count: int, fail_after: int | None = None):
        self.make_article, self.count, self.fail_after = make_article, count, fail_after
        self.stored_when_asked: list[int] = []
        self.store: Store | None = None

    def stream(self, known, cursor) -> Streamed:
        scan = Scan(complete=True, cursor={"page": "done"})
        return Streamed(self._items(scan), scan)

    def _items(self, scan: Scan):
        for n in range(self.count):
            if n == self.fail_after:
                raise SourceUnavailable("news: the upstream went away")
            assert self.store is not None
            self.stored_when_asked.append(live(self.store))
            yield Item(f"k{n}", "f1", self.make_article(id=f"news/{n}", source="news"))

    def scan(self, known, cursor) -> Scan:
        streamed = self.stream(known, cursor)
        streamed.scan.changed = list(streamed.items)
        return streamed.scan


def test_markdown_and_wordpress_sources_stream(tmp_path, site):
    markdown = MarkdownSource(
        MarkdownSourceSettings(type="markdown", name="n", path=tmp_path), site
    )
    settings = WordPressSourceSettings(type="wordpress", name="b", url="https://wp.example.org")
    wordpress = WordPressSource(settings, site, requests.Session())
    assert isinstance(markdown, StreamingSource) and isinstance(wordpress, StreamingSource)


def test_items_are_written_in_batches_while_the_source_is_read(state_url, site, make_article):
    source = Counted(make_article, 2 * BATCH + 100)
    store = Store(state_url, site.url)
    source.store = store
    try:
        report = ingest([source], store)
        assert report.ok and len(report.stored["news"].added) == 2 * BATCH + 100
        # the first batch was committed before the source was asked for item BATCH + 1
        assert source.stored_when_asked[BATCH] == BATCH
        assert source.stored_when_asked[2 * BATCH] == 2 * BATCH
        assert max(source.stored_when_asked[:BATCH]) == 0
        assert store.cursor("news") == {"page": "done"}
    finally:
        store.close()


def test_a_source_failing_half_way_keeps_its_batches_and_removes_nothing(
    state_url, site, make_article
):
    store = Store(state_url, site.url)
    try:
        first = Counted(make_article, BATCH + 200)
        first.store = store
        assert ingest([first], store).ok
        store.save_value("source:news", {"page": "old"})
        # The second scan lists fewer items (the rest would be removed) and fails half-way.
        failing = Counted(make_article, BATCH + 50, fail_after=BATCH + 10)
        failing.store = store
        report = ingest([failing], store)
        assert report.unavailable == {"news": "news: the upstream went away"}
        assert report.stored["news"].removed == []
        assert live(store) == BATCH + 200
        assert store.cursor("news") == {"page": "old"}  # the next scan starts over
        # Complete this time: the 150 no longer listed go, exactly once.
        whole = Counted(make_article, BATCH + 50)
        whole.store = store
        report = ingest([whole], store)
        assert report.ok and len(report.stored["news"].removed) == 150
        assert live(store) == BATCH + 50
        assert store.cursor("news") == {"page": "done"}
    finally:
        store.close()


def test_a_batch_the_database_refuses_is_written_item_by_item(state_url, site, make_article):
    """One item the database refuses (whatever the checks before it missed) is rejected
    with its origin; the other items of its batch are stored."""
    store = Store(state_url, site.url)

    @event.listens_for(store.engine, "before_cursor_execute")
    def refuse(conn, cursor, statement, parameters, context, executemany):
        # (parameters are dicts, tuples or one flat list, depending on the driver)
        if statement.startswith("INSERT INTO articles") and "'news/13'" in repr(parameters):
            raise IntegrityError(statement, {}, Exception("refused for the test"))

    source = Counted(make_article, 40)
    source.store = store
    try:
        report = ingest([source], store)
        assert len(report.stored["news"].added) == 39
        (problem,) = report.rejected
        assert "cannot be stored: IntegrityError" in problem.message
        assert problem.file == make_article(id="news/13").origin
        assert live(store) == 39
    finally:
        store.close()


def test_an_edited_id_replaces_the_old_one_in_the_same_batch(tmp_path, state_url, site):
    write_article(tmp_path, "a.md", "title: A\ndate: 2024-05-01\nid: first")
    source = MarkdownSource(MarkdownSourceSettings(type="markdown", name="n", path=tmp_path), site)
    store = Store(state_url, site.url)
    try:
        ingest([source], store)
        write_article(tmp_path, "a.md", "title: A\ndate: 2024-05-01\nid: second")
        report = ingest([source], store).stored["n"]
        assert (report.added, report.removed) == (["second"], ["first"])
        assert store.live_ids() == ["second"]
    finally:
        store.close()


def test_wordpress_page_two_failing_keeps_page_one(httpserver, site, state_url):
    page1 = [post(n) for n in range(300, 200, -1)]

    def handler(request: Request) -> Response:
        if request.args["page"] == "2":
            return Response("down", status=503)
        headers = {"X-WP-TotalPages": "2"}
        return Response(json.dumps(page1), content_type="application/json", headers=headers)

    store = Store(state_url, site.url)
    try:
        report = ingest([blog(httpserver, handler, site)], store)
        assert "blog" in report.unavailable
        assert len(report.stored["blog"].added) == 100 and store.count() == 100
    finally:
        store.close()


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    origin=st.text(),
    title=st.text(min_size=1).filter(str.strip),
    source=st.text(min_size=1, max_size=20).filter(str.strip),
)
def test_the_stored_json_gives_the_articles_own_content_hash(make_article, origin, title, source):
    try:
        article = make_article(origin=origin, title=title, source=source)
    except ValueError:
        return  # the model refuses it (too long, not text): nothing to store
    data, content_hash = stored_json(article)
    assert content_hash == article.content_hash()
    assert data == article.model_dump_json(exclude={"guid", "translations"})


@pytest.mark.parametrize("count", [0, 1, BATCH, BATCH + 1])
def test_a_whole_scan_still_goes_through_apply(state_url, site, make_article, count):
    store = Store(state_url, site.url)
    try:
        items = [Item(f"k{n}", "f", make_article(id=f"news/{n}")) for n in range(count)]
        report = store.apply("news", Scan(changed=items, complete=True))
        assert len(report.added) == count and store.count() == count
    finally:
        store.close()
