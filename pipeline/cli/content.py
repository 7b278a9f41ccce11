"""Commands that move articles: check, ingest, feeds, post, run, history."""

from __future__ import annotations

import json
import time

import click

from pipeline.cli.app import (
    EXIT_OK,
    EXIT_PARTIAL,
    Project,
    command,
    count_outcomes,
    main,
    pass_project,
    print_outcomes,
    progress,
    shown,
)
from pipeline.errors import ConfigError, Problem


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
    from pipeline.digest.render import check_template

    warnings: list[str] = []
    for name, digest in settings.digests.items():
        try:
            warnings.extend(f"digest {name}: {w}" for w in check_template(digest, settings.site))
        except ConfigError as exc:
            problems.extend(exc.problems)
    schedules = None
    try:
        schedules = project.schedules()
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    extra = len(settings.feeds.extra)
    click.echo(
        f"{project.config_file}: OK — {len(settings.sources)} sources, "
        f"{1 + extra} feeds × {len(settings.feeds.formats)} formats, "
        f"{len(settings.channels)} channels, {len(settings.digests)} digests"
    )
    if schedules is not None:
        click.echo(
            f"{shown(project.schedules_file)}: OK — {len(schedules.enabled())} schedules "
            f"({len(schedules.schedules) - len(schedules.enabled())} paused)"
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
    from pipeline.digest.history import edition_counts
    from pipeline.ledger import Ledger
    from pipeline.runs import RunLog

    with project.store() as store:
        entries = Ledger(store.engine).history("post:", limit=limit)
        counted = edition_counts(store.engine, limit=limit)
        runs = RunLog(store.engine).history(limit)
    if not entries and not counted and not runs:
        click.echo("nothing has been posted or sent yet")
    for r in runs:
        counts = ", ".join(f"{n} {kind}" for kind, n in r.counts.items())
        took = (
            f" in {(r.finished_at - r.started_at).total_seconds():.1f} s"
            if r.finished_at and r.started_at
            else ""
        )
        click.echo(
            f"{r.scheduled_for:%Y-%m-%d %H:%M}Z  run {r.schedule:<24} {r.outcome:<9} "
            f"{r.action}{': ' + counts if counts else ''}{took}"
        )
        for line in (r.detail or "").splitlines():
            click.echo(f"    {line}")
    for e in entries:
        where = e.remote_url or e.detail or ""
        click.echo(f"{e.updated_at:%Y-%m-%d %H:%M}Z  {e.stream:<24} {e.state:<9} {e.item}  {where}")
    for row in counted:
        counts = ", ".join(f"{n} {state}" for state, n in row.counts.items()) or "no recipients"
        click.echo(f"{row.when:%Y-%m-%d %H:%M}Z  edition {row.id:<36} {row.status:<9} {counts}")
        if row.detail:
            click.echo(f"    {row.detail}")
    for e in Ledger(store.engine).history("mail:", limit=limit):
        if e.state not in ("sent", "skipped"):
            click.echo(
                f"    {e.stream.removeprefix('mail:')}: subscriber {e.item} {e.state} — {e.detail}"
            )
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
    with project.store() as store, project.http() as http, progress("Ingesting") as step:
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
    with project.store() as store, progress("Writing feeds"):
        report = write_feeds(store, settings.site, settings.feeds)
    for path in report.written:
        click.echo(f"wrote {shown(path)}")
    click.echo(f"feeds: {len(report.written)} written, {len(report.unchanged)} unchanged")
    return EXIT_OK


def _post(project: Project, names: tuple[str, ...], dry_run: bool) -> int:

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
    with project.store() as store, project.http() as http, progress("Posting") as step:
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
            click.echo(f"{name}: {len(report.sent)} posted{count_outcomes(report)}")
        print_outcomes(name, report)
        if not report.ok:
            status = EXIT_PARTIAL
    return status
