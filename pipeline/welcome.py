"""The welcome email: one message to a subscriber who has just confirmed their sign-up
(``email.welcome.enabled``), in their language, from ``templates/welcome/LANG.txt.j2``
(the project's own, else the packaged English or Chinese one).

It is sent at most once per subscriber, ever: the delivery ledger's ``welcome`` stream
is claimed for the subscriber's id before the mail server is touched, and a claim is
one row that only one transaction can insert, so any number of presses of the confirm
link, in any number of processes, send one welcome. Someone who leaves and comes back
is not welcomed again. A suppressed address (a complaint, a bounce not lifted by the
confirmation) is recorded as skipped, never mailed; a refusal by the mail server is
recorded as failed and the confirmation stands.

The template's output starts with a ``Subject:`` line and a blank line; the rest is the
plain-text body. It sees ``site``, ``name``, ``email``, ``digests`` (the titles of the
digests that reach them), ``preferences_url`` and ``t`` (pipeline/i18n.py's words).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path

import jinja2

from pipeline import i18n
from pipeline.clock import Clock, system_clock
from pipeline.digest.message import recipient
from pipeline.errors import ConfigError, DeliveryFailed, Problem, display_path
from pipeline.ledger import FAILED, SENT, Ledger
from pipeline.mailer import MailerBroken, Transport
from pipeline.preferences import preferences_url
from pipeline.settings import Settings
from pipeline.store import Store
from pipeline.subscribers import Subscriber, reached_by
from pipeline.suppression import Suppressions
from pipeline.templating import TEMPLATES, load_template

STREAM = "welcome"  # the ledger stream; its items are subscriber ids


def welcome_template(settings: Settings, language: str) -> Path:
    """The template for a language: ``templates/welcome/<catalog key>.txt.j2``, the
    project's own if it has one (``load_template`` falls back to the packaged one)."""
    return settings.root / TEMPLATES / "welcome" / f"{i18n.catalog_key(language)}.txt.j2"


class Welcome:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        transport: Callable[[], Transport],
        secret: str,
        clock: Clock = system_clock,
    ):
        assert settings.email is not None, "welcome emails need an `email:` section"
        self.settings = settings
        self.email = settings.email
        self.transport = transport
        self.secret = secret
        self.clock = clock
        self.ledger = Ledger(store.engine, clock)
        self.suppressions = Suppressions(store.engine, clock)

    @property
    def enabled(self) -> bool:
        return self.email.welcome.enabled

    def send(self, subscriber: Subscriber) -> bool:
        """Welcome a subscriber who just confirmed, unless switched off, suppressed or
        welcomed before (by this or any other process); True if this call sent it."""
        if not self.enabled:
            return False
        item = str(subscriber.id)
        message = self.message(subscriber)  # a template mistake shows before any claim
        held = self.suppressions.of_subscriber(subscriber.email)
        if held is not None:
            self.ledger.skip(STREAM, {item: f"the address is suppressed ({held.kind})"})
            return False
        identifier = str(message["Message-ID"])
        if not self.ledger.claim(STREAM, item, identifier):
            return False
        transport = self.transport()
        try:
            transport.send(message)
        except (DeliveryFailed, MailerBroken) as exc:
            self.ledger.settle(STREAM, item, FAILED, detail=str(exc))
            return False
        finally:
            transport.close()
        self.ledger.settle(STREAM, item, SENT, remote_id=identifier)
        return True

    def message(self, subscriber: Subscriber) -> EmailMessage:
        return welcome_message(self.settings, subscriber, self.secret, self.clock())


def welcome_message(
    settings: Settings, subscriber: Subscriber, secret: str, now: dt.datetime
) -> EmailMessage:
    """The welcome for ``subscriber``; ConfigError names the template and what is wrong
    with it (``pipeline check`` tries each language's this way)."""
    email, site = settings.email, settings.site
    assert email is not None
    path = welcome_template(settings, subscriber.language)
    template = load_template(path, autoescape=False)
    digests = [settings.digests[name].title for name in reached_by(subscriber, settings.digests)]
    try:
        text = template.render(
            site=site,
            name=" ".join(subscriber.name.split()),
            email=subscriber.email,
            digests=digests,
            preferences_url=preferences_url(email.unsubscribe.origin, secret, subscriber),
            t=i18n.words(subscriber.language, site=site.name),
        )
    except jinja2.TemplateError as exc:
        raise ConfigError(
            [Problem(display_path(path), None, None, f"template error: {exc}")]
        ) from None
    head, _, body = text.lstrip().partition("\n")
    label, _, subject = head.partition(":")
    if label.strip().lower() != "subject" or not subject.strip():
        hint = "start the template with a line `Subject: …`, then a blank line"
        raise ConfigError([Problem(display_path(path), 1, None, "no subject line", hint)])
    message = EmailMessage()
    message["From"] = email.from_
    message["To"] = recipient(subscriber.name, subscriber.email)
    if email.reply_to:
        message["Reply-To"] = email.reply_to
    message["Subject"] = subject.strip()
    message["Date"] = format_datetime(now.astimezone(dt.UTC))
    # The same for every attempt at one subscriber's welcome (the ledger keeps it).
    domain = parseaddr(email.from_)[1].rpartition("@")[2] or "localhost"
    digest = hashlib.sha256(f"welcome\n{subscriber.id}\n{subscriber.email}".encode())
    message["Message-ID"] = f"<welcome.{digest.hexdigest()[:32]}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body.strip("\n") + "\n")
    message["Content-Language"] = subscriber.language  # after: set_content clears Content-*
    return message


def welcome_problems(settings: Settings, now: dt.datetime) -> list[Problem]:
    """What is wrong with the welcome template of each language a subscriber may have
    (the digests' and the site's), tried on a sample reader; none when switched off."""
    if settings.email is None or not settings.email.welcome.enabled:
        return []
    languages = {settings.site.language, *(d.language for d in settings.digests.values())}
    problems: list[Problem] = []
    for language in sorted(languages):
        sample = Subscriber(1, "reader@example.org", "Sample Reader", language, (), "active")
        try:
            welcome_message(settings, sample, "check", now)
        except ConfigError as exc:
            problems.extend(p for p in exc.problems if p not in problems)
    return problems
