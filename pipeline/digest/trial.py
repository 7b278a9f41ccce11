"""A test send: the next edition of a digest, as one address would receive it, sent
through the configured transport and recorded nowhere.

The edition is chosen and rendered as a real send would (``Editions.next_articles``,
the corrections, ``render_edition``) but never frozen: no edition row, no articles
marked as dealt with, no ledger row, no run record, so the real edition that follows
is unchanged and a test can be sent as often as wanted. The subject is marked as a
test in the digest's language; each test has its own Message-ID, so an outbox keeps
every one.

The recipient is the subscriber with that address if there is one (their name and
their unsubscribe link, which works), else a made-up one in the digest's language.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from email.message import EmailMessage

from pipeline import i18n
from pipeline.digest.editions import Edition, Editions
from pipeline.digest.render import render_edition
from pipeline.mailer import Transport
from pipeline.model import Article
from pipeline.subscribers import Subscriber, normalise_email
from pipeline.tokens import link_secret

TEST_STATUS = "test"  # an Edition that exists only in this message


@dataclass(frozen=True)
class Trial:
    message: EmailMessage
    articles: list[Article]
    subscriber: Subscriber | None  # None: the address is no subscriber's

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])


def trial_message(editions: Editions, name: str, address: str) -> Trial:
    """The next edition of digest ``name`` for ``address`` (ValueError if it is not an
    email address), with its subject marked as a test."""
    settings, digest = editions.settings, editions.settings.digests[name]
    normalised = normalise_email(address)
    now = editions.clock()
    articles = editions.next_articles(name)
    corrected = editions.corrected(name, now) if articles and digest.corrections else []
    rendered = render_edition(digest, settings.site, articles, corrected, date=now)
    marked = i18n.words(digest.language, subject=rendered.subject)["test_subject"]
    rendered = replace(rendered, subject=marked)
    subscriber = editions.subscribers.get(normalised)
    recipient = subscriber or Subscriber(0, normalised, "", digest.language, (), "active")
    # Its own id each time: a distinct Message-ID, so no test is taken for another.
    edition = Edition(f"{name}@test-{secrets.token_hex(8)}", name, now, TEST_STATUS, (), rendered)
    assert settings.email is not None  # digests need an `email:` section
    secret = link_secret(settings.email.unsubscribe.secret, editions.store)
    message = editions.message(edition, digest, recipient, secret)
    return Trial(message, articles, subscriber)


def send_trial(transport: Callable[[], Transport], trial: Trial) -> None:
    """Send it on a connection of its own; failures are the transport's (DeliveryFailed,
    MailerBroken), as for any message."""
    opened = transport()
    try:
        opened.send(trial.message)
    finally:
        opened.close()
