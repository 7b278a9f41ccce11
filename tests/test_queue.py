"""The queue (``queue: {engine: procrastinate}``): real ``pipeline worker`` processes on the
local PostgreSQL run what a fire enqueued — a cycle's ingest per source, feeds and
posting per channel; a digest edition frozen once and fanned out in batches — and the
ledger still sends each message and each post once. On SQLite a queue is refused."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections import Counter
from email.utils import parseaddr
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import invoke

READERS = 120


def with_queue(root: Path, **options: object) -> None:
    config = root / "config" / "pipeline.yaml"
    lines = ["queue:", "  engine: procrastinate"] + [f"  {k}: {v}" for k, v in options.items()]
    config.write_text(config.read_text(encoding="utf-8") + "\n".join(lines) + "\n", "utf-8")


def add_readers(root: Path, count: int) -> set[str]:
    readers = [f"reader{n:05}@example.org" for n in range(count)]
    rows = "".join(f"{address},Reader {n},en,\n" for n, address in enumerate(readers))
    (root / "readers.csv").write_text("email,name,language,topics\n" + rows, encoding="utf-8")
    result = invoke(root, "subscribers", "import", str(root / "readers.csv"))
    assert result.exit_code == 0, result.output
    return {"anna@example.org", "pema@example.org", "sonam@example.org", *readers}


def start_worker(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "worker", "--log-format", "json", *args],
        cwd=root,
        env={**os.environ, "NO_COLOR": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(workers: list[subprocess.Popen]) -> list[str]:
    """SIGTERM each (running jobs finish), and their log lines."""
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
    return [line for w in workers for line in w.communicate(timeout=60)[1].splitlines()]


def fire(root: Path, action: str, scheduled: dt.datetime) -> int | None:
    from pipeline.actions import parse_action
    from pipeline.queue.enqueue import Enqueuer
    from pipeline.queue.schema import ensure_schema
    from pipeline.settings import load_settings
    from pipeline.store import Store

    settings = load_settings(root / "config" / "pipeline.yaml")
    store = Store(settings.state, settings.site.url)
    try:
        ensure_schema(store.engine)  # as `serve` does when it opens the store
        parsed = parse_action(action, settings.digests, settings.channels)
        return Enqueuer(store.engine, settings).fire("test", parsed, scheduled)
    finally:
        store.close()


def wait_for(condition, seconds: float = 60, what: str = "the workers to finish") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def run_row(root: Path, run_id: int):
    from pipeline.runs import RunLog
    from pipeline.settings import load_settings
    from pipeline.store import Store

    settings = load_settings(root / "config" / "pipeline.yaml")
    store = Store(settings.state, settings.site.url)
    try:
        return next(r for r in RunLog(store.engine).history() if r.id == run_id)
    finally:
        store.close()


@pytest.fixture
def queue_project(mail_project, state_url):
    if state_url.startswith("sqlite"):
        pytest.skip("a queue runs on PostgreSQL only (refusing SQLite is tested below)")
    with_queue(mail_project, batch_size=25, stalled_after=3)
    return mail_project


def test_a_queue_on_sqlite_is_refused_by_check_with_its_line(project, state_url):
    if not state_url.startswith("sqlite"):
        pytest.skip("the SQLite refusal")
    root = project()
    with_queue(root)
    result = invoke(root, "check")
    assert result.exit_code == 2
    assert "pipeline.yaml" in result.output and "queue" in result.output
    assert "PostgreSQL" in result.output and "remove `queue:`" in result.output


def test_a_worker_without_a_queue_says_how_to_get_one(project, state_url):
    result = invoke(project(), "worker")
    assert result.exit_code == 2
    assert "queue: {engine: procrastinate}" in result.output


def test_workers_send_a_fanned_out_edition_once_to_everyone(queue_project, inbox, state_url):
    handler, _ = inbox
    audience = add_readers(queue_project, READERS)
    workers = [start_worker(queue_project, "--concurrency", "2") for _ in range(2)]
    try:
        scheduled = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
        run_id = fire(queue_project, "digest weekly-en", scheduled)
        assert run_id is not None
        assert fire(queue_project, "digest weekly-en", scheduled) is None  # one fire, once
        wait_for(lambda: len(handler.messages) >= len(audience))
        wait_for(lambda: run_row(queue_project, run_id).counts.get("sent") == len(audience))
    finally:
        log = stop(workers)
    received = Counter(parseaddr(str(m["To"]))[1] for m in handler.messages)
    assert set(received) == audience
    assert max(received.values()) == 1
    run = run_row(queue_project, run_id)
    assert run.outcome == "ok" and run.counts["batches"] == -(-len(audience) // 25)
    events = [json.loads(line) for line in log if line.startswith("{")]
    finished = [e for e in events if e.get("event") == "job.finished"]
    batches = [e for e in finished if e["task"] == "digest_batch"]
    assert len(batches) == run.counts["batches"]
    assert sum(e["sent"] for e in batches) == len(audience)
    assert edition_statuses(queue_project) == {"weekly-en@2026-12-07T14:45+05:45": "sent"}


def edition_statuses(root: Path) -> dict[str, str]:
    from pipeline.schema import editions
    from pipeline.settings import load_settings
    from pipeline.store import Store

    settings = load_settings(root / "config" / "pipeline.yaml")
    store = Store(settings.state, settings.site.url)
    try:
        with store.engine.connect() as conn:
            return dict(conn.execute(select(editions.c.id, editions.c.status)).all())
    finally:
        store.close()


def queue_counts(root: Path) -> dict[str, int]:
    """procrastinate's jobs by status."""
    from sqlalchemy import text

    from pipeline.settings import load_settings
    from pipeline.store import Store

    settings = load_settings(root / "config" / "pipeline.yaml")
    store = Store(settings.state, settings.site.url)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY status")
            ).all()
        return {status: n for status, n in rows}
    finally:
        store.close()


