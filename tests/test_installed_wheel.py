"""What users install: the sdist and the wheel, built from this checkout; the wheel
installed (not editable) into a fresh venv and run from a folder outside the repository.

This needs pip to fetch the dependencies, so it runs where ``PIPELINE_TEST_WHEEL`` is set
(``.ci/run`` sets it, and there it must pass); elsewhere it is skipped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    not os.environ.get("PIPELINE_TEST_WHEEL"), reason="set PIPELINE_TEST_WHEEL=1 (CI does)"
)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return out


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory) -> Path:
    """The ``pipeline`` command of a fresh venv holding only the wheel and its dependencies."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    wheel = next(dist.glob("*.whl"))
    subprocess.run(
        [str(env_dir / "bin" / "pip"), "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return env_dir / "bin" / "pipeline"


def test_the_wheel_carries_templates_skeleton_and_migrations(dist):
    names = zipfile.ZipFile(next(dist.glob("*.whl"))).namelist()
    for needed in (
        "pipeline/templates/digest.mjml.j2",
        "pipeline/templates/digest.txt.j2",
        "pipeline/templates/channels/mastodon.txt.j2",
        "pipeline/templates/web/page.html.j2",
        "pipeline/templates/web/site.html.j2",
        "pipeline/templates/web/preferences.html.j2",
        "pipeline/templates/welcome/en.txt.j2",
        "pipeline/templates/welcome/zh.txt.j2",
        "pipeline/skeleton/config/pipeline.yaml",
        "pipeline/skeleton/gitignore",
        "pipeline/migrations/env.py",
    ):
        assert needed in names, f"{needed} is not in the wheel"
    assert any(n.startswith("pipeline/migrations/versions/0001") for n in names)
    assert not any(n.startswith(("tests/", "examples/")) for n in names)


def test_the_sdist_carries_the_tests_and_what_they_need(dist):
    with tarfile.open(next(dist.glob("*.tar.gz"))) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for needed in (
        "tests/conftest.py",
        "tests/test_cli.py",
        "config/pipeline.yaml",
        "schedules.yaml",
        "examples/subscribers.csv",
        "deploy/pipeline.service",
        "pipeline/templates/digest.mjml.j2",
        "README.md",
    ):
        assert needed in names, f"{needed} is not in the sdist"
    assert any(n.startswith("tests/fixtures/") for n in names)
    assert any(n.startswith("examples/site/news/") for n in names)


def run(pipeline: Path, folder: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(pipeline), *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")},
    )
    assert done.returncode == 0, f"pipeline {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done


def test_a_new_project_runs_from_the_installed_wheel(installed, tmp_path):
    folder = tmp_path / "elsewhere"
    run(installed, tmp_path, "init", "elsewhere", "--name", "Lakeside News")
    run(installed, folder, "check")
    first = run(installed, folder, "run")
    assert "1 added" in first.stdout and "archive: 1 posted" in first.stdout
    assert "Welcome to Lakeside News" in (folder / "public" / "feeds" / "feed.json").read_text()
    run(installed, folder, "digest", "preview", "weekly")
    assert "Welcome to Lakeside News" in (folder / "var" / "preview" / "weekly.html").read_text()
    assert "nothing was changed" not in run(installed, folder, "run").stderr


def test_the_installed_web_endpoints_answer(installed, tmp_path):
    run(installed, tmp_path, "init", "site")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(installed), "serve", "--web-only", "--listen", f"127.0.0.1:{port}"],
        cwd=tmp_path / "site",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        health = _get_when_up(f"http://127.0.0.1:{port}/healthz", server)
        assert health == "ok"
        page = _get_when_up(f"http://127.0.0.1:{port}/subscribe", server)
        assert "<form" in page and 'name="email"' in page
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output


def _get_when_up(url: str, server: subprocess.Popen) -> str:
    """The body of ``url``, once the server has started (it fails the test if it exits)."""
    for _ in range(300):
        if server.poll() is not None:
            pytest.fail(f"serve exited with {server.returncode}: {server.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except OSError:
            time.sleep(0.1)  # waiting for a child process to listen, not timing anything
    pytest.fail(f"{url} never answered")
