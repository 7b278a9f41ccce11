"""The state store, through ingest: idempotence, edits, removals and queries.

Runs on SQLite, and on PostgreSQL too when PIPELINE_TEST_POSTGRES holds a URL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipeline import reading
from pipeline.ingest import ingest
from pipeline.sources.markdown import MarkdownSource, MarkdownSourceSettings
from pipeline.store import Store
from tests.conftest import write_article


@pytest.fixture
def store(store_url, site):
    store = Store(store_url, site.url)
    yield store
    store.close()


def run(folder: Path, site, store: Store, name: str = "news"):
    source = MarkdownSource(MarkdownSourceSettings(type="markdown", name=name, path=folder), site)
    return ingest([source], store).stored[name]


def bump(path: Path) -> None:
    """Make a file look edited even on file systems with coarse timestamps."""
    stat = path.stat()
    import os

    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_second_ingest_adds_nothing(tmp_path, site, store):
    for n in range(3):
        write_article(tmp_path, f"a{n}.md", f"title: A{n}\ndate: 2024-01-0{n + 1}")
    first = run(tmp_path, site, store)
    assert len(first.added) == 3
    second = run(tmp_path, site, store)
    assert (second.added, second.updated, second.removed, second.unchanged) == ([], [], [], 3)
    assert store.count() == 3


def test_edit_updates_in_place_and_keeps_the_permanent_id(tmp_path, site, store):
    path = write_article(tmp_path, "a.md", "title: Old title\ndate: 2024-01-01")
    run(tmp_path, site, store)
    guid = store.latest(1)[0].guid
    assert guid == f"tag:news.example.org,{dt.date.today():%Y-%m-%d}:news/a"
    write_article(tmp_path, "a.md", "title: New title\ndate: 2024-01-01")
    bump(path)
    report = run(tmp_path, site, store)
    assert report.updated == ["news/a"] and not report.added
    (article,) = store.latest(10)
    assert (article.title, article.guid) == ("New title", guid)


def test_touched_but_identical_file_is_unchanged(tmp_path, site, store):
    path = write_article(tmp_path, "a.md", "title: T\ndate: 2024-01-01")
    run(tmp_path, site, store)
    bump(path)
    report = run(tmp_path, site, store)
    assert (report.updated, report.unchanged) == ([], 1)


def test_deleted_and_drafted_articles_leave_and_come_back_with_the_same_id(tmp_path, site, store):
    a = write_article(tmp_path, "a.md", "title: A\ndate: 2024-01-01")
    b = write_article(tmp_path, "b.md", "title: B\ndate: 2024-01-02")
    run(tmp_path, site, store)
    guids = {x.id: x.guid for x in store.latest(10)}
    a.unlink()
    write_article(tmp_path, "b.md", "title: B\ndate: 2024-01-02\ndraft: true")
    bump(b)
    report = run(tmp_path, site, store)
    assert sorted(report.removed) == ["news/a", "news/b"]
    assert store.latest(10) == []
    write_article(tmp_path, "a.md", "title: A\ndate: 2024-01-01")
    assert run(tmp_path, site, store).added == ["news/a"]
    assert store.latest(10)[0].guid == guids["news/a"]


def test_a_broken_edit_keeps_the_published_version(tmp_path, site, store):
    path = write_article(tmp_path, "a.md", "title: Good\ndate: 2024-01-01")
    run(tmp_path, site, store)
    write_article(tmp_path, "a.md", "title: [unclosed\ndate: 2024-01-01")
    bump(path)
    report = run(tmp_path, site, store)
    assert len(report.rejected) == 1 and report.removed == []
    assert [a.title for a in store.latest(10)] == ["Good"]
    # still reported next time, until fixed
    assert len(run(tmp_path, site, store).rejected) == 1


def test_duplicate_id_across_sources_is_rejected_and_the_rest_stored(tmp_path, site, store):
    write_article(tmp_path / "one", "x.md", "title: First\ndate: 2024-01-01\nid: shared")
    write_article(tmp_path / "two", "y.md", "title: Second\ndate: 2024-01-02\nid: shared")
    write_article(tmp_path / "two", "z.md", "title: Other\ndate: 2024-01-03")
    run(tmp_path / "one", site, store, "one")
    report = run(tmp_path / "two", site, store, "two")
    assert report.added == ["two/z"]
    (problem,) = report.rejected
    assert "duplicate id 'shared'" in problem.message and "x.md" in problem.message
    assert {a.title for a in store.latest(10)} == {"First", "Other"}


def test_changing_an_articles_id_replaces_it(tmp_path, site, store):
    path = write_article(tmp_path, "a.md", "title: A\ndate: 2024-01-01")
    run(tmp_path, site, store)
    write_article(tmp_path, "a.md", "title: A\ndate: 2024-01-01\nid: renamed")
    bump(path)
    report = run(tmp_path, site, store)
    assert report.added == ["renamed"] and report.removed == ["news/a"]
    assert [a.id for a in store.latest(10)] == ["renamed"]


def test_latest_filters_orders_and_links_translations(tmp_path, site, store):
    write_article(
        tmp_path, "en.md", "title: Mountain Day\ndate: 2023-12-11\nid: md-en\ntags: [China, Nepal]"
    )
    write_article(
        tmp_path,
        "zh.md",
        "title: 国际山岳日\ndate: 2023-12-11T12:00+08:00\nlanguage: zh-CN\n"
        "translation_of: md-en\ntags: [China]",
    )
    write_article(
        tmp_path, "blog.md", "title: Later\ndate: 2024-05-01\nsection: blog\ntags: [Bhutan]"
    )
    run(tmp_path, site, store)
    # 2023-12-11 00:00 in Kathmandu (site zone) is 8 hours before noon in Shanghai
    assert [a.title for a in store.latest(10)] == ["Later", "国际山岳日", "Mountain Day"]
    assert [a.title for a in store.latest(1)] == ["Later"]
    assert [a.title for a in store.latest(10, language="zh-cn")] == ["国际山岳日"]
    assert [a.title for a in store.latest(10, section="blog")] == ["Later"]
    assert [a.title for a in store.latest(10, tag="china")] == ["国际山岳日", "Mountain Day"]
    by_id = {a.id: a for a in store.latest(10)}
    assert [(t.id, t.language) for t in by_id["md-en"].translations] == [("news/zh", "zh-CN")]
    assert [(t.id, t.language) for t in by_id["news/zh"].translations] == [("md-en", "en")]
    assert by_id["news/blog"].translations == ()


@pytest.mark.parametrize("rare_tag", [0, 1000])
def test_a_tag_feed_is_the_same_read_by_date_or_by_tag(
    tmp_path, site, store, monkeypatch, rare_tag
):
    """A rare tag is read through its own rows, a common one by walking the newest live
    articles (pipeline.reading.RARE_TAG): either way the same articles, in order, in the
    language and section asked, removed ones left out."""
    for n, (date, language, section) in enumerate(
        [
            ("2024-01-03", "en", "news"),
            ("2024-01-01", "zh-CN", "news"),
            ("2024-01-02", "en", "blog"),
        ]
        * 2
    ):
        write_article(
            tmp_path,
            f"{n}.md",
            f"title: T{n}\ndate: {date}T0{n}:00\nlanguage: {language}\nsection: {section}\n"
            f"tags: [{'China' if n != 4 else 'Nepal'}]",
        )
    write_article(tmp_path, "gone.md", "title: Gone\ndate: 2025-01-01\ntags: [China]")
    run(tmp_path, site, store)
    (tmp_path / "gone.md").unlink()
    run(tmp_path, site, store)
    monkeypatch.setattr(reading, "RARE_TAG", rare_tag)
    assert [a.title for a in store.latest(10, tag="china")] == ["T3", "T0", "T5", "T2", "T1"]
    assert [a.title for a in store.latest(2, tag="China")] == ["T3", "T0"]
    assert [a.title for a in store.latest(10, tag="china", language="zh-cn")] == ["T1"]
    assert [a.title for a in store.latest(10, tag="china", section="blog")] == ["T5", "T2"]
    assert store.latest(10, tag="nowhere") == []


def test_source_cursor_round_trips(store):
    from pipeline.model import Scan

    store.apply("feed", Scan(cursor={"etag": '"abc"'}))
    assert store.cursor("feed") == {"etag": '"abc"'}
    assert store.cursor("other") == {}


# -- storage faults: one line, no SQL (finding 1) ------------------------------------------


def test_a_read_only_sqlite_store_reads_and_refuses_writes_in_one_line(tmp_path, site, monkeypatch):
    """`?mode=ro&uri=true` opens the file read-only (a copy for reporting, a restored
    backup); before, the URL's `file:` name was lost and a new empty store was created."""
    from sqlalchemy.exc import SQLAlchemyError

    from pipeline.store import store_fault

    path = tmp_path / "state.db"
    write_article(tmp_path / "news", "a.md", "title: A\ndate: 2024-01-01")
    writable = Store(f"sqlite:///{path}", site.url)
    run(tmp_path / "news", site, writable)
    writable.close()
    monkeypatch.chdir(tmp_path / "news")
    url = f"sqlite:///{path}?mode=ro&uri=true"
    store = Store(url, site.url)
    try:
        assert store.count() == 1
        with pytest.raises(SQLAlchemyError) as caught:
            store.save_value("x", {"secret": "do-not-print"})
    finally:
        store.close()
    message = str(store_fault(caught.value, url))
    assert message.startswith(f"cannot write to the state store {path} (table state_values): ")
    assert "it is read-only (sqlite3: attempt to write a readonly database)" in message
    assert "do-not-print" not in message and "DELETE" not in message and "\n" not in message
    assert list((tmp_path / "news").iterdir()) == [tmp_path / "news" / "a.md"]  # no file: dir