def test_a_queued_cycle_ingests_per_source_then_writes_feeds_and_posts_once(project, state_url):
    if state_url.startswith("sqlite"):
        pytest.skip("a queue runs on PostgreSQL only")
    root = project()
    config = root / "config" / "pipeline.yaml"
    second = "  archive2:\n    type: file\n    path: var/posts2.jsonl\n    max_age_hours: 100000\n"
    second += "    per_run: 50\n"
    text = config.read_text(encoding="utf-8").replace("channels:\n", "channels:\n" + second)
    config.write_text(text, encoding="utf-8")
    with_queue(root, stalled_after=3)
    workers = [start_worker(root, "--concurrency", "3") for _ in range(2)]
    try:
        run_id = fire(root, "cycle", dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC))
        assert run_id is not None

        def idle() -> bool:
            counts = queue_counts(root)
            return not counts.get("todo") and not counts.get("doing") and bool(counts)

        wait_for(idle)
    finally:
        log = stop(workers)
    assert set(queue_counts(root)) == {"succeeded"}, log
    events = [json.loads(line) for line in log if line.startswith("{")]
    finished = Counter(e["task"] for e in events if e.get("event") == "job.finished")
    assert finished["ingest"] == 2  # one job per source
    assert finished["feeds"] >= 1 and finished["post"] >= 2
    run = run_row(root, run_id)
    added = run.counts["added"]
    assert added == len(list((root / "examples" / "site").rglob("*.md")))
    for posts in ("posts.jsonl", "posts2.jsonl"):
        lines = (root / "var" / posts).read_text(encoding="utf-8").splitlines()
        ids = Counter(json.loads(line)["id"] for line in lines)
        assert len(ids) == min(added, 50) and max(ids.values()) == 1, posts
    assert run.counts["posted"] == 2 * min(added, 50)
    for name in ("rss.xml", "atom.xml", "feed.json"):
        assert (root / "public" / "feeds" / name).stat().st_size > 0


@contextlib.contextmanager
def jobs_here(root: Path, run_id: int, scheduled: dt.datetime):
    """The jobs a worker runs, run in this process: the digest job is run at once (the
    edition frozen and fanned out); yields (jobs, the store)."""
    import logging

    from pipeline.actions import Actions
    from pipeline.assembly import http_session
    from pipeline.queue.jobs import Jobs
    from pipeline.runs import RunLog
    from pipeline.settings import load_settings
    from pipeline.store import Store

    settings = load_settings(root / "config" / "pipeline.yaml")
    store = Store(settings.state, settings.site.url)
    try:
        jobs = Jobs(
            settings,
            Actions(settings, store, http=http_session),
            RunLog(store.engine),
            logging.getLogger("test"),
        )
        jobs.digest(digest="weekly-en", scheduled=scheduled.isoformat(), run_id=run_id)
        yield jobs, store
    finally:
        store.close()


