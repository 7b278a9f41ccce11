"""``pipeline init``: start a project folder that ``pipeline run`` works in at once."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from pipeline.cli.app import EXIT_CONFIG, EXIT_OK, command, main, print_error, shown
from pipeline.clock import system_clock
from pipeline.scaffold import Answers, init_project


@main.command("init")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False), default=".")
@click.option("--name", default=Answers.site_name, show_default=True, help="The site's name.")
@click.option("--url", default=Answers.site_url, show_default=True, help="The site's address.")
@click.option("--language", default=Answers.language, show_default=True, help="BCP 47 tag.")
@click.option("--timezone", default=Answers.timezone, show_default=True, help="IANA zone.")
@command
def init_command(folder: Path, name: str, url: str, language: str, timezone: str) -> int:
    """Write a commented config, schedules.yaml, one article and a .gitignore into FOLDER.

    Works offline; a file that exists already is kept as it is."""
    problems = _problems(name, url, language, timezone)
    if problems:
        for problem in problems:
            print_error(f"init: {problem}")
        return EXIT_CONFIG
    answers = Answers(name, url, language, timezone)
    done = init_project(folder, answers, system_clock().astimezone(ZoneInfo(timezone)).date())
    for path in done.written:
        click.echo(f"wrote {shown(path)}")
    for path in done.kept:
        click.echo(f"kept  {shown(path)} (already there)")
    from pipeline.settings import load_settings

    load_settings(folder / "config" / "pipeline.yaml")  # the files it leaves must be valid
    where = "" if folder.resolve() == Path.cwd() else f"cd {shown(folder)} && "
    click.echo(f"\nnext: {where}pipeline run    (then `pipeline --help` for the rest)")
    return EXIT_OK


def _problems(name: str, url: str, language: str, timezone: str) -> list[str]:
    problems = []
    if not name.strip() or not name.isprintable():
        problems.append("--name must be printable text on one line")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"--url {url!r} is not an http(s) address; e.g. https://news.example.org")
    if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*", language):
        problems.append(f"--language {language!r} is not a BCP 47 tag; e.g. en or zh-CN")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"--timezone {timezone!r} is not an IANA zone; e.g. Europe/London")
    return problems
