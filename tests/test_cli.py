"""The command line, end to end on a copy of the example project."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from tests.conftest import write_article


def invoke(root: Path, *args: str):
    result = CliRunner().invoke(main, ["--config", str(root / "config" / "pipeline.yaml"), *args])
    return result


def feed_files(root: Path) -> dict[str, bytes]:
    out = root / "public" / "feeds"
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_run_on_the_example_site_writes_every_feed(project):
    root = project()
    result = invoke(root, "run")
    assert result.exit_code == 0, result.output
    assert "news: 8 added" in result.output
    files = feed_files(root)
    for folder in ("", "language/zh-cn/", "section/blog/", "tag/china/"):
        assert {f"{folder}rss.xml", f"{folder}atom.xml", f"{folder}feed.json"} <= set(files)
    main_atom = feedparser.parse(files["atom.xml"])
    assert main_atom.bozo == 0
    titles = [e.title for e in main_atom.entries]
    assert "2023年国际山岳日:恢复山地生态系统" in titles
    assert len(titles) == 13
    chinese = feedparser.parse(files["language/zh-cn/rss.xml"])
    assert chinese.bozo == 0 and len(chinese.entries) == 3


def test_second_run_changes_nothing_byte_for_byte(project):
    root = project()
    assert invoke(root, "run").exit_code == 0
    before = feed_files(root)
    mtimes = {p: p.stat().st_mtime_ns for p in (root / "public").rglob("*") if p.is_file()}
    result = invoke(root, "run")
    assert result.exit_code == 0
    assert (
        "8 added" not in result.output
        and "0 added, 0 updated, 0 removed, 8 unchanged" in result.output
    )
    assert feed_files(root) == before
    assert mtimes == {p: p.stat().st_mtime_ns for p in (root / "public").rglob("*") if p.is_file()}
    assert "0 written" in result.output


def test_bad_articles_are_named_and_the_rest_are_published(project):
    root = project()
    news = root / "examples" / "site" / "news"
    write_article(news, "no-title.md", "date: 2024-01-01")
    write_article(news, "bad-date.md", "title: T\ndate: yesterday")
    write_article(news, "bell.md", "title: T\ndate: 2024-01-01", "Ding\x07\n")
    result = invoke(root, "run")
    assert result.exit_code == 1
    assert "news: 8 added" in result.output and "3 rejected" in result.output
    err = result.stderr
    assert "no-title.md:2:1: `title` is required" in err
    assert "bad-date.md:3:7: `date`: 'yesterday' is not an ISO 8601 date" in err
    assert "bell.md:5:5: control character U+0007" in err
    assert len(feedparser.parse(feed_files(root)["atom.xml"]).entries) == 13


def test_config_error_exits_2_and_writes_nothing(project):
    root = project()
    config = root / "config" / "pipeline.yaml"
    config.write_text(config.read_text().replace("items: 50", "items: fifty"), encoding="utf-8")
    result = invoke(root, "run")
    assert result.exit_code == 2
    assert "pipeline.yaml:" in result.stderr and "feeds.items" in result.stderr
    assert "nothing was changed" in result.stderr
    assert not (root / "var").exists() and not (root / "public").exists()


def test_check_reports_a_missing_source_folder(project):
    root = project()
    assert invoke(root, "check").exit_code == 0
    (root / "examples" / "site" / "blog").rename(root / "examples" / "site" / "old-blog")
    result = invoke(root, "check")
    assert result.exit_code == 2 and "source blog: folder" in result.stderr


def test_check_reports_a_broken_digest_template_with_its_line(project):
    root = project()
    assert invoke(root, "templates", "copy", "digest.mjml.j2").exit_code == 0
    template = root / "templates" / "digest.mjml.j2"
    lines = template.read_text(encoding="utf-8").splitlines()
    broken_at = next(i for i, line in enumerate(lines) if "<mj-body" in line) + 2
    lines.insert(broken_at - 1, "<mj-colum><mj-text>{{ t.read_more }}</mj-text></mj-colum>")
    template.write_text("\n".join(lines), encoding="utf-8")
    result = invoke(root, "check")
    assert result.exit_code == 2
    assert f"digest.mjml.j2:{broken_at}" in result.stderr and "mj-column" in result.stderr


def test_unreadable_source_is_reported_and_the_others_ingested(project):
    root = project()
    config = root / "config" / "pipeline.yaml"
    config.write_text(config.read_text().replace("examples/site/blog", "examples/site/gone"))
    result = invoke(root, "ingest")
    assert result.exit_code == 1
    assert "news: 8 added" in result.output and "blog: not read" in result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX paths")
def test_the_installed_command_runs(project, state_url):
    root = project()
    env = {**os.environ, "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "run"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (root / "public" / "feeds" / "feed.json").exists()
    # The default store is a file under var/; with a PostgreSQL URL nothing is written there.
    assert (root / "var" / "state.db").exists() == state_url.startswith("sqlite")


def test_run_posts_every_example_article_once_to_the_file_channel(project):
    root = project()
    first = invoke(root, "run")
    assert first.exit_code == 0, first.output
    assert "archive: 13 posted" in first.output
    posts = (root / "var" / "posts.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(posts) == 13
    second = invoke(root, "run")
    assert "archive: 0 posted" in second.output
    assert len((root / "var" / "posts.jsonl").read_text(encoding="utf-8").splitlines()) == 13
    history = invoke(root, "history", "--limit", "100")
    assert history.output.count(" sent ") == 13 and "  post  archive  " in history.output


def test_post_dry_run_shows_the_text_and_records_nothing(project):
    root = project()
    invoke(root, "ingest")
    result = invoke(root, "post", "archive", "--dry-run")
    assert result.exit_code == 0
    assert "── archive: news/2023-12-11-guo-ji-shan-yue-ri-2023" in result.output
    assert "2023年国际山岳日:恢复山地生态系统" in result.output
    assert not (root / "var" / "posts.jsonl").exists()
    assert "nothing has been posted" in invoke(root, "history").output
    assert invoke(root, "post", "nope").exit_code == 2


def test_a_killed_post_run_is_never_repeated_blindly(project, httpserver):
    """A real `pipeline post` process is killed while its third request is in flight.

    The re-run must not send the in-flight article again (its fate is unknown: it is
    marked uncertain), must not resend the two that were confirmed, and sends the rest."""
    import json
    import signal
    import threading

    from werkzeug import Response

    root = project()
    config = root / "config" / "pipeline.yaml"
    config.write_text(
        config.read_text(encoding="utf-8")
        + f"""  hook:
    type: webhook
    url: {httpserver.url_for("/hook")}
    max_age_hours: 100000
    per_run: 50