def test_status_shows_jobs_workers_stalled_jobs_and_an_editions_batches(
    queue_project, inbox, state_url
):
    """What `pipeline status` says of a queue: nothing runs it yet; then (the digest job
    and one batch run here, as a worker would) the edition's batches so far; then a job
    whose worker stopped sending heartbeats."""
    from sqlalchemy import text

    handler, _ = inbox
    add_readers(queue_project, READERS)  # 123 in all: 5 batches of 25
    scheduled = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
    run_id = fire(queue_project, "digest weekly-en", scheduled)
    result = invoke(queue_project, "status")
    assert result.exit_code == 0, result.output
    assert "Queue: 1 waiting, 0 running, 0 stalled, 0 failed; 0 live workers" in result.output
    assert "no worker is running: start one with `pipeline worker`" in result.output

    with jobs_here(queue_project, run_id, scheduled) as (jobs, store):
        edition = "weekly-en@2026-12-07T14:45+05:45"
        jobs.digest_batch(edition=edition, number=0, run_id=run_id)
        assert len(handler.messages) == 25
        queue = json.loads(invoke(queue_project, "status", "--json").output)["queue"]
        assert queue["editions"] == [
            {"edition": edition, "batches": 5, "batches_done": 1, "sent": 25, "uncertain": 0}
        ]
        assert queue["jobs"]["todo"] == {"digest": 1, "digest_batch": 5}
        assert queue["stalled"] == [] and queue["workers"] == []
        shown = invoke(queue_project, "status").output
        assert edition in shown and "1 of 5" in shown

        with store.engine.begin() as conn:  # a worker that died a minute ago, mid-job
            worker = conn.scalar(
                text(
                    "INSERT INTO procrastinate_workers (last_heartbeat) "
                    "VALUES (now() - interval '1 minute') RETURNING id"
                )
            )
            conn.execute(
                text(
                    "UPDATE procrastinate_jobs SET status = 'doing', worker_id = :worker "
                    "WHERE id = (SELECT min(id) FROM procrastinate_jobs "
                    "WHERE task_name = 'pipeline.digest_batch')"
                ),
                {"worker": worker},
            )
    queue = json.loads(invoke(queue_project, "status", "--json").output)["queue"]
    assert [job["task"] for job in queue["stalled"]] == ["digest_batch"]
    assert queue["workers"] == []  # its heartbeat is older than stalled_after (3 s)
    assert "1 stalled" in invoke(queue_project, "status").output


def test_a_batch_left_by_a_worker_on_another_machine_is_finished_at_once(
    queue_project, inbox, state_url
):
    """The worker sending batch 0 was on another machine and is gone (its rows say
    ``elsewhere:…``, a pid this host cannot look up): run again, the batch marks the
    message that was on the wire uncertain, sends the rest, and closes the edition —
    without waiting the hour a row of an unknown process otherwise waits."""
    from pipeline.digest.editions import mail_stream
    from pipeline.ledger import Ledger

    handler, _ = inbox
    add_readers(queue_project, 20)  # 23 in all: batches of 25 → one batch
    scheduled = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
    run_id = fire(queue_project, "digest weekly-en", scheduled)
    with jobs_here(queue_project, run_id, scheduled) as (jobs, store):
        edition = "weekly-en@2026-12-07T14:45+05:45"
        stream = mail_stream(edition)
        elsewhere = Ledger(store.engine, owner="worker-7.internal:4242")
        assert elsewhere.claim(stream, "1", key="<on-the-wire@example.org>")
        jobs.digest_batch(edition=edition, number=0, run_id=run_id)
        states = {item: e.state for item, e in elsewhere.entries(stream).items()}
    assert states.pop("1") == "uncertain"
    assert set(states.values()) == {"sent"} and len(states) == 22
    assert len(handler.messages) == 22
    assert edition_statuses(queue_project)[edition] == "sent"
