"""A real `pipeline ingest` of a few thousand Markdown files, killed with SIGKILL once
some of its batches are committed, then run again: every article is stored exactly once,
nothing that still exists was removed by the killed run, and what was deleted goes only
once a complete scan saw it gone. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from sqlalchemy import create_engine, func, select

from pipeline.schema import LIVE, articles, state_values
from pipeline.storing import BATCH
from tests.conftest import invoke, write_article

KEPT, DELETED, NEW = 80, 20, 4000


def start_ingest(root):
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "ingest"],
        cwd=root,
        env={**os.environ, "NO_COLOR": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_killed_ingest_resumes_without_duplicates_or_wrong_removals(project, state_url):
    root = project(with_examples=False)
    news = root / "examples" / "site" / "news"
    for n in range(KEPT + DELETED):
        write_article(news, f"old-{n:03}.md", f"title: Old {n}\ndate: 2024-01-01")
    first = invoke(root, "ingest")
    assert "news: 100 added" in first.output, first.output
    for n in range(KEPT, KEPT + DELETED):
        (news / f"old-{n:03}.md").unlink()
    for n in range(NEW):
        write_article(news, f"{n // 500}/new-{n:05}.md", f"title: New {n}\ndate: 2024-02-01")

    url = f"sqlite:///{root / 'var' / 'state.db'}" if state_url.startswith("sqlite") else state_url
    engine = create_engine(url)

    def rows(live_only: bool = True) -> int:
        query = select(func.count()).select_from(articles).where(articles.c.source == "news")
        with engine.connect() as conn:
            return conn.scalar(query.where(articles.c.status == LIVE) if live_only else query) or 0

    try:
        process = start_ingest(root)
        deadline = time.monotonic() + 120  # only so that a hang fails instead of waiting
        # Killed once at least two batches are in, well before the last one.
        while rows() < KEPT + DELETED + 2 * BATCH and process.poll() is None:
            assert time.monotonic() < deadline, "the ingest committed no batch"
            time.sleep(0.005)
        assert process.poll() is None, "the ingest finished before it could be killed"
        process.kill()  # SIGKILL: no cleanup, no finally, nothing flushed
        process.communicate(timeout=30)
        committed = rows() - KEPT - DELETED
        assert 2 * BATCH <= committed < NEW and committed % BATCH == 0
        # The killed scan never finished, so the deleted files' articles are still there.
        assert rows() == rows(live_only=False) == KEPT + DELETED + committed
        with engine.connect() as conn:
            cursors = conn.scalars(
                select(state_values.c.name).where(state_values.c.name.like("source:%"))
            )
            assert list(cursors) == []  # a Markdown folder keeps no cursor, half-read or not

        process = start_ingest(root)
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, out + err
        assert f"news: {NEW - committed} added, 0 updated, {DELETED} removed" in out, out
        assert f"{KEPT + committed} unchanged" in out, out
        assert rows() == KEPT + NEW
        assert rows(live_only=False) == KEPT + DELETED + NEW  # each stored exactly once

        again = invoke(root, "ingest")
        assert f"news: 0 added, 0 updated, 0 removed, {KEPT + NEW} unchanged" in again.output
    finally:
        engine.dispose()
