"""The state store, through ingest: idempotence, edits, removals and queries.

Runs on SQLite, and on PostgreSQL too when PIPELINE_TEST_POSTGRES holds a URL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipeline.ingest import ingest
from pipeline.settings import MarkdownSourceSettings
from pipeline.sources.markdown import MarkdownSource
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


def test_source_cursor_round_trips(store):
    from pipeline.sources import Scan

    store.apply("feed", Scan(cursor={"etag": '"abc"'}))
    assert store.cursor("feed") == {"etag": '"abc"'}
    assert store.cursor("other") == {}
