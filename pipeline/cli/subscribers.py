"""Commands for subscribers: import|add|list|show|export|remove."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from pipeline.cli.app import EXIT_OK, EXIT_PARTIAL, Project, command, main, pass_project, shown
from pipeline.cli.mail import known_digest


@main.group()
def subscribers() -> None:
    """Manage subscribers: import, add, list, show, export, remove."""


@subscribers.command("import")
@click.argument("csv_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--map",
    "mapping",
    metavar="FIELD=COLUMN,...",
    help="Which column holds which field, e.g. --map 'email=E-Mail,name=Full name' "
    "(fields: email, name, first_name, last_name, language, topics, status, consent_at, ...).",
)
@pass_project
@command
def subscribers_import(project: Project, csv_file: Path, mapping: str | None) -> int:
    """Add or update subscribers from FILE.csv: this pipeline's columns (email, name,
    language, topics, ...), or an export of Mailchimp, listmonk or Buttondown as it is."""
    from pipeline.subscriber_formats import parse_map
    from pipeline.subscribers import SubscriberStore

    if mapping is not None:
        try:
            parse_map(mapping)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--map") from None
    settings = project.settings
    with project.store() as store:
        report = SubscriberStore(store.engine, project.clock).import_csv(
            csv_file, settings.site.language, settings.digests, mapping
        )
    if report.tool in ("Mailchimp", "listmonk", "Buttondown"):
        click.echo(f"{shown(csv_file)}: read as a {report.tool} export")
    print_report(report)
    return EXIT_PARTIAL if report.rejected else EXIT_OK


def print_report(report: Any) -> None:
    click.echo(
        f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged"
        + (f", {len(report.rejected)} rejected" if report.rejected else "")
    )
    for email in report.kept_inactive:
        click.echo(f"kept unsubscribed/bounced: {email} (only they can re-subscribe)")
    for held in report.suppressed:
        click.echo(f"kept suppressed: {held} (see `pipeline bounces list`)")
    for marked in report.marked_inactive:
        click.echo(f"not mailed: {marked}")
    for problem in report.unreached:  # imported all the same: a warning, not a failure
        click.echo(f"warning: {problem}", err=True)
    for problem in report.rejected:
        click.echo(f"rejected: {problem}", err=True)


@subscribers.command("add")
@click.argument("email")
@click.option("--name", default=None, help="Their name, as mail shows it.")
@click.option("--language", default=None, help="Their language (default: the site's).")
@click.option("--topics", default=None, help="Topics they chose, separated by ';'.")
@pass_project
@command
def subscribers_add(
    project: Project, email: str, name: str | None, language: str | None, topics: str | None
) -> int:
    """Add one subscriber as active (consent: "added by staff", now), or update a known
    one; never makes an unsubscribed, bounced or suppressed person active."""
    from pipeline.subscriber_formats import Layout, RowReader
    from pipeline.subscriber_import import SubscriberImport
    from pipeline.subscribers import ImportReport

    settings = project.settings
    given = {"email": 0, "name": 1, "language": 2, "topics": 3, "consent_at": 4}
    values = [email, name or "", language or "", topics or "", project.clock().isoformat()]
    chosen = {k: i for k, i in given.items() if k in ("email", "consent_at") or values[i]}
    layout = Layout("staff", chosen, "added by staff")
    try:
        person = RowReader(layout, settings.site.language).read(1, values)
    except ValueError as exc:
        raise click.UsageError(f"{email}: {exc}") from None
    report = ImportReport()
    with project.store() as store:
        SubscriberImport(store.engine, project.clock).store(
            [person], layout.given, report, "subscribers add", settings.digests
        )
    if report.added:
        click.echo(f"added {person.email}")
    elif report.updated:
        click.echo(f"updated {person.email}")
    else:
        click.echo(f"{person.email} is already a subscriber; nothing changed")
    for problem in report.unreached:
        click.echo(f"warning: {problem.message}", err=True)
    for held in report.suppressed:
        click.echo(f"kept suppressed: {held} (see `pipeline bounces list`)", err=True)
    for kept in report.kept_inactive:
        click.echo(f"kept unsubscribed/bounced: {kept} (only they can re-subscribe)", err=True)
    return EXIT_PARTIAL if report.suppressed or report.kept_inactive else EXIT_OK


@subscribers.command("list")
@click.option(
    "--status",
    type=click.Choice(["active", "pending", "unsubscribed", "bounced"]),
    help="Only those with this status for some digest (with --digest: for that one).",
)
@click.option("--digest", metavar="NAME", help="Only those this digest concerns.")
@pass_project
@command
def subscribers_list(project: Project, status: str | None, digest: str | None) -> int:
    """List subscribers: email, name, language, topics, status, and their status for
    each digest that concerns them (e.g. `weekly-en: unsubscribed` for one who left it),
    tab-separated; then "paused until DATE" for one who paused their digests."""
    from pipeline.clock import naive_utc
    from pipeline.status import digest_statuses
    from pipeline.subscriber_export import is_paused

    settings = project.settings
    if digest is not None:
        known_digest(settings, digest)
    now = naive_utc(project.clock())
    with project.store() as store:
        everyone = digest_statuses(store.engine, settings.digests)
    found = []
    for s, states in everyone:
        if digest is not None and digest not in states:
            continue
        # Matched per digest; someone no digest concerns, by their own status.
        shown_states = [states[digest]] if digest else list(states.values()) or [s.status]
        if status is not None and status not in shown_states:
            continue
        found.append(s)
        per_digest = ", ".join(f"{name}: {state}" for name, state in states.items())
        topics = ";".join(s.topics)
        line = f"{s.email}\t{s.name}\t{s.language}\t{topics}\t{s.status}\t{per_digest}"
        if is_paused(s, now) and s.paused_until is not None:
            line += f"\tpaused until {s.paused_until:%Y-%m-%d}"
        click.echo(line)
    click.echo(f"{len(found)} subscribers", err=True)
    return EXIT_OK


@subscribers.command("show")
@click.argument("email")
@pass_project
@command
def subscribers_show(project: Project, email: str) -> int:
    """Everything kept about one subscriber: details, status for each digest, paused
    until, consent (source and date), created, and a suppression if any."""
    from sqlalchemy import select

    from pipeline.clock import naive_utc
    from pipeline.schema import list_unsubscribes
    from pipeline.status import digest_status
    from pipeline.subscriber_export import is_paused, moment
    from pipeline.subscribers import SubscriberStore
    from pipeline.suppression import Suppressions

    settings = project.settings
    with project.store() as store:
        found = SubscriberStore(store.engine).get(email)
        if found is None:
            click.echo(f"no subscriber {email}", err=True)
            return EXIT_PARTIAL
        with store.engine.connect() as conn:
            query = select(list_unsubscribes.c.list_name).where(
                list_unsubscribes.c.subscriber_id == found.id
            )
            left = set(conn.scalars(query))
        held = Suppressions(store.engine).of_subscriber(found.email)
    states = {
        name: state
        for name, options in settings.digests.items()
        if (state := digest_status(found, name, options, left)) is not None
    }
    pause = "not paused"
    if found.paused_until is not None:
        over = not is_paused(found, naive_utc(project.clock()))
        pause = moment(found.paused_until) + (" (over)" if over else "")
    lines = [
        ("email", found.email),
        ("name", found.name),
        ("language", found.language),
        ("topics", ";".join(found.topics)),
        ("status", found.status + (f" ({found.status_detail})" if found.status_detail else "")),
        ("digests", ", ".join(f"{n}: {s}" for n, s in states.items()) or "none concern them"),
        ("paused until", pause),
        ("consent source", found.consent_source or "not recorded"),
        ("consent date", moment(found.consent_at) or "not recorded"),
        ("created", moment(found.created_at)),
    ]
    if held is not None:
        lines.append(("suppressed", held.describe()))
    for label, value in lines:
        click.echo(f"{label + ':':<16}{value}")
    return EXIT_OK


@subscribers.command("export")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write to this file (default: standard output).",
)
@pass_project
@command
def subscribers_export(project: Project, fmt: str, output: Path | None) -> int:
    """Every subscriber with each digest's status, paused until and consent; the CSV
    imports back as it is (`pipeline subscribers import FILE`)."""
    from pipeline.subscriber_export import records, write_csv, write_json

    with project.store() as store:
        rows = records(store.engine, project.settings.digests)
    write = write_csv if fmt == "csv" else write_json
    if output is None:
        write(rows, sys.stdout)
    else:
        with output.open("w", encoding="utf-8", newline="") as out:
            write(rows, out)
        click.echo(f"wrote {len(rows)} subscribers to {shown(output)}", err=True)
    return EXIT_OK


@subscribers.command("remove")
@click.argument("email")
@pass_project
@command
def subscribers_remove(project: Project, email: str) -> int:
    """Delete a subscriber and their personal data."""
    from pipeline.subscribers import SubscriberStore

    with project.store() as store:
        removed = SubscriberStore(store.engine).remove(email)
    if not removed:
        click.echo(f"no subscriber {email}", err=True)
        return EXIT_PARTIAL
    click.echo(f"removed {email}")
    return EXIT_OK
