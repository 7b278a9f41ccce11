"""`pipeline serve` outlives every bad edit of schedules.yaml and the config file: the
located problems go to its log, the last good schedules keep running, and its web
endpoints keep answering. A tab after a colon used to kill it (the finding), and an alias
bomb would have held it for a minute and gigabytes on every save."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from pipeline.logs import configure
from pipeline.scheduler import Scheduler
from pipeline.schedules import load_schedules
from pipeline.settings import load_settings
from pipeline.store import Store
from tests.conftest import free_port
from tests.test_scheduler import scheduled_jobs

GOOD = (
    "timezone: Asia/Kathmandu\n"
    "schedules:\n"
    "  - name: weekly\n"
    "    do: feeds\n"
    "    on: monday\n"
    '    at: "03:00"\n'
)
TAB_AFTER_COLON = GOOD.replace("    do: feeds", "    do:\tfeeds")  # line 4
BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


def wait_for(condition, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def test_a_running_serve_survives_bad_edits_and_keeps_its_web_pages_up(project):
    root = project()
    schedules, config = root / "schedules.yaml", root / "config" / "pipeline.yaml"
    schedules.write_text(GOOD, encoding="utf-8")
    listen = f"127.0.0.1:{free_port()}"
    log_file = root / "serve.log"
    command = [sys.executable, "-m", "pipeline", "serve", "--poll", "0.1", "--listen", listen]
    with log_file.open("w") as log:
        serve = subprocess.Popen(command, cwd=root, env={**os.environ, "NO_COLOR": "1"}, stderr=log)
    logged = lambda: log_file.read_text(encoding="utf-8")  # noqa: E731

    def still_serving() -> None:
        assert serve.poll() is None, logged()
        assert requests.get(f"http://{listen}/healthz", timeout=5).text == "ok"
        assert requests.get(f"http://{listen}/subscribe", timeout=5).status_code == 200

    try:
        wait_for(lambda: answers(f"http://{listen}/healthz"), 60, "serve to start")
        wait_for(lambda: "serving" in logged(), 30, "the schedules to start")

        schedules.write_text(TAB_AFTER_COLON, encoding="utf-8")
        wait_for(lambda: "a tab character" in logged(), what="the tab to be reported")
        assert "schedules.yaml:4:8: a tab character here" in logged()
        assert "the last good schedules keep running" in logged()
        still_serving()

        schedules.write_text(BOMB, encoding="utf-8")
        wait_for(lambda: "anchors and aliases" in logged(), what="the bomb to be refused")
        assert "schedules.yaml:1:4: anchors and aliases (&name, *name) are not allowed" in logged()
        still_serving()

        good_config = config.read_text(encoding="utf-8")
        config.write_text(good_config.replace("  name: ", "  name:\t", 1), encoding="utf-8")
        wait_for(lambda: "config/pipeline.yaml:3:" in logged(), what="the config problem")
        assert "serve keeps the configuration it started with" in logged()
        config.write_text(good_config + "a: &x 1\n", encoding="utf-8")
        wait_for(lambda: logged().count("keeps the configuration") == 2, what="the alias")
        assert f"config/pipeline.yaml:{good_config.count(chr(10)) + 1}:4: anchors" in logged()
        still_serving()

        schedules.write_text(GOOD.replace("03:00", "04:00"), encoding="utf-8")
        wait_for(lambda: "schedules reloaded" in logged(), what="a good edit to be used")
        still_serving()
        assert "Traceback" not in logged()

        serve.send_signal(signal.SIGTERM)
        assert serve.wait(30) == 0
    finally:
        serve.kill()
        serve.wait(10)


# -- the same, in process: what the reload does when reading goes wrong in other ways ------


@pytest.fixture
def scheduler(project):
    made: list[tuple[Scheduler, Store]] = []

    def make(broken: bool = False) -> tuple[Scheduler, io.StringIO, Path]:
        """A started Scheduler on GOOD; ``broken``: every reload after the first fails
        with an error nobody foresaw."""
        root = project(with_examples=False)
        path = root / "schedules.yaml"
        path.write_text(GOOD, encoding="utf-8")
        settings = load_settings(root / "config" / "pipeline.yaml")
        store = Store(settings.state, settings.site.url)
        stream = io.StringIO()
        loads = []

        def load():
            loads.append(path)
            if broken and len(loads) > 1:
                raise RuntimeError("a bug some edit runs into")
            return load_schedules(path, settings)

        scheduler = Scheduler(
            load,
            path,
            actions=None,  # nothing runs: only the watching is under test
            store=store,
            log=configure("text", stream),
            config_file=root / "config" / "pipeline.yaml",
        )
        scheduler.start()
        made.append((scheduler, store))
        return scheduler, stream, root

    yield make
    for made_scheduler, store in made:
        made_scheduler.shutdown()
        store.close()
    logging.getLogger("pipeline").handlers.clear()


def test_an_unexpected_error_while_reloading_keeps_the_last_good_schedules(scheduler):
    made, stream, root = scheduler(broken=True)
    jobs = scheduled_jobs(made)
    (root / "schedules.yaml").write_text(GOOD + "\n", encoding="utf-8")
    assert not made.reload_if_changed()
    assert scheduled_jobs(made) == jobs
    assert "RuntimeError: a bug some edit runs into" in stream.getvalue()
    assert "the last good schedules keep running" in stream.getvalue()


def test_a_schedule_whose_trigger_cannot_be_built_changes_no_job(scheduler, monkeypatch):
    made, stream, root = scheduler()
    jobs = scheduled_jobs(made)
    (root / "schedules.yaml").write_text(
        GOOD + "  - name: news\n    do: feeds\n    every: 15 minutes\n", encoding="utf-8"
    )

    def refuse(spec, zone):
        raise ValueError("cannot be built")

    monkeypatch.setattr("pipeline.scheduler.build_trigger", refuse)
    assert not made.reload_if_changed()
    assert scheduled_jobs(made) == jobs and set(made.current) == {"weekly"}  # not half replaced
    assert "cannot be built" in stream.getvalue()


def test_a_good_config_edit_is_noted_and_a_bad_one_located(scheduler):
    made, stream, root = scheduler()
    config = root / "config" / "pipeline.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text + "\n", encoding="utf-8")
    made.check_config_if_changed()
    assert "the config file changed; restart serve to use it" in stream.getvalue()
    config.write_text(text.replace("items: 50", "items: 50000"), encoding="utf-8")
    made.check_config_if_changed()
    assert "`feeds.items`: Input should be less than or equal to 10000" in stream.getvalue()
    made.check_config_if_changed()  # unchanged since: said once
    assert sum("feeds.items" in line for line in stream.getvalue().splitlines()) == 1
