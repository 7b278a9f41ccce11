"""Commands for deliveries whose fate is unknown, and the history of everything sent:
``deliveries uncertain``, ``deliveries settle``, ``history``.

An *uncertain* delivery is one that may or may not have arrived: the process died
mid-send, or the network stopped answering after the request went out. It is never
resent blindly (that could post or mail twice); a person checks, then settles it as
sent, or as not sent (it becomes pending and goes out on the next run).

Each uncertain delivery is shown with a short reference (eight hex digits, stable: a
hash of its stream and item) to settle it by; any unambiguous prefix of four or more
digits will do.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import click

from pipeline.cli.app import EXIT_OK, EXIT_PARTIAL, Project, command, main, pass_project

POST, MAIL = "post:", "mail:"


@dataclass(frozen=True)
class Unsure:
    """One uncertain delivery, as a person needs to see it."""

    ref: str
    stream: str
    item: str
    what: str  # "post to mastodon: https://…" or "weekly-en@… to anna@example.org"
    since: dt.datetime
    detail: str
    check: str  # where to look to find out whether it arrived


def reference(stream: str, item: str) -> str:
    return hashlib.sha256(f"{stream}\n{item}".encode()).hexdigest()[:8]


@main.group()
def deliveries() -> None:
    """Deliveries that may or may not have arrived: list them, settle them."""


@deliveries.command("uncertain")
@click.option("--channel", help="Only posts to this channel.")
@click.option("--digest", help="Only this digest (a name, or one edition's id).")
@pass_project
@command
def uncertain_command(project: Project, channel: str | None, digest: str | None) -> int:
    """List every uncertain delivery: who or where, why, and what to check."""
    with project.store() as store:
        found = _uncertain(project, store, channel, digest)
    for u in found:
        click.echo(f"{u.ref}  {u.what}  (since {u.since:%Y-%m-%d %H:%M}Z)")
        click.echo(f"          why: {u.detail}")
        click.echo(f"          check: {u.check}")
    noun = "delivery" if len(found) == 1 else "deliveries"
    click.echo(f"{len(found)} uncertain {noun}", err=True)
    if found:
        click.echo(
            "settle each with `pipeline deliveries settle REF --as sent` (it arrived) or "
            "`--as not-sent` (it did not: it goes out on the next run); "
            "`--all` settles every one listed",
            err=True,
        )
    return EXIT_OK


@deliveries.command("settle")
@click.argument("refs", nargs=-1)
@click.option(
    "--as",
    "verdict",
    type=click.Choice(["sent", "not-sent"]),
    required=True,
    help="sent: it arrived. not-sent: it did not; it is sent again on the next run.",
)
@click.option("--all", "every", is_flag=True, help="Every uncertain delivery (after filters).")
@click.option("--channel", help="With --all: only posts to this channel.")
@click.option("--digest", help="With --all: only this digest (a name, or an edition id).")
@click.option("--note", default="", help="Why, kept with the delivery (e.g. who checked).")
@pass_project
@command
def settle_command(
    project: Project,
    refs: tuple[str, ...],
    verdict: str,
    every: bool,
    channel: str | None,
    digest: str | None,
    note: str,
) -> int:
    """Settle uncertain deliveries REF… (or --all) as sent or not sent."""
    from pipeline.digest.editions import reopen
    from pipeline.ledger import Ledger

    if bool(refs) == every:
        raise click.UsageError("name the deliveries to settle (REF…) or give --all, not both")
    if (channel or digest) and not every:
        raise click.UsageError("--channel and --digest go with --all")
    status = EXIT_OK
    with project.store() as store:
        found = _uncertain(project, store, channel, digest)
        chosen: list[Unsure] = list(found) if every else []
        for ref in refs:
            matches = [u for u in found if len(ref) >= 4 and u.ref.startswith(ref.lower())]
            if len(matches) != 1:
                why = "matches several; give more digits" if matches else "is not uncertain"
                click.echo(f"{ref}: {why} (see `pipeline deliveries uncertain`)", err=True)
                status = EXIT_PARTIAL
            elif matches[0] not in chosen:
                chosen.append(matches[0])
        ledger = Ledger(store.engine)
        sent, settled = verdict == "sent", 0
        for u in chosen:
            if not ledger.settle_by_hand(u.stream, u.item, sent, note):
                click.echo(f"{u.ref}: settled meanwhile by someone else", err=True)
                status = EXIT_PARTIAL
                continue
            settled += 1
            if not sent and u.stream.startswith(MAIL):
                reopen(store.engine, u.stream.removeprefix(MAIL))
            click.echo(f"{u.ref}  {u.what}: {'sent' if sent else 'not sent, will be resent'}")
    if settled and not sent:
        click.echo(
            "the not-sent ones go out on the next `pipeline post` (posts) or "
            "`pipeline digest send NAME` (digests), or their schedules",
            err=True,
        )
    click.echo(f"{settled} settled", err=True)
    return status


def _uncertain(project: Project, store: Any, channel: str | None, digest: str | None) -> list:
    """Every uncertain delivery, filtered, with what a person needs to check it."""
    from pipeline.corrections import article_of, correction_kind
    from pipeline.ledger import Ledger

    prefix = f"{POST}{channel}" if channel else MAIL if digest else ""
    rows = [
        e
        for e in Ledger(store.engine).uncertain(prefix)
        if (not channel or e.stream == f"{POST}{channel}")
        and (not digest or _of_digest(e.stream, digest))
    ]
    ids = {int(e.item) for e in rows if e.stream.startswith(MAIL) and e.item.isdigit()}
    addresses = _addresses(store.engine, ids)
    found = []
    for e in rows:
        if e.stream.startswith(POST):
            name = e.stream.removeprefix(POST)
            article = store.get(article_of(e.item))
            url = article.url if article is not None else article_of(e.item)
            kind = f"{correction} of the " if (correction := correction_kind(e.item)) else ""
            what = f"{kind}post to {name}: {url} ({e.item})"
            check = _post_check(project, name, url, e.key)
        else:
            edition = e.stream.removeprefix(MAIL)
            address = addresses.get(e.item, f"subscriber #{e.item} (no longer on file)")
            what = f"{edition} to {address}"
            check = _mail_check(project, address, e.key)
        ref = reference(e.stream, e.item)
        found.append(Unsure(ref, e.stream, e.item, what, e.updated_at, e.detail or "", check))
    return found


def _of_digest(stream: str, digest: str) -> bool:
    edition = stream.removeprefix(MAIL)
    return stream.startswith(MAIL) and (edition == digest or edition.partition("@")[0] == digest)


def _addresses(engine: Any, ids: set[int]) -> dict[str, str]:
    from sqlalchemy import select

    from pipeline.schema import subscribers

    found: dict[str, str] = {}
    wanted = sorted(ids)
    with engine.connect() as conn:
        for start in range(0, len(wanted), 500):
            query = select(subscribers.c.id, subscribers.c.email).where(
                subscribers.c.id.in_(wanted[start : start + 500])
            )
            found.update({str(i): email for i, email in conn.execute(query)})
    return found


def _post_check(project: Project, channel: str, url: str, key: str | None) -> str:
    """Where a person looks to see whether a post went out, by network."""
    from pipeline.channels.bluesky import BlueskyOptions
    from pipeline.channels.discord import DiscordOptions
    from pipeline.channels.file import FileOptions
    from pipeline.channels.mastodon import MastodonOptions
    from pipeline.channels.slack import SlackOptions
    from pipeline.channels.teams import TeamsOptions
    from pipeline.channels.telegram import TelegramOptions
    from pipeline.channels.webhook import WebhookOptions
    from pipeline.settings.channels import ChannelOptions

    options = project.settings.channels.get(channel)
    match options:
        case MastodonOptions():
            return f"look in the Mastodon account on {options.instance} for a post of {url}"
        case BlueskyOptions():
            return f"look in the Bluesky account {options.handle} for a post of {url}"
        case SlackOptions() | DiscordOptions() | TeamsOptions():
            kind = options.type.title()
            return f"look in the {kind} channel the webhook posts to for a message about {url}"
        case TelegramOptions():
            return f"look in the Telegram chat {options.chat_id} for a message about {url}"
        case WebhookOptions():
            return f"ask the receiver of {options.url} whether it got Idempotency-Key {key}"
        case FileOptions():
            return f"look in {options.path} for a line with {url}"
        case ChannelOptions():  # a plug-in's network: only its name is known here
            return f"look wherever channel {channel} ({options.type}) posts for {url}"
    return f"look wherever channel {channel} posted for {url} (it is no longer configured)"


PROVIDER_LOGS = {
    "ses": "Amazon SES's sending events (the configuration set's event destination)",
    "mailgun": "Mailgun's logs (Sending → Logs)",
}


def _mail_check(project: Project, address: str, message_id: str | None) -> str:
    email = project.settings.email
    smtp = email.smtp if email is not None and email.delivery == "smtp" else None
    server = (
        f"the SMTP server's log ({smtp.host}:{smtp.effective_port})"
        if smtp
        else ("the outbox folder")
    )
    if email is not None and email.delivery in PROVIDER_LOGS:
        server = PROVIDER_LOGS[email.delivery]
    return f"ask {address}, or look in {server} for Message-ID {message_id}"


@main.command("history")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(["run", "post", "edition", "mail"]),  # timeline.KINDS
    help="Only these (repeat for more): scheduled runs, posts, digest editions, or each "
    "recipient's mail (shown only when asked for).  [default: run, post, edition]",
)
@click.option(
    "--since",
    metavar="WHEN",
    help="Only from then on: a duration back from now (7d, 12h, 30m, 2w) or a UTC date "
    "or time (2026-11-23, 2026-11-23T09:00).",
)
@click.option(
    "--digest",
    "digests",
    multiple=True,
    metavar="NAME",
    help="Only what concerns this digest: its editions, mails and runs (repeatable).",
)
@click.option(
    "--channel",
    "channels",
    multiple=True,
    metavar="NAME",
    help="Only what concerns this channel: its posts and the runs that post to it "
    "(repeatable; with --digest, what concerns either).",
)
@click.option("--json", "as_json", is_flag=True, help="A JSON list of the entries, for scripts.")
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(min=0),
    help="How many entries to show, newest first (0: all).",
)
@pass_project
@command
def history(
    project: Project,
    kinds: tuple[str, ...],
    since: str | None,
    digests: tuple[str, ...],
    channels: tuple[str, ...],
    as_json: bool,
    limit: int,
) -> int:
    """What was done, posted and sent, newest first, as one timeline: scheduled runs,
    posts and digest editions (under each, every recipient it did not reach); times
    in UTC. A skipped edition says why."""
    import json

    from pipeline.cli.tables import aligned, one_line
    from pipeline.timeline import DEFAULT_KINDS, Filters, parse_since, timeline

    try:
        start = parse_since(since) if since is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    settings = project.settings
    for noun, names, known in (
        ("digest", digests, settings.digests),
        ("channel", channels, settings.channels),
    ):
        for name in names:
            if name not in known:
                configured = ", ".join(known) or "none"
                click.echo(
                    f"warning: no {noun} {name!r} is configured ({noun}s: {configured})"
                    "; showing what the history holds of it",
                    err=True,
                )
    filters = Filters(tuple(dict.fromkeys(kinds)) or DEFAULT_KINDS, start, digests, channels)
    with project.store() as store:
        # One more than asked for: to say whether the limit left some out.
        events = timeline(store.engine, filters, limit + 1 if limit else None)
    more = bool(limit) and len(events) > limit
    events = events[:limit] if limit else events
    if as_json:
        click.echo(json.dumps([e.as_json() for e in events], ensure_ascii=False, indent=2))
    elif events:
        rows = [("WHEN (UTC)", "KIND", "NAME", "STATE", "DETAIL")]
        rows += [(f"{e.when:%Y-%m-%d %H:%M}Z", e.kind, e.name, e.state, e.detail) for e in events]
        lines = aligned(rows)
        click.echo(lines[0])
        for event, line in zip(events, lines[1:], strict=True):
            click.echo(line)
            for note in event.notes:
                click.echo(f"    {one_line(note)}")
    if not events:
        what = (
            "nothing matches these filters"
            if filters.narrowed
            else ("nothing has been posted or sent yet")
        )
        click.echo(what, err=True)
    elif more:
        click.echo(f"the newest {limit} shown; --limit 0 shows all", err=True)
    return EXIT_OK
