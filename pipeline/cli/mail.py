"""Commands for email: digest preview|send (subscribers: pipeline.cli.subscribers)."""

from __future__ import annotations

from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    shown,
)

if TYPE_CHECKING:
    from pipeline.settings import Settings


@main.group()
def digest() -> None:
    """Email digests: preview or send an edition."""


@digest.command("preview")
@click.argument("name")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder for NAME.html, NAME.txt and NAME.eml (default var/preview).",
)
@pass_project
@command
def digest_preview(project: Project, name: str, out_dir: Path | None) -> int:
    """Write NAME.html, NAME.txt and NAME.eml of the next edition; send nothing."""
    from pipeline.digest.editions import Edition
    from pipeline.mailer import wire_bytes
    from pipeline.subscribers import Subscriber

    settings = project.settings
    known_digest(settings, name)
    out = out_dir or settings.root / "var" / "preview"
    with project.assembly() as parts:
        digests = parts.digests(transport=_no_transport)
        rendered, articles = digests.preview(name)
        sample = Subscriber(
            0, "preview@example.org", "Preview", settings.digests[name].language, (), "active"
        )
        edition = Edition(f"{name}@preview", name, digests.clock(), "preview", (), rendered)
        message = digests.message(edition, settings.digests[name], sample, "preview-secret")
    out.mkdir(parents=True, exist_ok=True)
    data = wire_bytes(message)
    # the parts as a mail client reads them from those bytes
    received = BytesParser(policy=default_policy).parsebytes(data)
    assert isinstance(received, EmailMessage)
    html_part, text_part = received.get_body(("html",)), received.get_body(("plain",))
    assert html_part is not None and text_part is not None  # Digests.message writes both
    html, text = html_part.get_content(), text_part.get_content()
    (out / f"{name}.html").write_text(html, encoding="utf-8")
    (out / f"{name}.txt").write_text(text, encoding="utf-8")
    (out / f"{name}.eml").write_bytes(data)
    click.echo(f"{name}: {len(articles)} articles, subject {rendered.subject!r}")
    for warning in rendered.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"wrote {shown(out / (name + '.html'))}, .txt and .eml")
    # A preview is no edition: it has no web page for "View in your browser" to open.
    click.echo("note: a preview leaves out “View in your browser”; sent ones link to their page")
    return EXIT_OK


@digest.command("send")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Show the edition and its recipients; send nothing.")
@click.option(
    "--to",
    "address",
    metavar="ADDRESS",
    help="Send a test of the next edition to this one address only; record nothing.",
)
@pass_project
@command
def digest_send(project: Project, name: str, dry_run: bool, address: str | None) -> int:
    """Send the next edition of NAME now (or finish one a crash interrupted), and retry
    the recipients of earlier editions whose next attempt has come. With --to, send a
    test of it to one address instead (subject marked as a test; nothing is recorded,
    so the real edition is unchanged)."""

    from pipeline.digest.sending import SendStopped

    known_digest(project.settings, name)
    if address is not None:
        if dry_run:
            raise click.UsageError("--to sends one test message; leave out --dry-run")
        return _send_test(project, name, address)
    with project.assembly() as parts:
        digests = parts.digests()
        if dry_run:
            rendered, articles = digests.preview(name)
            audience = digests.audience(name)
            summary = f"{rendered.subject!r}, {len(articles)} articles, {len(audience)} recipients"
            click.echo(f"{name}: {summary}")
            for article in articles:
                click.echo(f"  {article.published:%Y-%m-%d}  {article.title}")
            return EXIT_OK
        try:
            report = digests.send(name)
        except SendStopped as stopped:
            # What went out before the server broke is said first: nobody should have
            # to guess whether to run it again (they can: nothing is sent twice).
            print_report(name, stopped.report)
            click.echo(
                f"error: {stopped.report.stopped}\n{name}: stopped early; the next "
                f"`pipeline digest send {name}` sends the rest",
                err=True,
            )
            return EXIT_PARTIAL
    print_report(name, report)
    return EXIT_OK if report.ok else EXIT_PARTIAL


def _send_test(project: Project, name: str, address: str) -> int:
    from pipeline.digest.trial import send_trial, trial_message
    from pipeline.errors import DeliveryFailed
    from pipeline.subscribers import normalise_email

    try:
        normalise_email(address)
    except ValueError as exc:
        raise click.BadParameter(
            f"{address!r} is not an email address ({exc}); write e.g. you@example.org",
            param_hint="--to",
        ) from None
    with project.assembly() as parts:
        trial = trial_message(parts.digests(), name, address)
        try:
            send_trial(parts.transport(), trial)
        except DeliveryFailed as exc:
            click.echo(f"error: {name}: the test to {address} was not sent: {exc}", err=True)
            return EXIT_PARTIAL
    who = "" if trial.subscriber else " (not a subscriber: sent as a new reader)"
    click.echo(
        f"{name}: test sent to {trial.message['To']}{who}: {len(trial.articles)} articles, "
        f"subject {trial.subject!r}; nothing was recorded"
    )
    fewest = project.settings.digests[name].min_items
    if len(trial.articles) < fewest:
        click.echo(
            f"warning: a real send now would skip this edition: {len(trial.articles)} new "
            f"articles; min_items is {fewest}",
            err=True,
        )
    return EXIT_OK


def print_report(name: str, report: Any) -> None:
    """What a send did: the edition's counts, the earlier editions it retried, each
    recipient that did not get it (by address, with why), and the uncertain ones' fix."""
    edition = report.edition
    if report.skipped:
        click.echo(f"{name}: edition skipped — {report.skipped}")
    elif report.already_done:
        click.echo(f"{name}: edition {edition.id if edition else ''} was already sent")
    counts = f"{len(report.sent)} sent{count_outcomes(report)}"
    if edition is not None and not (report.skipped or report.already_done):
        click.echo(f"{name}: edition {edition.id}: {counts}")
    elif report.earlier or not report.ok:
        click.echo(f"{name}: {counts}")
    if report.earlier:
        click.echo(f"{name}: finished or retried earlier editions {', '.join(report.earlier)}")
    if report.waiting:
        click.echo(f"{name}: {report.waiting} recipients wait for their next attempt")
    print_outcomes(name, report)
    if report.uncertain:
        click.echo(
            f"{name}: check the uncertain ones with `pipeline deliveries uncertain "
            f"--digest {name}`, then settle them",
            err=True,
        )


def known_digest(settings: Settings, name: str) -> None:
    if name not in settings.digests:
        known = ", ".join(settings.digests) or "none are configured"
        raise click.UsageError(f"unknown digest {name!r}; digests: {known}")


def _no_transport() -> Any:
    raise AssertionError("a preview never sends")
