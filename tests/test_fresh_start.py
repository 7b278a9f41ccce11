"""A lost state store never causes a silent fresh start (finding 2 of the outside test).

A deleted, emptied or wrongly named state store used to be created again, empty, and
the next run posted every article inside `max_age_hours` again and re-sent digests.
Now every command refuses such a store while the project's own files show it has
published, until it is restored or `pipeline state adopt` starts over on purpose."""

from __future__ import annotations

from pathlib import Path

import feedparser
import pytest
from sqlalchemy import create_engine

from pipeline.schema import metadata
from tests.conftest import PEOPLE, invoke, write_article


def lose_store(root: Path, state_url: str, how: str = "deleted") -> None:
    """What a lost database looks like: the SQLite file gone or emptied to 0 bytes; on
    PostgreSQL, the tables gone (a new database, or `state:` naming another one)."""
    if state_url.startswith("sqlite"):
        for path in (root / "var").glob("state.db*"):
            path.unlink()
        if how == "emptied":
            (root / "var" / "state.db").write_bytes(b"")
        return
    engine = create_engine(state_url)
    metadata.drop_all(engine)
    engine.dispose()


def posts(root: Path) -> list[str]:
    return (root / "var" / "posts.jsonl").read_text(encoding="utf-8").splitlines()


def feed_bytes(root: Path) -> dict[str, bytes]:
    out = root / "public" / "feeds"
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def published(project):
    """The example after a run and a weekly digest: feeds, posts and outbox exist."""
    root = project()
    assert invoke(root, "run").exit_code == 0
    (root / "people.csv").write_text(PEOPLE, encoding="utf-8")
    assert invoke(root, "subscribers", "import", str(root / "people.csv")).exit_code == 0
    assert invoke(root, "digest", "send", "weekly-en").exit_code == 0
    return root


@pytest.mark.parametrize("how", ["deleted", "emptied"])
def test_a_lost_store_stops_every_command_and_nothing_is_sent_again(project, state_url, how):
    root = published(project)
    sent = sorted((root / "var" / "outbox").glob("*.eml"))
    before_posts, before_feeds = posts(root), feed_bytes(root)
    lose_store(root, state_url, how)
    result = invoke(root, "run")
    assert result.exit_code == 2, result.output
    err = result.stderr
    assert "holds nothing" in err and "published before" in err
    assert "public/feeds list 13 articles" in err and "posts of channel archive" in err
    assert "sent digest emails" in err
    assert "restore the state store from a backup" in err and "`pipeline state adopt`" in err
    assert "Traceback" not in result.output
    for args in (
        ("post",),
        ("ingest",),
        ("feeds",),
        ("digest", "send", "weekly-en"),
        ("history",),
    ):
        refused = invoke(root, *args)
        assert refused.exit_code == 2, (args, refused.output)
        assert "published before" in refused.stderr
    assert posts(root) == before_posts
    assert feed_bytes(root) == before_feeds
    assert sorted((root / "var" / "outbox").glob("*.eml")) == sent


def test_the_posts_file_alone_is_evidence_enough(project, state_url):
    root = project()
    assert invoke(root, "run").exit_code == 0
    lose_store(root, state_url)
    for path in (root / "public").rglob("*.*"):
        path.unlink()  # the feeds went with the server; the channel's record did not
    result = invoke(root, "run")
    assert result.exit_code == 2
    assert "var/posts.jsonl holds the posts of channel archive" in result.stderr


def test_a_new_project_is_not_refused(project):
    """No feed entries, no outbox, no posts yet: nothing to lose, so nothing to check.
    An empty feed written before any article exists is not evidence either."""
    root = project(with_examples=False)
    assert invoke(root, "feeds").exit_code == 0  # empty feeds
    assert invoke(root, "history").exit_code == 0
    write_article(root / "examples" / "site" / "news", "first.md", "title: First\ndate: 2026-01-01")
    result = invoke(root, "run")
    assert result.exit_code == 0, result.output
    assert "archive: 1 posted" in result.output


def test_adopt_starts_over_without_resending_and_keeps_the_feed_ids(project, state_url):
    root = published(project)
    before_posts, before_feeds = posts(root), feed_bytes(root)
    ids_before = [e.id for e in feedparser.parse(before_feeds["atom.xml"]).entries]
    lose_store(root, state_url)
    adopted = invoke(root, "state", "adopt")
    assert adopted.exit_code == 0, adopted.output
    assert "adopted 13 articles" in adopted.output
    assert "archive" in adopted.output and "weekly-en, monthly-zh" in adopted.output
    assert "13 keep the feed ids" in adopted.output
    again = invoke(root, "run")
    assert again.exit_code == 0, again.output
    assert "archive: 0 posted" in again.output
    assert posts(root) == before_posts
    assert feed_bytes(root) == before_feeds  # same ids, so feed readers see nothing new
    digest = invoke(root, "subscribers", "import", str(root / "people.csv"))
    assert digest.exit_code == 0
    skipped = invoke(root, "digest", "send", "weekly-en")
    assert skipped.exit_code == 0 and "edition skipped" in skipped.output
    # from now on, new articles go out as usual
    write_article(root / "examples" / "site" / "news", "new.md", "title: New\ndate: 2026-11-30")
    fresh = invoke(root, "run")
    assert fresh.exit_code == 0 and "archive: 1 posted" in fresh.output
    assert len(posts(root)) == len(before_posts) + 1
    ids_after = [e.id for e in feedparser.parse(feed_bytes(root)["atom.xml"]).entries]
    assert set(ids_before) < set(ids_after)
    next_edition = invoke(root, "digest", "send", "weekly-en", "--dry-run").output
    assert "1 articles" in next_edition and "New" in next_edition


def test_adopt_refuses_a_store_that_was_not_lost(project):
    root = published(project)
    before = posts(root)
    result = invoke(root, "state", "adopt")
    assert result.exit_code == 2
    assert "already holds articles, posts or digests" in result.stderr
    assert "Nothing was changed" in result.stderr
    write_article(root / "examples" / "site" / "news", "new.md", "title: New\ndate: 2026-11-30")
    assert "archive: 1 posted" in invoke(root, "run").output  # not marked by the refusal
    assert len(posts(root)) == len(before) + 1


def test_an_unfinished_adopt_keeps_the_store_refused_until_it_is_run_again(project, state_url):
    root = published(project)
    before = posts(root)
    lose_store(root, state_url)
    blog = root / "examples" / "site" / "blog"
    blog.rename(root / "examples" / "site" / "away")  # a source that cannot be read now
    result = invoke(root, "state", "adopt")
    assert result.exit_code == 2
    assert "blog could not be read" in result.stderr
    refused = invoke(root, "run")  # news is in the store now, yet nothing is posted
    assert refused.exit_code == 2 and "was interrupted" in refused.stderr
    (root / "examples" / "site" / "away").rename(blog)
    assert invoke(root, "state", "adopt").exit_code == 0
    result = invoke(root, "run")
    assert result.exit_code == 0 and "archive: 0 posted" in result.output
    assert posts(root) == before
