"""The markdown source: front matter, defaults, and every kind of bad input."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from pipeline.sources.markdown import MarkdownSource, MarkdownSourceSettings
from tests.conftest import write_article

GOOD = """
title: "Wetlands: Nature's Lifelines at Risk"
date: 2025-02-02
author: [Pema Gyamtsho, Li Wei]
tags: [Nepal, biodiversity]
"""


def source(folder: Path, site, **options) -> MarkdownSource:
    return MarkdownSource(
        MarkdownSourceSettings(type="markdown", name="news", path=folder, **options), site
    )


def scan(folder: Path, site, known=None, **options):
    return source(folder, site, **options).scan(known or {}, {})


def test_article_from_front_matter_and_markdown(tmp_path, site):
    write_article(
        tmp_path,
        "2025-02-02-wetlands.md",
        GOOD,
        "## Why\n\nWetlands *filter* water & store carbon.\n",
    )
    result = scan(tmp_path, site)
    assert not result.rejected
    (item,) = result.changed
    article = item.article
    assert article.title == "Wetlands: Nature's Lifelines at Risk"
    assert article.authors == ("Pema Gyamtsho", "Li Wei")
    assert article.id == "news/2025-02-02-wetlands"  # from source + path, not title or date
    assert article.url == "https://news.example.org/news/wetlands/"
    assert article.section == "news" and article.language == "en"
    assert article.published == dt.datetime(
        2025, 2, 2, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=45))
    )
    assert "<h2>Why</h2>" in article.body_html and "<em>filter</em>" in article.body_html
    assert article.summary == "Why. Wetlands filter water & store carbon."  # heading, paragraph
    assert article.read_minutes == 1


def test_explicit_keys_override_defaults(tmp_path, site):
    write_article(
        tmp_path,
        "zh.md",
        """
        title: 2023年国际山岳日:恢复山地生态系统
        date: 2023-12-11T10:00:00+08:00
        language: zh-CN
        section: blog
        id: mountain-day-2023-zh
        translation_of: mountain-day-2023-en
        summary: 山地被广泛认为是生物多样性的发源地。
        url: https://news.example.org/zh/mountain-day/
        image: https://news.example.org/media/a.jpg
        image_alt: 山
        """,
    )
    (item,) = scan(tmp_path, site).changed
    a = item.article
    assert (a.id, a.language, a.section, a.translation_of) == (
        "mountain-day-2023-zh",
        "zh-CN",
        "blog",
        "mountain-day-2023-en",
    )
    assert a.url == "https://news.example.org/zh/mountain-day/"
    assert a.summary == "山地被广泛认为是生物多样性的发源地。"
    assert (a.image, a.image_alt) == ("https://news.example.org/media/a.jpg", "山")
    assert a.published.utcoffset() == dt.timedelta(hours=8)


def test_html_files_are_sanitised(tmp_path, site):
    write_article(
        tmp_path, "page.html", GOOD, '<p onclick="x()">Hi <script>alert(1)</script>there</p>'
    )
    (item,) = scan(tmp_path, site).changed
    assert "script" not in item.article.body_html and "onclick" not in item.article.body_html
    assert "Hi" in item.article.body_html


def rejected_one(tmp_path, site, name, front, body="Text.\n", **options):
    """Write a good article and a bad one; the good one must still come through."""
    write_article(tmp_path, "good.md", GOOD)
    bad = write_article(tmp_path, name, front, body) if front is not None else None
    result = scan(tmp_path, site, **options)
    assert [i.key for i in result.changed] == ["good.md"]
    (problem,) = result.rejected
    assert problem.file == str(bad or tmp_path / name)
    return problem


def test_broken_front_matter_names_the_line(tmp_path, site):
    problem = rejected_one(tmp_path, site, "bad.md", 'title: "unclosed\ndate: 2024-01-01')
    assert problem.line in (2, 3, 4)
    assert "YAML syntax error" in problem.message


def test_missing_title(tmp_path, site):
    problem = rejected_one(tmp_path, site, "bad.md", "date: 2024-01-01\nauthor: Someone")
    assert "`title` is required" in problem.message
    assert problem.line == 2  # the first front-matter line


def test_unparseable_date_points_at_the_date_line(tmp_path, site):
    problem = rejected_one(tmp_path, site, "bad.md", "title: T\nauthor: A\ndate: 11/12/2023")
    assert problem.line == 4
    assert "not an ISO 8601 date" in problem.message and "2024-03-01" in problem.message


def test_control_characters_are_located(tmp_path, site):
    problem = rejected_one(
        tmp_path, site, "bad.md", "title: T\ndate: 2024-01-01", "Line one\nBad\x07bell\n"
    )
    assert (problem.line, problem.column) == (6, 4)  # "Bad" then the bell
    assert "U+0007" in problem.message


def test_duplicate_id_is_rejected_once(tmp_path, site):
    write_article(tmp_path, "a.md", "title: A\ndate: 2024-01-01\nid: same")
    write_article(tmp_path, "b.md", "title: B\ndate: 2024-01-02\nid: same")
    result = scan(tmp_path, site)
    assert [i.key for i in result.changed] == ["a.md"]
    (problem,) = result.rejected
    assert problem.file.endswith("b.md") and problem.line == 4
    assert "duplicate id 'same'" in problem.message and "a.md" in problem.message


def test_a_five_megabyte_body_is_rejected_without_reading_it(tmp_path, site):
    problem = rejected_one(
        tmp_path, site, "huge.md", "title: T\ndate: 2024-01-01", "word " * 1_000_000
    )
    assert "5,000,0" in problem.message and "limit is 1,000,000" in problem.message


def test_unknown_key_suggests_the_right_one(tmp_path, site):
    problem = rejected_one(tmp_path, site, "bad.md", "title: T\ndate: 2024-01-01\ntgas: [x]")
    assert problem.line == 4 and "did you mean `tags`?" in problem.hint


def test_missing_front_matter(tmp_path, site):
    (tmp_path / "plain.md").write_text("# Just a heading\n", encoding="utf-8")
    problem = rejected_one(tmp_path, site, "plain.md", None)
    assert problem.line == 1 and "no front matter" in problem.message


def test_not_utf8(tmp_path, site):
    write_article(tmp_path, "good.md", GOOD)
    (tmp_path / "latin1.md").write_bytes(b"---\ntitle: caf\xe9\ndate: 2024-01-01\n---\n")
    (problem,) = scan(tmp_path, site).rejected
    assert problem.line == 2 and "UTF-8" in problem.message


def test_draft_is_left_out(tmp_path, site):
    write_article(tmp_path, "draft.md", "title: T\ndate: 2024-01-01\ndraft: true")
    result = scan(tmp_path, site)
    assert not result.changed and not result.rejected and "draft.md" not in result.unchanged


def test_unchanged_files_are_not_read_again(tmp_path, site):
    path = write_article(tmp_path, "a.md", GOOD)
    first = scan(tmp_path, site)
    known = {i.key: i.fingerprint for i in first.changed}
    # Same size and modification time but unusable content: only a re-read would notice.
    stat = path.stat()
    path.write_bytes(b"x" * stat.st_size)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = scan(tmp_path, site, known=known)
    assert second.changed == [] and second.unchanged == known and not second.rejected
    # ...and a real change is noticed.
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert len(scan(tmp_path, site, known=known).rejected) == 1


def test_missing_folder_makes_the_source_unavailable(tmp_path, site):
    from pipeline.errors import SourceUnavailable

    with pytest.raises(SourceUnavailable, match="does not exist"):
        scan(tmp_path / "nope", site)


def test_titles_are_plain_text_languages_get_bcp47_casing_and_summaries_are_bounded(tmp_path, site):
    long_summary = "A sentence about glaciers. " * 40
    write_article(
        tmp_path,
        "a.md",
        f'title: "Why <script> tags & entities matter"\ndate: 2024-01-01\n'
        f"language: zh_cn\nsummary: {long_summary}",
    )
    (item,) = scan(tmp_path, site).changed
    assert item.article.title == "Why <script> tags & entities matter"
    assert item.article.language == "zh-CN"
    summary = item.article.summary
    assert summary.endswith("…") and len(summary) <= site.excerpt_length
    assert long_summary.startswith(summary.removesuffix("…"))


# -- one bad file never stops the scan (finding 1) --------------------------------------


@pytest.mark.parametrize(
    ("date", "column"),
    [
        ("2026-02-30", 7),  # no such day
        ("0000-01-01", 7),  # year 0
        ('"99999-01-01"', 7),
        ("0001-01-01T00:00:00+05:00", 7),  # overflows when converted to UTC
        ("9999-12-31T23:59:59-05:00", 7),
        ("0001-01-01", 7),  # midnight in Kathmandu is still year 0 in UTC
    ],
)
def test_impossible_and_out_of_range_dates_reject_that_file(tmp_path, site, date, column):
    write_article(tmp_path, "good.md", GOOD)
    write_article(tmp_path, "bad.md", f"title: T\ndate: {date}")
    result = scan(tmp_path, site)
    assert [item.key for item in result.changed] == ["good.md"]
    (problem,) = result.rejected
    assert problem.file.endswith("bad.md") and (problem.line, problem.column) == (3, column)
    assert "date" in problem.message


def test_an_updated_time_out_of_range_is_rejected(tmp_path, site):
    write_article(tmp_path, "a.md", "title: T\ndate: 2024-01-01\nupdated: 9999-12-31T23:00-05:00")
    (problem,) = scan(tmp_path, site).rejected
    assert problem.line == 4 and "out of range" in problem.message


@pytest.mark.parametrize(
    ("front", "line"),
    [
        ("title: &a [*a]\ndate: 2024-01-01", 2),  # a recursive alias
        ('title:\t"x"\ndate: 2024-01-01\ntgas: [x]', 2),  # a tab, and an unknown key too
        ('title:\t"x"\ndate: 2026-02-30', 2),
    ],
)
def test_yaml_the_loader_chokes_on_rejects_that_file(tmp_path, site, front, line):
    write_article(tmp_path, "good.md", GOOD)
    write_article(tmp_path, "bad.md", front)
    result = scan(tmp_path, site)
    assert [item.key for item in result.changed] == ["good.md"]
    (problem,) = result.rejected
    assert problem.file.endswith("bad.md") and problem.line == line


def test_an_impossible_date_the_yaml_layer_raises_on_is_located(tmp_path, site, monkeypatch):
    """Whatever the YAML layer raises for a date it cannot build, the file is rejected at
    the line of that date (a ValueError from the timestamp constructor had no location)."""
    from pipeline.sources import markdown as markdown_module

    def strict(text, file, line_offset=0):
        raise ValueError("day is out of range for month")

    monkeypatch.setattr(markdown_module, "parse_yaml", strict)
    write_article(tmp_path, "bad.md", "title: T\nauthor: Pema\ndate: 2026-02-30")
    (problem,) = scan(tmp_path, site).rejected
    assert (problem.line, problem.column) == (4, 7)
    assert "'2026-02-30' is not a date: day is out of range for month" in problem.message


def test_a_fifo_named_like_an_article_is_rejected_not_read(tmp_path, site):
    write_article(tmp_path, "good.md", GOOD)
    os.mkfifo(tmp_path / "pipe.md")  # reading it would block the run for ever
    result = scan(tmp_path, site)
    assert [item.key for item in result.changed] == ["good.md"]
    (problem,) = result.rejected
    assert problem.file.endswith("pipe.md") and "not a regular file" in problem.message


def test_a_broken_symlink_is_rejected(tmp_path, site):
    write_article(tmp_path, "good.md", GOOD)
    (tmp_path / "gone.md").symlink_to(tmp_path / "nowhere.md")
    result = scan(tmp_path, site)
    assert [item.key for item in result.changed] == ["good.md"]
    (problem,) = result.rejected
    assert problem.file.endswith("gone.md") and "No such file" in problem.message


def test_a_file_name_that_is_not_utf8_is_rejected_printably(tmp_path, site):
    write_article(tmp_path, "good.md", GOOD)
    name = os.fsencode(tmp_path) + b"/caf\xe9.md"
    with open(name, "wb") as handle:
        handle.write(f"---\n{GOOD}\n---\nBody\n".encode())
    result = scan(tmp_path, site)
    assert [item.key for item in result.changed] == ["good.md"]
    (problem,) = result.rejected
    assert "not UTF-8" in problem.message
    str(problem).encode("utf-8")  # printable: no lone surrogate


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_a_folder_that_cannot_be_listed_removes_nothing(tmp_path, site):
    write_article(tmp_path, "good.md", GOOD)
    locked = tmp_path / "locked"
    write_article(locked, "inside.md", GOOD)
    locked.chmod(0)
    try:
        result = scan(tmp_path, site)
    finally:
        locked.chmod(0o755)
    assert result.complete is False  # inside.md was not seen: it must not count as deleted
    assert any("cannot be listed" in p.message for p in result.rejected)


# -- url and image (issue 11, items 4 and 5) ---------------------------------------------


@pytest.mark.parametrize(
    ("front", "where", "message"),
    [
        (
            'url: "javascript:alert(1)"',
            (4, 6),
            "`url`: 'javascript:alert(1)' is a javascript: link",
        ),
        ("url: /news/relative/", (4, 6), "`url`: '/news/relative/' is not an absolute link"),
        ("image: 'data:image/png;base64,AAAA'", (4, 8), "`image`: 'data:image/png;base64,AAAA'"),
        ("image: vbscript:msgbox(1)", (4, 8), "`image`: 'vbscript:msgbox(1)' is a vbscript:"),
    ],
)
def test_an_unsafe_url_or_image_is_rejected_at_its_line(tmp_path, site, front, where, message):
    write_article(tmp_path, "bad.md", f"title: T\ndate: 2025-02-02\n{front}")
    result = scan(tmp_path, site)
    assert not result.changed
    (problem,) = result.rejected
    assert (problem.line, problem.column) == where
    assert problem.message.startswith(message), problem.message
    assert "https://" in problem.hint


def test_a_chinese_file_name_url_and_image_become_uris(tmp_path, site):
    write_article(
        tmp_path,
        "冰川消融.md",
        "title: 冰川\ndate: 2025-02-02\nimage: 图/冰川.jpg",
        "[监测](监测/) ![图](https://例子.广告/图.png)\n",
    )
    write_article(tmp_path, "own.md", "title: T\ndate: 2025-02-02\nurl: https://例子.广告/新闻/")
    result = scan(tmp_path, site)
    assert not result.rejected
    zh, own = (item.article for item in sorted(result.changed, key=lambda i: i.key, reverse=True))
    page = "https://news.example.org/news/%E5%86%B0%E5%B7%9D%E6%B6%88%E8%9E%8D/"
    assert zh.url == page
    assert zh.image == page + "%E5%9B%BE/%E5%86%B0%E5%B7%9D.jpg"
    assert f'href="{page}%E7%9B%91%E6%B5%8B/"' in zh.body_html
    assert 'src="https://xn--fsqu00a.xn--4rr70v/%E5%9B%BE.png"' in zh.body_html
    assert own.url == "https://xn--fsqu00a.xn--4rr70v/%E6%96%B0%E9%97%BB/"


@pytest.mark.parametrize("where", ["root", "above", "inside", "elsewhere"])
def test_paths_shown_from_the_root_resolved_once_are_display_paths(tmp_path, monkeypatch, where):
    """The folder is resolved once per scan; each file's path must still read exactly as
    ``display_path`` shows it, wherever the working directory is, links included."""
    from pipeline.sources.markdown import _shown, _ShownBelow

    real = tmp_path / "real" / "news"
    (real / "2024" / "deep").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    write_article(real / "2024" / "deep", "a.md", "title: A\ndate: 2024-01-01")
    write_article(tmp_path / "elsewhere", "target.md", "title: T\ndate: 2024-01-01")
    (real / "2024" / "linked.md").symlink_to(tmp_path / "elsewhere" / "target.md")
    cwd = {
        "root": real,
        "above": tmp_path,
        "inside": real / "2024",
        "elsewhere": tmp_path / "elsewhere",
    }[where]
    monkeypatch.chdir(cwd)
    for root in (tmp_path / "link" / "news", real, Path(os.path.relpath(real, cwd))):
        shown = _ShownBelow(root)
        for key in ("2024/deep/a.md", "2024/linked.md"):
            path = Path(root, *key.split("/"))
            assert shown(path, key) == _shown(path), (where, root, key)