""",
        encoding="utf-8",
    )
    assert invoke(root, "ingest").exit_code == 0
    received: list[str] = []
    in_flight, release = threading.Event(), threading.Event()

    def handler(request):
        received.append(request.get_json()["article"]["id"])
        if len(received) == 3:
            in_flight.set()
            release.wait(30)  # hold the third request until the process is dead
        return Response(json.dumps({"id": str(len(received))}), content_type="application/json")

    httpserver.expect_request("/hook", method="POST").respond_with_handler(handler)
    env = {**os.environ, "NO_COLOR": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "post", "hook"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert in_flight.wait(60), "the third post never arrived"
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        release.set()
    rerun = invoke(root, "post", "hook")
    assert rerun.exit_code == 1  # an uncertain post is reported
    assert "uncertain" in rerun.stderr
    assert len(received) == 13 and len(set(received)) == 13  # nothing twice
    history = invoke(root, "history", "--limit", "100").output
    assert history.count("  post  hook  ") == 13
    lines = history.splitlines()
    assert sum("  post  hook  " in line and " uncertain " in line for line in lines) == 1
    assert received[2] in next(line for line in history.splitlines() if " uncertain " in line)


def test_a_file_system_fault_in_any_command_is_one_line(project):
    """Faults no stage names itself (here `digest preview --out` onto a file) are still
    one line with the path and what to do, exit status 2, never a traceback."""
    root = project()
    assert invoke(root, "ingest").exit_code == 0
    (root / "taken").write_text("a file, not a folder")
    result = invoke(root, "digest", "preview", "weekly-en", "--out", str(root / "taken" / "here"))
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: cannot use ") and "project/taken" in line
    assert "a file stands where a folder should be" in line and "Traceback" not in result.output


def test_a_broken_channel_template_stops_run_before_anything_is_written(project):
    """Every stage is built before any runs: a configuration error in the last one is
    exit status 2 with nothing changed, not a message that lies after the feeds went out."""
    root = project()
    template = root / "templates" / "channels" / "file.txt.j2"
    template.parent.mkdir(parents=True)
    template.write_text("{{ article.title\n", encoding="utf-8")  # an unclosed tag
    result = invoke(root, "run")
    assert result.exit_code == 2, result.output
    assert "file.txt.j2:" in result.stderr and "nothing was changed" in result.stderr
    assert not (root / "public").exists()  # no feeds written
    assert "added" not in result.output  # nothing ingested
    template.unlink()
    fixed = invoke(root, "run")  # the store was left as it was: everything is new
    assert fixed.exit_code == 0 and "news: 8 added" in fixed.output
    assert "archive: 13 posted" in fixed.output


def test_run_reports_each_stage_and_exits_1_when_an_item_is_rejected(project):
    root = project()
    write_article(root / "examples" / "site" / "news", "no-title.md", "date: 2024-01-01")
    result = invoke(root, "run")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    ingested = lines.index(next(line for line in lines if line.startswith("news:")))
    written = lines.index(next(line for line in lines if line.startswith("feeds:")))
    posted = lines.index(next(line for line in lines if line.startswith("archive:")))
    assert ingested < written < posted
    assert "1 rejected" in lines[ingested] and lines[posted] == "archive: 13 posted"
