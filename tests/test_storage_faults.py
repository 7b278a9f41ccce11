"""Storage faults end in one clear line (finding 1 of the outside test).

Disk full, read-only stores, a damaged SQLite file, an unreachable database and values
too wide for their columns each used to end in a traceback, some printing the SQL
statement with its parameters (whole rendered emails). Now: one line saying what,
where and what to do, exit status 2 (1 where the rest was done), and the previous feed
files intact. The tests run as root, where chmod stops nothing, so read-only means a
SQLite store opened `?mode=ro` or a PostgreSQL session with read-only transactions, and
a full disk is /dev/full."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import requests

from pipeline.actions import Action, Actions
from pipeline.settings import load_settings
from pipeline.store import Store
from tests.conftest import PEOPLE, free_port, invoke, write_article

# what SQLAlchemy's text carries: the statement, its parameters, the rendered email
SQL_WORDS = ("INSERT INTO", "DELETE FROM", " SET ", "SELECT ", "[SQL", "[parameters", "%(", "?, ?")
SQL_WORDS += ("Traceback", "<html", "<mj-")


def one_error_line(result) -> str:
    """The single line a storage fault prints, checked for what must never appear."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    assert not any(word in result.output for word in SQL_WORDS), result.output
    return lines[0]


def feed_files(root: Path) -> dict[str, bytes]:
    out = root / "public" / "feeds"
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def on_full_disk(real):
    """mkstemp whose files under a feeds folder are /dev/full, where every write fails
    with ENOSPC as on a full disk; other temporary files are untouched."""

    def mkstemp(suffix=None, prefix=None, dir=None, text=False):
        if dir is not None and "feeds" in Path(dir).parts:
            return os.open("/dev/full", os.O_WRONLY), str(Path(dir) / f"{prefix}full{suffix}")
        return real(suffix=suffix, prefix=prefix, dir=dir, text=text)

    return mkstemp


@pytest.fixture
def full_disk(monkeypatch):
    monkeypatch.setattr(tempfile, "mkstemp", on_full_disk(tempfile.mkstemp))


def test_a_full_disk_keeps_the_previous_feeds_and_run_still_posts(project, monkeypatch):
    root = project()
    assert invoke(root, "run").exit_code == 0
    before = feed_files(root)
    write_article(root / "examples" / "site" / "news", "new.md", "title: New\ndate: 2026-11-30")
    monkeypatch.setattr(tempfile, "mkstemp", on_full_disk(tempfile.mkstemp))
    result = invoke(root, "run")
    assert result.exit_code == 1, result.output
    line = one_error_line(result)
    assert "project/public/feeds/rss.xml: no space left on the device" in line
    assert line.startswith("error: cannot write the feed ")
    assert "free some space" in line and "keep their previous version" in line
    assert "archive: 1 posted" in result.output  # posting does not wait for the feeds
    assert feed_files(root) == before  # whole old files, no half-written ones
    assert not list((root / "public").rglob("*.tmp"))
    monkeypatch.undo()
    assert invoke(root, "feeds").exit_code == 0  # space again: the feeds catch up
    assert feed_files(root) != before


def test_the_feeds_command_alone_exits_2(project, full_disk):
    root = project()
    assert invoke(root, "ingest").exit_code == 0
    result = invoke(root, "feeds")
    assert result.exit_code == 2
    assert "no space left on the device" in one_error_line(result)


def test_a_scheduled_cycle_records_the_feed_fault_and_still_posts(project, state_url, full_disk):
    root = project()
    settings = load_settings(root / "config" / "pipeline.yaml")
    store = Store(settings.state, settings.site.url)
    try:
        actions = Actions(settings, store, http=requests.Session, sleep=lambda s: None)
        _, feeds, post = actions.run(Action("cycle"))
    finally:
        store.close()
    (problem,) = feeds.problems
    assert "no space left on the device" in problem and "\n" not in problem
    assert post.counts["posted"] == 13


def test_a_file_where_the_feed_folder_should_be_is_named(project):
    root = project()
    (root / "public" / "feeds").mkdir(parents=True)
    (root / "public" / "feeds" / "tag").write_text("not a folder")
    result = invoke(root, "run")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "public/feeds/tag" in line and "a file stands where a folder should be" in line
    assert "archive: 13 posted" in result.output


