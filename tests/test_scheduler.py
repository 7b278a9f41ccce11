"""`pipeline serve`: catch-up after downtime, reload, locks, and a real process stopped
with SIGTERM mid-send and restarted without sending anyone the digest twice."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from pipeline.actions import Actions
from pipeline.logs import configure
from pipeline.runs import BUSY, MISSED, OK, STOPPED, Locks, RunLog
from pipeline.scheduler import Scheduler
from pipeline.schedules import load_schedules
from pipeline.settings import load_settings
from pipeline.store import Store
from tests.conftest import free_port, invoke

NOW = dt.datetime(2026, 11, 29, 10, 7, tzinfo=dt.UTC)


def wait_for(condition, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def served(project):
    """A Scheduler on the example project with a fixed clock, and what it logs."""
    made = []

    def make(schedules_text: str, clock=lambda: NOW):
        root = project()
        (root / "schedules.yaml").write_text(schedules_text, encoding="utf-8")
        settings = load_settings(root / "config" / "pipeline.yaml")
        store = Store(settings.state, settings.site.url)
        stream = io.StringIO()
        log = configure("text", stream)
        import requests

        actions = Actions(settings, store, http=requests.Session, sleep=lambda s: None)
        scheduler = Scheduler(
            lambda: load_schedules(root / "schedules.yaml", settings),
            root / "schedules.yaml",
            actions,
            store,
            log=log,
            clock=clock,
            lock_wait=0.5,
        )
        made.append((scheduler, store))
        return scheduler, store, stream, root

    yield make
    for scheduler, store in made:
        scheduler.stop()
        if scheduler._aps.running:
            scheduler.shutdown()
        store.close()
    logging.getLogger("pipeline").handlers.clear()


def scheduled_jobs(scheduler: Scheduler) -> dict[str, dt.datetime | None]:
    """Each job the scheduler has scheduled, and its next run time (UTC)."""
    return {job.id: job.next_run_time for job in scheduler._aps.get_jobs()}


def runs_of(store: Store, name: str):
    return sorted(
        (r for r in RunLog(store.engine).history(100) if r.schedule == name),
        key=lambda r: (r.scheduled_for, r.id),
    )


FEEDS_EVERY_15 = "grace: {grace}\nschedules:\n  - {{name: feeds, do: feeds, every: 15 minutes}}\n"


def test_a_run_missed_within_grace_is_caught_up_once_and_older_ones_recorded(served):
    scheduler, store, _, root = served(FEEDS_EVERY_15.format(grace="10 minutes"))
    RunLog(store.engine).note("feeds", "feeds", NOW.replace(hour=9, minute=0), OK, "before")
    scheduler.start()
    wait_for(lambda: any(r.outcome == OK for r in runs_of(store, "feeds")[1:]), what="catch-up")
    _, missed, caught_up = runs_of(store, "feeds")
    assert missed.outcome == MISSED and "3 runs from 2026-11-29T15:00+05:45" in missed.detail
    assert "to 2026-11-29T15:30+05:45 missed while the service was down" in missed.detail
    assert caught_up.scheduled_for == NOW.replace(minute=0) and caught_up.outcome == OK
    assert (root / "public" / "feeds").is_dir()  # the catch-up really wrote the feeds


def test_a_run_missed_beyond_grace_is_only_recorded(served):
    scheduler, store, stream, _ = served(FEEDS_EVERY_15.format(grace="5 minutes"))
    RunLog(store.engine).note("feeds", "feeds", NOW.replace(hour=9, minute=0), OK, "before")
    scheduler.start()
    _, missed = runs_of(store, "feeds")
    assert missed.outcome == MISSED and missed.detail.startswith("4 runs from")
    assert "catch-up only within 5 min" in missed.detail and "run.missed" not in stream.getvalue()
    assert "missed while the service was down" in stream.getvalue()


def test_a_new_schedule_has_nothing_to_catch_up(served):
    scheduler, store, _, _ = served(FEEDS_EVERY_15.format(grace="1 hour"))
    scheduler.start()
    assert runs_of(store, "feeds") == []
    assert set(scheduled_jobs(scheduler)) == {"feeds"}


def test_edits_are_picked_up_and_a_bad_edit_keeps_the_last_good_schedules(served):
    scheduler, _, stream, root = served(FEEDS_EVERY_15.format(grace="1 hour"))
    scheduler.start()
    path = root / "schedules.yaml"
    path.write_text(
        path.read_text(encoding="utf-8")
        + '  - {name: weekly, do: digest weekly-en, on: monday, at: "09:00"}\n',
        encoding="utf-8",
    )
    assert scheduler.reload_if_changed()
    jobs = scheduled_jobs(scheduler)
    assert set(jobs) == {"feeds", "weekly"}
    assert jobs["weekly"].astimezone(dt.timezone(dt.timedelta(hours=5, minutes=45))).weekday() == 0
    path.write_text(path.read_text(encoding="utf-8").replace("monday", "munday"), encoding="utf-8")
    assert not scheduler.reload_if_changed()
    assert scheduled_jobs(scheduler) == jobs  # still running the last good schedules
    log = stream.getvalue()
    assert "schedules.yaml:4:" in log and "did you mean `monday`?" in log
    assert "the last good schedules keep running" in log
    assert not scheduler.reload_if_changed()  # unchanged since: not reported again


def test_two_schedulers_never_run_the_same_action_at_once(served):
    scheduler, store, _, _ = served(FEEDS_EVERY_15.format(grace="1 hour"))
    schedule = load_schedules(scheduler.schedules_file, scheduler.actions.settings).schedules[0]
    other = Locks(store.engine)
    assert other.acquire("feeds", "elsewhere:1/x")  # a second `serve` is writing feeds
    assert scheduler.execute(schedule, NOW) == BUSY
    (busy,) = runs_of(store, "feeds")
    assert busy.outcome == BUSY and "feeds was still running in elsewhere:1/x" in busy.detail
    other.release(("feeds",), "elsewhere:1/x")
    assert scheduler.execute(schedule, NOW) == OK


def test_locks_are_exclusive_expire_and_are_taken_from_a_dead_process(state_url):
    store = Store(state_url, "https://news.example.org")
    now = [NOW]  # the locks' clock: moved by hand, never slept past
    locks = Locks(store.engine, ttl=dt.timedelta(minutes=2), clock=lambda: now[0])
    assert locks.acquire("post", "a")
    assert not locks.acquire("post", "b")
    now[0] += dt.timedelta(minutes=1, seconds=30)
    locks.renew(("post",), "a")  # a holder that renews keeps it past the first ttl
    now[0] += dt.timedelta(minutes=1)
    assert not locks.acquire("post", "b")
    now[0] += dt.timedelta(minutes=1, seconds=1)  # one that stopped renewing loses it after ttl
    assert locks.acquire("post", "b")
    assert locks.holder("post") == "b"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True
    )  # has exited (and been reaped) when run() returns
    import socket

    corpse = f"{socket.gethostname()}:{dead.stdout.decode().strip()}/x"
    long_locks = Locks(store.engine, ttl=dt.timedelta(hours=1), clock=lambda: now[0])
    assert long_locks.acquire("digest:weekly-en", corpse)
    assert long_locks.acquire("digest:weekly-en", "alive")  # its holder has died
    assert not long_locks.acquire("digest:weekly-en", "other")  # but "alive" has not
    with long_locks.holding(("feeds", "post")) as refused:  # post is still b's
        assert refused is not None and "post is running in b" in refused
    assert long_locks.holder("feeds") is None  # all or nothing: feeds was given back
    assert long_locks.holder("digest:weekly-en") == "alive"
    store.close()


def test_the_run_log_dates_runs_by_its_injected_clock(state_url):
    store = Store(state_url, "https://news.example.org")
    now = [NOW]
    log = RunLog(store.engine, clock=lambda: now[0])
    ran = log.start("check-news", "cycle", NOW - dt.timedelta(minutes=1))
    now[0] += dt.timedelta(minutes=3, seconds=7)  # the run took that long, without waiting
    log.finish(ran, OK, {"posted": 2})
    (run,) = log.history()
    assert run.started_at == NOW and run.finished_at == NOW + dt.timedelta(minutes=3, seconds=7)
    assert run.scheduled_for == NOW - dt.timedelta(minutes=1)
    assert run.started_at.tzinfo == dt.UTC  # aware again once read back
    store.close()


def test_the_scheduler_dates_its_runs_and_locks_by_its_own_clock(served):
    scheduler, store, _, _ = served(FEEDS_EVERY_15.format(grace="1 hour"))
    schedule = load_schedules(scheduler.schedules_file, scheduler.actions.settings).schedules[0]
    assert scheduler.execute(schedule, NOW) == OK
    (run,) = runs_of(store, "feeds")
    assert run.started_at == NOW and run.finished_at == NOW  # the fixed test clock
    assert scheduler.locks.clock() == NOW


def test_json_log_lines_carry_the_event_and_its_fields(served):
    scheduler, _, _, _ = served(FEEDS_EVERY_15.format(grace="1 hour"))
    stream = io.StringIO()
    scheduler.log = configure("json", stream)
    schedule = load_schedules(scheduler.schedules_file, scheduler.actions.settings).schedules[0]
    scheduler.execute(schedule, NOW)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["run.started", "run.finished"]
    assert lines[1]["schedule"] == "feeds" and lines[1]["outcome"] == "ok"
    assert lines[1]["written"] > 0 and lines[1]["scheduled"] == "2026-11-29T15:52+05:45"


def test_serve_stopped_mid_send_and_restarted_sends_everyone_once(mail_project, inbox):
    """A real `pipeline serve` is sent SIGTERM while the 2nd digest message is in DATA.
    It finishes that message, stops before the 3rd, exits 0. Restarted, it finishes the
    stopped run (same edition) and nobody gets the digest twice."""
    handler, _ = inbox
    handler.hold_at = 2
    (mail_project / "schedules.yaml").write_text(
        "schedules:\n  - name: weekly\n    do: digest weekly-en\n"
        '    cron: "* * * * *"\n    grace: 1 hour\n',
        encoding="utf-8",
    )
    _, store = _opened(mail_project)
    an_hour_ago = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=1)
    RunLog(store.engine).note("weekly", "digest weekly-en", an_hour_ago, OK, "seeded")
    env = {**os.environ, "NO_COLOR": "1"}
    listen = f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "pipeline", "serve", "--poll", "0.2", "--listen", listen]

    first = subprocess.Popen(command, cwd=mail_project, env=env, stderr=subprocess.PIPE, text=True)
    lines, acknowledged = _read_lines(first.stderr, "SIGTERM: finishing the running step")
    try:
        assert handler.holding.wait(60), "the catch-up run never reached the 2nd message"
        # the web endpoints run beside the schedules, in the same process
        assert requests.get(f"http://{listen}/healthz", timeout=10).text == "ok"
        first.send_signal(signal.SIGTERM)
        # Let the 2nd message finish only once serve has taken the signal in, not after a
        # guessed delay that a loaded machine can overrun.
        assert acknowledged.wait(30), "serve never acknowledged SIGTERM"
        handler.release.set()
        assert first.wait(30) == 0
    finally:
        first.kill()
    log = "".join(lines())
    assert "SIGTERM: finishing the running step" in log and "stopped" in log
    assert len(handler.messages) == 2
    stopped = [r for r in runs_of(store, "weekly") if r.outcome == STOPPED]
    assert len(stopped) == 1 and stopped[0].counts["sent"] == 2

    second = subprocess.Popen(command, cwd=mail_project, env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(handler.messages) == 3, what="the third subscriber")
        resumed = lambda: [  # noqa: E731
            r for r in runs_of(store, "weekly") if r.scheduled_for == stopped[0].scheduled_for
        ]
        wait_for(lambda: resumed()[-1].outcome == OK, what="the stopped run to be finished")
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    finally:
        second.kill()
    delivered = handler.to()
    assert len(delivered) == 3 and len(set(delivered)) == 3
    assert resumed()[-1].counts["sent"] == 1  # the same edition, finished
    store.close()


def _read_lines(stream, wanted: str):
    """Read ``stream`` in a thread (so the child never blocks on a full pipe): a function
    returning the lines read once the stream ends, and an event set when ``wanted`` shows."""
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        for line in stream:
            lines.append(line)
            if wanted in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def finished() -> list[str]:
        reader.join(30)
        return lines

    return finished, seen


def _opened(root: Path):
    settings = load_settings(root / "config" / "pipeline.yaml")
    return settings, Store(settings.state, settings.site.url)


def test_pipeline_schedule_prints_the_next_runs(project, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    root = project()
    result = invoke(root, "schedule", "--next", "3")
    assert result.exit_code == 0, result.output + result.stderr
    assert "weekly-digest-en" in result.output and "Mon" in result.output
    assert "paused (enabled: false)" in result.output
    assert "+0545" in result.output or "+05" in result.output