def test_a_full_disk_under_the_store_is_one_line_and_nothing_half_written(tmp_path, site):
    """SQLite says "database or disk is full" (SQLITE_FULL); max_page_count makes the
    file as full as a disk would."""
    from sqlalchemy import event
    from sqlalchemy.exc import SQLAlchemyError

    from pipeline.store import store_fault

    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = Store(url, site.url)
    with store.engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()

    @event.listens_for(store.engine, "connect")
    def full(connection, record):
        connection.execute(f"PRAGMA max_page_count = {pages + 2}")

    store.engine.dispose()
    for n in range(40):
        write_article(tmp_path / "news", f"a{n}.md", "title: A\ndate: 2024-01-01", "x" * 20_000)
    try:
        source = MarkdownSource(
            MarkdownSourceSettings(type="markdown", name="news", path=tmp_path / "news"), site
        )
        with pytest.raises(SQLAlchemyError) as caught:
            store.apply("news", source.scan({}, {}))
        assert store.count() == 0  # the scan is one transaction: none of it was kept
    finally:
        store.close()
    message = str(store_fault(caught.value, url))
    assert "(table articles): its disk is full (sqlite3: database or disk is full)" in message
    assert "free some space, then run again" in message and "xxxx" not in message


def test_a_database_server_refusing_writes_is_named_with_its_reason(state_url, site):
    """On PostgreSQL a read-only session (a hot standby, or default_transaction_read_only)
    refuses with SQLSTATE 25006; the URL is shown without its options."""
    from sqlalchemy.exc import SQLAlchemyError

    from pipeline.store import store_fault

    Store(state_url, site.url).close()  # the tables exist; writing is what is refused
    if state_url.startswith("sqlite"):
        url = state_url + "?mode=ro&uri=true"
    else:
        url = state_url.replace("&", "%20-cdefault_transaction_read_only%3Don&", 1)
    store = Store(url, site.url)
    try:
        with pytest.raises(SQLAlchemyError) as caught:
            store.save_value("x", {})
    finally:
        store.close()
    message = str(store_fault(caught.value, url))
    assert (
        "it is read-only" in message and "options" not in message and "search_path" not in message
    )


def test_a_value_too_wide_for_a_column_is_rejected_by_the_store_itself(store, make_article):
    """Whatever built the Article, the store refuses what PostgreSQL would (failing the
    whole scan) and SQLite would keep: here a feed id longer than its column."""
    from pipeline.model import Item, Scan

    wide = make_article(id="news/" + "山" * 200, guid="", origin="news/wide.md")
    fine = make_article(id="news/fine", guid="")
    report = store.apply(
        "news", Scan(changed=[Item("wide.md", "1", wide), Item("f.md", "1", fine)])
    )
    assert report.added == ["news/fine"]
    (problem,) = report.rejected
    assert problem.file == "news/wide.md" and "its guid is 1," in problem.message
    assert "1,024" in problem.message and "shorter `id:`" in problem.hint


def test_an_article_wider_than_its_columns_cannot_be_built(make_article):
    """A one-line ValueError a source reports against the file, not pydantic's report."""
    with pytest.raises(ValueError) as caught:
        make_article(section="s" * 101)
    assert str(caught.value) == (
        "`section` is 101 characters long; the state store keeps at most 100 — shorten it"
    )
    with pytest.raises(ValueError, match="tag 'tttttttttttttttttttt'… is 201 characters"):
        make_article(tags=("t" * 201,))
