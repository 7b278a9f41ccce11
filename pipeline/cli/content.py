"""Commands that move articles: check, ingest, feeds, post, run, history."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import click

from pipeline.cli.app import (
    ADOPT_KEY,
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_PARTIAL,
    Project,
    command,
    count_outcomes,
    main,
    pass_project,
    print_error,
    print_outcomes,
    progress,
    shown,
)
from pipeline.errors import ConfigError, PipelineError, Problem, StorageError, StoreError

if TYPE_CHECKING:
    from pipeline.assembly import Assembly


@main.command()
@pass_project
@command
def check(project: Project) -> int:
    """Validate config, schedules and templates; list every problem."""
    from pipeline.settings.sources import MarkdownSourceSettings

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
        if isinstance(s, MarkdownSourceSettings) and not s.path.is_dir()
    ]
    from pipeline.channels.compose import load_channel_template
    from pipeline.plugins import CHANNELS

    for options in settings.channels.values():
        try:
            assert options.template is not None
            channel = project.plugins.load(CHANNELS, options.type)  # only the ones configured
            load_channel_template(options.template, autoescape=channel.autoescape)
        except ConfigError as exc:
            problems.extend(exc.problems)
    from pipeline.digest.render import check_template

    warnings: list[str] = []
    for name, digest in settings.digests.items():
        try:
            warnings.extend(f"digest {name}: {w}" for w in check_template(digest, settings.site))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if settings.email is not None and settings.email.welcome.enabled:
        from pipeline.welcome import welcome_problems  # with the store's modules: only if used

        problems += welcome_problems(settings, project.clock())
    schedules = None
    try:
        schedules = project.schedules()
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    # Warnings: each check appends its one-line warnings to this list.
    if schedules is not None:
        from pipeline.schedule_warnings import schedule_warnings

        now = project.clock()
        warnings += schedule_warnings(settings, schedules, shown(project.schedules_file), now)
    warnings += _unreached_subscribers(project)
    from pipeline.correction_policy import correction_warnings

    warnings += correction_warnings(settings.channels, project.plugins)
    from pipeline.dkim import check_lines

    dkim_lines, dkim_warnings = check_lines(settings.email)
    warnings += dkim_warnings
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    extra = len(settings.feeds.extra)
    click.echo(
        f"{project.config_file}: OK — {len(settings.sources)} sources, "
        f"{1 + extra} feeds × {len(settings.feeds.formats)} formats, "
        f"{len(settings.channels)} channels, {len(settings.digests)} digests"
    )
    for line in dkim_lines:
        click.echo(line)
    if schedules is not None:
        click.echo(
            f"{shown(project.schedules_file)}: OK — {len(schedules.enabled())} schedules "
            f"({len(schedules.schedules) - len(schedules.enabled())} paused)"
        )
    return EXIT_OK


def _unreached_subscribers(project: Project) -> list[str]:
    """Active subscribers no digest reaches, from a state store that exists already
    (`check` never makes one, and a store it cannot open is one warning, not a failure)."""
    from pipeline.store_url import sqlite_file_missing

    settings = project.settings
    if sqlite_file_missing(settings.state):
        return []
    from pipeline.subscribers import SubscriberStore, unreached_message

    try:
        with project.store() as store:
            found = SubscriberStore(store.engine).unreached(settings.digests)
    except PipelineError as exc:
        return [f"subscribers not checked: {exc}"]
    return [unreached_message(subscriber, settings.digests) for subscriber in found]


@main.command("ingest")
@pass_project
@command
def ingest_command(project: Project) -> int:
    """Pull new and changed articles into the state store."""
    return _ingest_only(project)[0]


@main.command("feeds")
@pass_project
@command
def feeds_command(project: Project) -> int:
    """Write the RSS, Atom and JSON feeds."""
    with project.assembly() as parts:
        return _feeds(parts)


@main.command("post")
@click.argument("channels", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Show what each channel would receive; send nothing.")
@pass_project
@command
def post_command(project: Project, channels: tuple[str, ...], dry_run: bool) -> int:
    """Post summaries of articles not yet posted to CHANNELS (default: all)."""
    settings = project.settings
    unknown = [n for n in channels if n not in settings.channels]
    if unknown:
        known = ", ".join(settings.channels) or "none are configured"
        raise click.UsageError(f"unknown channel {', '.join(unknown)}; channels: {known}")
    if not settings.channels:
        return EXIT_OK
    with project.assembly() as parts, parts.http() as http:
        return _post(parts, parts.channels(http, channels, preview=dry_run), dry_run)


@main.command()
@pass_project
@command
def run(project: Project) -> int:
    """One cycle: ingest, feeds, then post."""
    with project.assembly() as parts, parts.http() as http:
        # Every stage is built before any runs: a broken template is a configuration
        # error while nothing has been changed yet, not after the feeds were written.
        sources, channels = parts.sources(http), parts.channels(http)
        ingested = _ingest(parts, sources)[0]
        try:
            written = _feeds(parts)
        except StorageError as exc:
            # Posting reads the state store, not the feed files: a full or read-only feed
            # folder must not hold back the posts too.
            print_error(f"error: {exc}")
            written = EXIT_PARTIAL
        posted = _post(parts, channels, dry_run=False) if channels else EXIT_OK
    return max(ingested, written, posted)


def _ingest_only(project: Project, *, adopting: bool = False) -> tuple[int, Any]:
    with project.assembly(adopting=adopting) as parts, parts.http() as http:
        return _ingest(parts, parts.sources(http))


def _ingest(parts: Assembly, sources: list[Any]) -> tuple[int, Any]:
    with progress("Ingesting") as step:
        report = parts.ingest(sources, on_source=step)
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
    return (EXIT_OK if report.ok else EXIT_PARTIAL), report


def _feeds(parts: Assembly) -> int:
    with progress("Writing feeds"):
        report = parts.write_feeds()
    for path in report.written:
        click.echo(f"wrote {shown(path)}")
    click.echo(f"feeds: {len(report.written)} written, {len(report.unchanged)} unchanged")
    return EXIT_OK


def _post(parts: Assembly, channels: dict[str, Any], dry_run: bool) -> int:
    with progress("Posting") as step:
        reports = parts.post(channels, dry_run=dry_run, on_channel=step)
    status = EXIT_OK
    for name, report in reports.items():
        for post in report.previews:
            limit = f"/{post.limit}" if post.limit else ""
            click.echo(f"── {name}: {post.article.id} ({post.length}{limit})")
            for note in post.notes:
                click.echo(f"note: {note}")
            click.echo(post.text)
            click.echo(json.dumps(post.body, ensure_ascii=False, indent=2, default=str))
        if not dry_run:
            corrected = f", {len(report.corrected)} corrected" if report.corrected else ""
            click.echo(f"{name}: {len(report.sent)} posted{corrected}{count_outcomes(report)}")
        print_outcomes(name, report)
        if not report.ok:
            status = EXIT_PARTIAL
    return status


@main.group("state")
def state_group() -> None:
    """The state store: start over on purpose after losing it."""


@state_group.command("adopt")
@pass_project
@command
def state_adopt(project: Project) -> int:
    """Start over on purpose: ingest every article and record it as already posted to
    every channel and already sent by every digest, so that only newer ones go out.

    For an empty state store whose project has published before (the database was lost
    and there is no backup). A store with a history is refused: it was not lost."""
    from pipeline.feeds import published_entries
    from pipeline.store import store_location

    settings = project.settings
    now = project.clock().replace(microsecond=0)
    with project.store(adopting=True) as store:
        if store.value(ADOPT_KEY).get("status") != "running" and store.holds_history():
            raise StoreError(
                f"the state store {store_location(settings.state)} already holds articles, "
                "posts or digests: it was not lost, and adopting would mark articles never "
                "posted as posted. Nothing was changed."
            )
        # Until the end, every other command refuses this store: a run between ingest
        # and the records below would post everything.
        store.save_value(ADOPT_KEY, {"status": "running", "started": now.isoformat()})
    status, report = _ingest_only(project, adopting=True)
    if report.unavailable:
        print_error(
            f"error: {', '.join(report.unavailable)} could not be read, so its articles "
            "cannot be recorded; run `pipeline state adopt` again when it can be (until "
            "then nothing else runs)"
        )
        return EXIT_CONFIG
    with project.store(adopting=True) as store:
        ids = store.live_ids()
        by_url = {a.url: a.id for a in store.latest(max(len(ids), 1))}
        published = published_entries(settings.site, settings.feeds)
        kept = store.restore_guids({by_url[u]: g for u, g in published.items() if u in by_url})
        _record_as_done(store, settings, ids, now)
        store.save_value(ADOPT_KEY, {"status": "done", "at": now.isoformat(), "articles": len(ids)})
    channels = ", ".join(settings.channels) or "(no channels)"
    digests = ", ".join(settings.digests) or "(no digests)"
    click.echo(
        f"adopted {len(ids)} articles: recorded as already posted to {channels} and as "
        f"already dealt with by the digests {digests}; {kept} keep the feed ids the "
        "published feeds show"
    )
    if report.rejected:
        click.echo(
            f"{len(report.rejected)} rejected files are not recorded: once fixed, they are "
            "new articles and will be posted and sent",
            err=True,
        )
    click.echo("from now on, only newer articles are posted and sent")
    return status


def _record_as_done(store: Any, settings: Any, ids: list[str], when: dt.datetime) -> None:
    """Every article as skipped by every channel (the ledger never sends a skipped item)
    and as passed over by every digest (an edition takes only articles no earlier one
    dealt with)."""
    from sqlalchemy import insert, select

    from pipeline.ledger import Ledger
    from pipeline.posting import post_stream
    from pipeline.schema import edition_articles as dealt

    reason = f"already published when the state store started over on {when:%Y-%m-%d %H:%M}Z"
    ledger = Ledger(store.engine)
    for name in settings.channels:
        for start in range(0, len(ids), 500):
            ledger.skip(post_stream(name), {i: reason for i in ids[start : start + 500]})
    with store.engine.begin() as conn:
        for name in settings.digests:
            done = set(conn.scalars(select(dealt.c.article_id).where(dealt.c.digest == name)))
            edition = f"{name}@adopted-{when:%Y-%m-%dT%H:%MZ}"  # no such edition: none sent
            rows = [
                {"digest": name, "article_id": i, "edition_id": edition, "carried": False}
                for i in ids
                if i not in done
            ]
            if rows:
                conn.execute(insert(dealt), rows)
