"""The ``pipeline`` command.

Exit status: 0 all done; 1 done except for items that were rejected or failed (each
named, the rest delivered); 2 bad usage or configuration (nothing changed).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any

import click
import requests

from pipeline.errors import ConfigError, PipelineError, Problem, StoreError
from pipeline.settings import Settings, load_settings

EXIT_OK, EXIT_PARTIAL, EXIT_CONFIG = 0, 1, 2
USER_AGENT = "newsroom-pipeline/0.1 (+https://github.com/)"


@dataclass
class Project:
    """The files named on the command line, loaded on first use."""

    config_file: Path
    schedules_file: Path
    _settings: Settings | None = field(default=None, init=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file)
        return self._settings

    @contextmanager
    def store(self) -> Iterator[Any]:
        from pipeline.store import Store

        store = Store(self.settings.state, self.settings.site.url)
        try:
            yield store
        finally:
            store.close()

    @contextmanager
    def http(self) -> Iterator[requests.Session]:
        with requests.Session() as session:
            session.headers["User-Agent"] = USER_AGENT
            yield session


def command(func: Callable[..., int]) -> Callable[..., None]:
    """Run a command, turning known errors into their message and exit status."""

    @wraps(func)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            status = func(*args, **kwargs)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            noun = "problem" if len(exc.problems) == 1 else "problems"
            click.echo(f"{len(exc.problems)} {noun}; nothing was changed.", err=True)
            status = EXIT_CONFIG
        except StoreError as exc:
            click.echo(f"error: {exc}", err=True)
            status = EXIT_CONFIG
        except PipelineError as exc:
            click.echo(f"error: {exc}", err=True)
            status = EXIT_PARTIAL
        sys.exit(status)

    return run


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("config/pipeline.yaml"),
    envvar="PIPELINE_CONFIG",
    show_default=True,
    help="What to publish and where.",
)
@click.option(
    "--schedules",
    "schedules_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("schedules.yaml"),
    envvar="PIPELINE_SCHEDULES",
    show_default=True,
    help="When to do it.",
)
@click.version_option(package_name="newsroom-pipeline")
@click.pass_context
def main(ctx: click.Context, config_file: Path, schedules_file: Path) -> None:
    """Newsroom publishing pipeline: sources in; feeds, digests and posts out."""
    ctx.obj = Project(config_file, schedules_file)


pass_project = click.make_pass_decorator(Project)


@main.command()
@pass_project
@command
def check(project: Project) -> int:
    """Validate config, schedules and templates; list every problem."""
    settings = project.settings
    problems = [
        Problem(
            str(project.config_file),
            None,
            None,
            f"source {s.name}: folder {s.path} not found",
            "create it or fix `path:`",
        )
        for s in settings.sources
        if getattr(s, "path", None) is not None and not s.path.is_dir()
    ]
    from pipeline.channels import channel_types
    from pipeline.channels.compose import load_template

    for options in settings.channels.values():
        try:
            assert options.template is not None
            load_template(options.template, autoescape=channel_types()[options.type].autoescape)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    extra = len(settings.feeds.extra)
    click.echo(
        f"{project.config_file}: OK — {len(settings.sources)} sources, "
        f"{1 + extra} feeds × {len(settings.feeds.formats)} formats, "
        f"{len(settings.channels)} channels"
    )
    return EXIT_OK


@main.command("ingest")
@pass_project
@command
def ingest_command(project: Project) -> int:
    """Pull new and changed articles into the state store."""
    return _ingest(project)


@main.command("feeds")
@pass_project
@command
def feeds_command(project: Project) -> int:
    """Write the RSS, Atom and JSON feeds."""
    return _feeds(project)


@main.command("post")
@click.argument("channels", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Show what each channel would receive; send nothing.")
@pass_project
@command
def post_command(project: Project, channels: tuple[str, ...], dry_run: bool) -> int:
    """Post summaries of articles not yet posted to CHANNELS (default: all)."""
    return _post(project, channels, dry_run)


@main.command()
@click.option("--limit", default=50, show_default=True, help="How many rows to show.")
@pass_project
@command
def history(project: Project, limit: int) -> int:
    """What was posted or sent, what failed and why."""
    from pipeline.ledger import Ledger

    with project.store() as store:
        entries = Ledger(store.engine).history(limit=limit)
    if not entries:
        click.echo("nothing has been posted or sent yet")
    for e in entries:
        where = e.remote_url or e.detail or ""
        click.echo(f"{e.updated_at:%Y-%m-%d %H:%M}Z  {e.stream:<24} {e.state:<9} {e.item}  {where}")
    return EXIT_OK


@main.command()
@pass_project
@command
def run(project: Project) -> int:
    """One cycle: ingest, feeds, then post."""
    ingested = _ingest(project)
    written = _feeds(project)
    posted = _post(project, (), dry_run=False)
    return max(ingested, written, posted)


def _ingest(project: Project) -> int:
    from pipeline.ingest import ingest
    from pipeline.sources import build_sources

    settings = project.settings
    with project.store() as store, project.http() as http, _progress("Ingesting") as step:
        sources = build_sources(settings.sources, settings.site, http)
        report = ingest(sources, store, on_source=step)
    for name, stored in report.stored.items():
        click.echo(
            f"{name}: {len(stored.added)} added, {len(stored.updated)} updated, "
            f"{len(stored.removed)} removed, {stored.unchanged} unchanged"
            + (f", {len(stored.rejected)} rejected" if stored.rejected else "")
        )
    for name, reason in report.unavailable.items():
        click.echo(f"{name}: not read — {reason}", err=True)
    for problem in report.rejected:
        click.echo(f"rejected: {problem}", err=True)
    return EXIT_OK if report.ok else EXIT_PARTIAL


def _feeds(project: Project) -> int:
    from pipeline.feeds import write_feeds

    settings = project.settings
    with project.store() as store, _progress("Writing feeds"):
        report = write_feeds(store, settings.site, settings.feeds)
    for path in report.written:
        click.echo(f"wrote {_shown(path)}")
    click.echo(f"feeds: {len(report.written)} written, {len(report.unchanged)} unchanged")
    return EXIT_OK


def _post(project: Project, names: tuple[str, ...], dry_run: bool) -> int:
    import time

    from pipeline.channels import ChannelContext, build_channels
    from pipeline.ledger import Ledger
    from pipeline.posting import Poster

    settings = project.settings
    unknown = [n for n in names if n not in settings.channels]
    if unknown:
        known = ", ".join(settings.channels) or "none are configured"
        raise click.UsageError(f"unknown channel {', '.join(unknown)}; channels: {known}")
    chosen = {n: o for n, o in settings.channels.items() if not names or n in names}
    if not chosen:
        return EXIT_OK
    with project.store() as store, project.http() as http, _progress("Posting") as step:
        context = ChannelContext(http=http, site=settings.site, memory=store)
        channels = build_channels(chosen, context)
        poster = Poster(store, Ledger(store.engine), sleep=time.sleep)
        reports = {}
        for name, channel in channels.items():
            step(name)
            reports.update(poster.run([channel], dry_run=dry_run))
    status = EXIT_OK
    for name, report in reports.items():
        for post in report.previews:
            limit = f"/{post.limit}" if post.limit else ""
            click.echo(f"── {name}: {post.article.id} ({post.length}{limit})")
            click.echo(post.text)
            click.echo(json.dumps(post.body, ensure_ascii=False, indent=2, default=str))
        if not dry_run:
            click.echo(
                f"{name}: {len(report.sent)} posted"
                + "".join(
                    f", {len(rows)} {label}"
                    for label, rows in (
                        ("failed", report.failed),
                        ("pending", report.pending),
                        ("uncertain", report.uncertain),
                    )
                    if rows
                )
            )
        for label, rows in (
            ("failed", report.failed),
            ("pending", report.pending),
            ("uncertain", report.uncertain),
        ):
            for article_id, reason in rows:
                click.echo(f"{name}: {label}: {article_id} — {reason}", err=True)
        if not report.ok:
            status = EXIT_PARTIAL
    return status


@contextmanager
def _progress(label: str) -> Iterator[Callable[[str], None]]:
    """A spinner naming the current step, on a terminal only; logs stay quiet."""
    if not sys.stderr.isatty():
        yield lambda name: None
        return
    from rich.console import Console

    with Console(stderr=True).status(label) as status:
        yield lambda name: status.update(f"{label}: {name}")


def _shown(path: Path) -> str:
    from pipeline.errors import display_path

    return display_path(path)
