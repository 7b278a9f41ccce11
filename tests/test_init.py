"""`pipeline init` starts a project that runs at once; `pipeline templates` and the
packaged templates it relies on; `--version`."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

from click.testing import CliRunner

from pipeline.cli import main


def use_store(folder: Path, state_url: str) -> None:
    """On PostgreSQL, point the new project at this test's schema (SQLite: the default)."""
    if not state_url.startswith("sqlite"):
        config = folder / "config" / "pipeline.yaml"
        text = config.read_text(encoding="utf-8")
        assert "# state: sqlite:///var/state.db" in text
        config.write_text(text.replace("# state: sqlite:///var/state.db", f"state: {state_url}  #"))


def cli(folder: Path, *args: str):
    config = folder / "config" / "pipeline.yaml"
    return CliRunner().invoke(main, ["--config", str(config), *args])


def test_init_writes_a_project_that_runs_and_previews(tmp_path, monkeypatch, state_url):
    monkeypatch.chdir(tmp_path)
    made = CliRunner().invoke(main, ["init", "site", "--name", 'Lake "Side" News'])
    assert made.exit_code == 0, made.output
    site = tmp_path / "site"
    for written in ("config/pipeline.yaml", "schedules.yaml", "articles/welcome.md", ".gitignore"):
        assert (site / written).is_file() and f"wrote site/{written}" in made.output
    assert not (site / "templates").exists()  # the packaged ones serve until copied
    use_store(site, state_url)
    monkeypatch.chdir(site)
    assert cli(site, "check").exit_code == 0
    ran = cli(site, "run")
    assert ran.exit_code == 0, ran.output + ran.stderr
    assert "archive: 1 posted" in ran.output
    feed = json.loads((site / "public" / "feeds" / "feed.json").read_text())
    assert feed["title"] == 'Lake "Side" News'
    assert feed["items"][0]["title"] == 'Welcome to Lake "Side" News'
    assert cli(site, "digest", "preview", "weekly").exit_code == 0
    assert "Welcome to Lake" in (site / "var" / "preview" / "weekly.txt").read_text()


def test_init_never_overwrites_and_refuses_bad_answers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "schedules.yaml").write_text("# ours\n", encoding="utf-8")
    again = CliRunner().invoke(main, ["init"])
    assert again.exit_code == 0
    assert "kept  schedules.yaml (already there)" in again.output
    assert (tmp_path / "schedules.yaml").read_text() == "# ours\n"
    bad = CliRunner().invoke(main, ["init", "other", "--url", "ftp://x", "--timezone", "Mars/Base"])
    assert bad.exit_code == 2
    assert "--url 'ftp://x' is not an http(s) address" in bad.stderr
    assert "--timezone 'Mars/Base' is not an IANA zone" in bad.stderr
    assert not (tmp_path / "other").exists()


def test_a_copied_template_is_the_one_used(tmp_path, monkeypatch, state_url):
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    use_store(tmp_path, state_url)
    listed = cli(tmp_path, "templates", "list").output
    assert "channels/file.txt.j2" in listed and "packaged" in listed
    copied = cli(tmp_path, "templates", "copy", "channels/file.txt.j2")
    assert copied.exit_code == 0 and "wrote templates/channels/file.txt.j2" in copied.output
    own = tmp_path / "templates" / "channels" / "file.txt.j2"
    own.write_text("OURS {{ title }}\n", encoding="utf-8")
    assert "project (templates/channels/file.txt.j2)" in cli(tmp_path, "templates", "list").output
    assert "kept" in cli(tmp_path, "templates", "copy", "channels/file.txt.j2").output
    assert own.read_text() == "OURS {{ title }}\n"
    assert cli(tmp_path, "run").exit_code == 0
    posted = (tmp_path / "var" / "posts.jsonl").read_text(encoding="utf-8")
    assert "OURS Welcome to Newsroom" in posted
    unknown = cli(tmp_path, "templates", "copy", "channels/mastodn.txt.j2")
    assert unknown.exit_code == 2 and "did you mean `channels/mastodon.txt.j2`?" in unknown.stderr


def test_version_comes_from_the_package_metadata():
    shown = CliRunner().invoke(main, ["--version"]).output
    assert version("newsroom-pipeline") in shown
