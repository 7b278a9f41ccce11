"""The queue under faults, with real processes on the local PostgreSQL: ``pipeline
worker`` processes killed with SIGKILL at random moments of a 5,000-recipient edition and
of posting, then replaced, and a leading ``serve`` killed so that its standby takes over.

What is counted is what the receivers got: no recipient or post twice, nobody left out
without the ledger saying so (uncertain), and at most one uncertain message per
connection a killed worker had open.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select, text

from tests.conftest import invoke
from tests.smtp_sink import SinkServer
from tests.test_queue import fire, queue_counts, start_worker, stop, wait_for, with_queue

RECIPIENTS = 5000
CONCURRENCY, CONNECTIONS = 2, 2  # per worker: batches at once, SMTP connections per batch


@pytest.fixture
def pg_project(project, state_url):
    if state_url.startswith("sqlite"):
        pytest.skip("a queue runs on PostgreSQL only")
    return project


@pytest.fixture
def sink() -> Iterator[SinkServer]:
    with SinkServer(delay=0.002) as server:
        yield server


def open_store(root: Path):
    from pipeline.settings import load_settings
    from pipeline.store import Store

    settings = load_settings(root / "config" / "pipeline.yaml")
    return Store(settings.state, settings.site.url)


def ledger_states(root: Path, stream_prefix: str) -> dict[tuple[str, str], str]:
    """(stream, item) → state, of every ledger row whose stream starts so."""
    from pipeline.schema import deliveries

    store = open_store(root)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(
                select(deliveries.c.stream, deliveries.c.item, deliveries.c.state).where(
                    deliveries.c.stream.startswith(stream_prefix)
                )
            ).all()
        return {(stream, item): state for stream, item, state in rows}
    finally:
        store.close()


class Killer:
    """Workers to keep running; ``kill()`` ends one at random with SIGKILL (no chance to
    finish or tidy) and starts another in its place."""

    def __init__(self, root: Path, count: int, seed: int):
        self.root = root
        self.random = random.Random(seed)
        self.workers = [self._start() for _ in range(count)]
        self.killed: list[subprocess.Popen] = []

    def _start(self) -> subprocess.Popen:
        return start_worker(self.root, "--concurrency", str(CONCURRENCY))

    def kill(self) -> None:
        victim = self.random.choice(self.workers)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        self.workers.remove(victim)
        self.killed.append(victim)
        self.workers.append(self._start())

    def stop(self) -> list[str]:
        log = stop(self.workers)
        for each in self.killed:
            each.communicate(timeout=10)
        return log


def idle(root: Path) -> bool:
    counts = queue_counts(root)
    return bool(counts) and not counts.get("todo") and not counts.get("doing")


def test_workers_killed_during_an_edition_send_nobody_twice_and_lose_nobody(
    pg_project, sink, state_url
):
    root = pg_project()
    config = root / "config" / "pipeline.yaml"
    smtp = f"  delivery: smtp\n  smtp:\n    host: 127.0.0.1\n    port: {sink.port}\n"
    smtp += f"    security: none\n    connections: {CONNECTIONS}\n  # "
    config.write_text(
        config.read_text(encoding="utf-8").replace("  delivery: outbox ", smtp), "utf-8"
    )
    with_queue(root, batch_size=250, stalled_after=3)
    assert invoke(root, "ingest").exit_code == 0
    readers = [f"reader{n:05}@example.org" for n in range(RECIPIENTS)]
    rows = "".join(f"{address},Reader {n},en,\n" for n, address in enumerate(readers))
    (root / "readers.csv").write_text("email,name,language,topics\n" + rows, encoding="utf-8")
    assert invoke(root, "subscribers", "import", str(root / "readers.csv")).exit_code == 0

    seed = random.randrange(1 << 30)
    moments = sorted(random.Random(seed).sample(range(300, RECIPIENTS - 600), 3))
    killer = Killer(root, 3, seed)
    try:
        scheduled = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
        assert fire(root, "digest weekly-en", scheduled) is not None
        for moment in moments:  # kill as the sink passes each moment
            wait_for(lambda m=moment: sink.sink.count() >= m, 240, f"{moment} messages")
            killer.kill()
        wait_for(lambda: idle(root), 240, "the edition to be sent")
    finally:
        log = killer.stop()

    received = sink.sink.recipients()
    states = ledger_states(root, "mail:weekly-en@")
    (stream,) = {s for s, _ in states}
    by_address = _addresses(root)
    state_of = {by_address[int(item)]: state for (_, item), state in states.items()}
    context = f"seed {seed}, kills at {moments}"
    assert set(state_of) == set(readers), context  # every reader has a row: no one skipped
    assert max(received.values()) == 1, context  # 0 duplicates
    lost = [a for a in readers if a not in received and state_of[a] != "uncertain"]
    assert lost == [], context  # 0 silent losses
    claimed_but_missing = [a for a, s in state_of.items() if s == "sent" and a not in received]
    assert claimed_but_missing == [], context
    uncertain = Counter(state_of.values())["uncertain"]
    assert uncertain <= len(moments) * CONCURRENCY * CONNECTIONS, context
    assert set(Counter(state_of.values())) <= {"sent", "uncertain"}, context
    assert set(queue_counts(root)) == {"succeeded"}, log
    store = open_store(root)
    try:
        with store.engine.connect() as conn:
            status = conn.scalar(
                text("SELECT status FROM editions WHERE id = :id"), {"id": stream[5:]}
            )
    finally:
        store.close()
    assert status == "sent", context
    taken_over = [e for e in map(_json, log) if e.get("event") == "job.stalled"]
    assert taken_over, "a killed worker's batch was never taken over"


def _json(line: str) -> dict:
    try:
        return json.loads(line)
    except ValueError:
        return {}


def _addresses(root: Path) -> dict[int, str]:
    from pipeline.schema import subscribers

    store = open_store(root)
    try:
        with store.engine.connect() as conn:
            return dict(conn.execute(select(subscribers.c.id, subscribers.c.email)).all())
    finally:
        store.close()


# -- posting ------------------------------------------------------------------------------


class Receiver(BaseHTTPRequestHandler):
    """A webhook receiver that takes its time (a remote API's latency)."""

    got: list[tuple[str, str]]  # (path, article id)
    lock: threading.Lock

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(0.03)
        with self.lock:
            self.got.append((self.path, body["article"]["id"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    got: list[tuple[str, str]] = []
    handler = type("Handler", (Receiver,), {"got": got, "lock": threading.Lock()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", got
    server.shutdown()


ARTICLES, CHANNELS = 90, 3


def test_workers_killed_while_posting_post_nothing_twice_and_lose_nothing(
    pg_project, receiver, state_url
):
    base, got = receiver
    root = pg_project(with_examples=False)
    news = root / "examples" / "site" / "news"
    for n in range(ARTICLES):
        (news / f"2026-12-01-story-{n:03}.md").write_text(
            f"---\ntitle: Story {n}\ndate: 2026-12-01T{n // 60:02}:{n % 60:02}:00+00:00\n"
            f"language: en\n---\n\nWhat happened, number {n}.\n",
            encoding="utf-8",
        )
    config = root / "config" / "pipeline.yaml"
    channels = "".join(
        f"  hook{c}:\n    type: webhook\n    url: {base}/hook{c}\n"
        f"    max_age_hours: 100000\n    per_run: {ARTICLES}\n"
        for c in range(CHANNELS)
    )
    text_ = config.read_text(encoding="utf-8").replace("channels:\n", "channels:\n" + channels)
    config.write_text(text_, encoding="utf-8")
    with_queue(root, stalled_after=3)
    assert invoke(root, "ingest").exit_code == 0

    seed = random.randrange(1 << 30)
    total = ARTICLES * CHANNELS
    moments = sorted(random.Random(seed).sample(range(20, total - 60), 2))
    killer = Killer(root, 3, seed)
    try:
        for channel in range(CHANNELS):
            when = dt.datetime(2026, 12, 7, 9, channel, tzinfo=dt.UTC)  # a fire each
            run = fire(root, f"post hook{channel}", when)
            assert run is not None
        for moment in moments:
            wait_for(lambda m=moment: len(got) >= m, 240, f"{moment} posts")
            killer.kill()
        wait_for(lambda: idle(root), 240, "the posting to end")
    finally:
        log = killer.stop()

    context = f"seed {seed}, kills at {moments}"
    received = Counter(got)
    assert max(received.values()) == 1, context  # 0 duplicates
    states = ledger_states(root, "post:hook")
    uncertain = 0
    for channel in range(CHANNELS):
        for (stream, item), state in states.items():
            if stream != f"post:hook{channel}":
                continue
            arrived = (f"/hook{channel}", item) in received
            assert state in ("sent", "uncertain"), (stream, item, state, context)
            assert arrived or state == "uncertain", (stream, item, context)  # no silent loss
            uncertain += state == "uncertain"
        posted = {item for (stream, item) in states if stream == f"post:hook{channel}"}
        assert len(posted) == ARTICLES, context  # every article has its row on every channel
    assert uncertain <= len(moments) * CONCURRENCY, context  # one request in flight per job
    assert set(queue_counts(root)) == {"succeeded"}, log


# -- the standby scheduler ------------------------------------------------------------------


class Serve:
    """A ``pipeline serve`` process whose JSON log lines are read as they come."""

    def __init__(self, root: Path, port: int):
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "pipeline", "serve", "--log-format", "json"),
                *("--poll", "0.5", "--listen", f"127.0.0.1:{port}"),
            ],
            cwd=root,
            env={**os.environ, "NO_COLOR": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.events.append(_json(line))

    def said(self, name: str) -> list[dict]:
        return [e for e in list(self.events) if e.get("event") == name]


def test_the_standby_serve_takes_over_from_a_killed_leader_and_fires_once(pg_project, state_url):
    from tests.conftest import free_port

    root = pg_project()
    (root / "schedules.yaml").write_text(
        "schedules:\n  - name: tick\n    do: feeds\n    cron: '* * * * *'\n    timezone: UTC\n",
        encoding="utf-8",
    )
    with_queue(root)
    leader = Serve(root, free_port())
    standby = None
    try:
        wait_for(lambda: leader.said("serve.leading"), 60, "the first serve to lead")
        standby = Serve(root, free_port())
        wait_for(lambda: standby.said("serve.standby"), 60, "the second serve to stand by")
        os.kill(leader.process.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(lambda: standby.said("serve.leading"), 30, "the standby to lead")
        took_over = time.monotonic() - killed_at
        wait_for(lambda: standby.said("run.queued"), 75, "the standby's first fire")
    finally:
        for each in (leader, standby):
            if each is not None and each.process.poll() is None:
                each.process.terminate()
                each.process.wait(30)
    assert took_over < 30
    store = open_store(root)
    try:
        with store.engine.connect() as conn:
            fired = conn.execute(text("SELECT scheduled_for, fired_by FROM fires")).all()
            runs = conn.execute(
                text("SELECT scheduled_for FROM runs WHERE schedule = 'tick'")
            ).all()
    finally:
        store.close()
    by_standby = [f for f in fired if f.fired_by.endswith(f":{standby.process.pid}")]
    assert by_standby, fired  # the standby fired the next run
    assert Counter(r.scheduled_for for r in runs) == Counter(f.scheduled_for for f in fired)
    assert max(Counter(r.scheduled_for for r in runs).values()) == 1  # each moment once
    queued = [e for e in standby.events + leader.events if e.get("event") == "run.queued"]
    assert len(queued) == len(fired)