def read_only(root: Path, state_url: str) -> None:
    """Point the project at its store opened read-only: SQLite `?mode=ro`, PostgreSQL
    with every transaction read-only (as on a hot standby)."""
    config = root / "config" / "pipeline.yaml"
    text = config.read_text(encoding="utf-8")
    if state_url.startswith("sqlite"):
        ro = 'state: "sqlite:///var/state.db?mode=ro&uri=true"  #'
        text = text.replace("# state: sqlite:///var/state.db", ro)
    else:
        ro = "%20-cdefault_transaction_read_only%3Don&application_name="
        text = text.replace("&application_name=", ro)
    config.write_text(text, encoding="utf-8")


def test_a_read_only_store_is_one_line_without_the_edition_html(project, state_url):
    root = project()
    (root / "people.csv").write_text(PEOPLE, encoding="utf-8")
    assert invoke(root, "ingest").exit_code == 0
    assert invoke(root, "subscribers", "import", str(root / "people.csv")).exit_code == 0
    read_only(root, state_url)
    result = invoke(root, "digest", "send", "weekly-en")
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert line.startswith("error: cannot write to the state store ")
    assert "it is read-only" in line and "write access" in line
    assert not list((root / "var").glob("outbox/*.eml"))
    (root / "more.csv").write_text("email\nnew@example.org\n", encoding="utf-8")
    again = invoke(root, "subscribers", "import", str(root / "more.csv"))
    assert again.exit_code == 2 and "(table subscribers): it is read-only" in one_error_line(again)


def test_posting_to_a_read_only_store_is_one_line(project, state_url):
    root = project()
    assert invoke(root, "ingest").exit_code == 0
    read_only(root, state_url)
    result = invoke(root, "post")
    assert result.exit_code == 2 and "it is read-only" in one_error_line(result)


@pytest.mark.parametrize("state_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "damage, says",
    [(0, "file is not a database"), (8192, "database disk image is malformed")],
    ids=["header", "pages"],
)
def test_a_damaged_sqlite_file_names_the_way_out(project, damage, says):
    root = project()
    assert invoke(root, "run").exit_code == 0
    posted = (root / "var" / "posts.jsonl").read_bytes()
    db = root / "var" / "state.db"
    for extra in db.parent.glob("state.db-*"):
        extra.unlink()
    with db.open("r+b") as handle:
        handle.seek(damage)
        handle.write(os.urandom(60_000))
    result = invoke(root, "run")
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert "state store " in line and "project/var/state.db" in line
    assert "it is damaged" in line and says in line
    assert "restore it from a backup" in line and "pipeline state adopt" in line
    assert (root / "var" / "posts.jsonl").read_bytes() == posted


@pytest.mark.parametrize("state_url", ["sqlite"], indirect=True)
def test_an_unreachable_database_is_one_line_without_its_password(project):
    root = project()
    config = root / "config" / "pipeline.yaml"
    url = f"postgresql+psycopg://news:s3cret-pw@127.0.0.1:{free_port()}/newsroom"
    text = config.read_text(encoding="utf-8").replace("# state: sqlite:///var/state.db", "")
    config.write_text(f"{text}\nstate: {url}\n", encoding="utf-8")
    result = invoke(root, "run")
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert line.startswith("error: cannot open the state store postgresql+psycopg://news:***@")
    assert "it cannot be reached" in line and "Connection refused" in line
    assert "check that the database server is running" in line
    assert "s3cret-pw" not in result.output


def test_values_too_wide_for_their_columns_are_rejected_with_their_file(project):
    """PostgreSQL enforces String(n) and failed the whole source with a traceback;
    SQLite kept the value. Both now reject the one file, by name, and store the rest."""
    root = project()
    news = root / "examples" / "site" / "news"
    write_article(news, "long-section.md", "title: T\ndate: 2026-01-01\nsection: " + "s" * 150)
    write_article(news, "long-tag.md", "title: T\ndate: 2026-01-01\ntags: [" + "t" * 300 + "]")
    # 300 characters fit the id column, but its feed id spells each out as %-escapes
    write_article(news, "long-guid.md", "title: T\ndate: 2026-01-01\nid: " + "山" * 300)
    result = invoke(root, "run")
    assert result.exit_code == 1, result.output
    assert "news: 8 added" in result.output and "archive: 13 posted" in result.output
    rejected = {
        name: line
        for line in result.stderr.splitlines()
        for name in ("long-section.md", "long-tag.md", "long-guid.md")
        if name in line
    }
    assert "150" in rejected["long-section.md"] and "100" in rejected["long-section.md"]
    assert "300" in rejected["long-tag.md"] and "200" in rejected["long-tag.md"]
    assert "guid" in rejected["long-guid.md"] and "1,024" in rejected["long-guid.md"]
    assert "Traceback" not in result.output
