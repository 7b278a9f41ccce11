"""Commands for returned mail: bounces import|list|show."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.app import EXIT_OK, EXIT_PARTIAL, Project, command, main, pass_project, shown


@main.group()
def bounces() -> None:
    """Returned mail and complaints: import reports, list suppressed addresses."""


@bounces.command("import")
@click.argument("path", type=click.Path(path_type=Path, exists=True))
@pass_project
@command
def bounces_import(project: Project, path: Path) -> int:
    """Read returned mail fetched elsewhere: one .eml file, an mbox file or a Maildir
    folder. Bounces mark subscribers bounced, complaints unsubscribe them; both
    suppress the address. Auto-replies are ignored."""
    from pipeline.bounce_inbox import open_returned_mail

    with project.store() as store:
        inbox = open_returned_mail(project.settings, store, project.clock)
        report = inbox.import_path(path)
    counts = ", ".join(
        f"{report.counts[kind]} {kind}"
        for kind in ("bounce", "delay", "complaint", "ignored", "unrecognised", "unreadable")
        if report.counts[kind]
    )
    click.echo(f"{shown(path)}: {counts or 'no messages'}")
    for outcome in report.outcomes:
        click.echo(f"  {outcome}")
    for what in report.unrecognised:
        click.echo(f"not a report: {what}", err=True)
    for what in report.unreadable:
        click.echo(f"unreadable: {what}", err=True)
    return EXIT_PARTIAL if report.unreadable else EXIT_OK


@bounces.command("list")
@pass_project
@command
def bounces_list(project: Project) -> int:
    """Every suppressed address (never mailed again): address, kind, since (UTC),
    source and reason, tab-separated."""
    from pipeline.suppression import Suppressions

    with project.store() as store:
        found = Suppressions(store.engine).all()
    for s in found:
        click.echo(f"{s.address}\t{s.kind}\t{s.since:%Y-%m-%d %H:%M}\t{s.source}\t{s.reason}")
    click.echo(f"{len(found)} suppressed addresses", err=True)
    return EXIT_OK


@bounces.command("show")
@click.argument("address")
@pass_project
@command
def bounces_show(project: Project, address: str) -> int:
    """Why ADDRESS is (or is not) mailed: its subscriber status, its suppression, and
    every report received about it."""
    from pipeline.subscribers import SubscriberStore
    from pipeline.suppression import Suppressions

    with project.store() as store:
        suppressions = Suppressions(store.engine)
        person = SubscriberStore(store.engine).get(address)
        held = suppressions.get(address)
        reports = suppressions.history(address)
    if person is not None:
        why = f" ({person.status_detail})" if person.status_detail else ""
        click.echo(f"subscriber: {person.email}, {person.status}{why}")
    else:
        click.echo(f"subscriber: none with the address {address}")
    click.echo(held.describe() if held else "not suppressed")
    for r in reports:
        when = f"{r.received:%Y-%m-%d %H:%M}Z"
        click.echo(f"  {when}  {r.kind}  {r.source}  {r.reason}  → {r.outcome}")
    return EXIT_OK
