"""Joining a digest list without staff typing an address into a CSV: double opt-in.

``request`` records a new address as ``pending`` (details kept) and emails it a link
signed for that address, valid 48 hours; nothing else changes, so a stranger typing
someone's address cannot subscribe them, nor learn whether they are subscribed.
``confirm`` makes the address ``active`` — the only way back for someone who
unsubscribed or bounced — and rejoins every digest they had left.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from urllib.parse import urlencode

from pipeline import i18n
from pipeline.mailer import Transport
from pipeline.settings import Settings
from pipeline.store import Store
from pipeline.subscribers import PENDING, Subscriber, SubscriberStore, normalise_email
from pipeline.tokens import InvalidToken, link_secret, sign, verify

CONFIRM = "confirm"
CONFIRM_FOR = dt.timedelta(hours=48)


class SignUp:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        transport: Callable[[], Transport],
        clock: Callable[[], float] = time.time,
    ):
        assert settings.email is not None, "sign-ups need an `email:` section"
        self.settings = settings
        self.email = settings.email
        self.subscribers = SubscriberStore(store.engine)
        self.secret = link_secret(self.email.unsubscribe.secret, store)
        self.transport = transport
        self.clock = clock

    def request(self, email: str, *, name: str, language: str, topics: Iterable[str]) -> Subscriber:
        """Record the sign-up and send the confirmation link; ValueError for a bad address."""
        address = normalise_email(email)
        known = self.subscribers.get(address)
        if known is None or known.status == PENDING:
            _, known = self.subscribers.add_or_update(
                address, name=name, language=language, topics=topics, status=PENDING
            )
        token = sign(
            self.secret,
            CONFIRM,
            known.id,
            "",
            email=address,
            expires=int(self.clock() + CONFIRM_FOR.total_seconds()),
        )
        link = f"{self.email.unsubscribe.origin}/confirm?{urlencode({'token': token})}"
        transport = self.transport()
        try:
            transport.send(self.message(known, link))
        finally:
            transport.close()
        return known

    def check(self, token: str) -> Subscriber:
        """The subscriber a genuine, unexpired confirmation link is for; InvalidToken if not."""
        claims = verify(self.secret, token, CONFIRM, now=self.clock())
        found = self.subscribers.get_by_id(claims.subscriber_id)
        if found is None or not claims.is_for(found.email):
            raise InvalidToken("the link is for an address we no longer know")
        return found

    def confirm(self, token: str) -> Subscriber:
        found = self.check(token)
        when = dt.datetime.fromtimestamp(self.clock(), dt.UTC).isoformat(timespec="seconds")
        self.subscribers.activate(found.id, f"confirmed sign-up {when}")
        return found

    def message(self, subscriber: Subscriber, link: str) -> EmailMessage:
        site = self.settings.site
        words = i18n.words(subscriber.language, site=site.name, link=link)
        greeting = words["greeting_named"].format(name=subscriber.name)
        if not subscriber.name:
            greeting = words["greeting"]
        message = EmailMessage()
        message["From"] = self.email.from_
        message["To"] = formataddr((subscriber.name, subscriber.email))
        message["Subject"] = words["confirm_subject"]
        message["Date"] = format_datetime(dt.datetime.fromtimestamp(self.clock(), dt.UTC))
        domain = parseaddr(self.email.from_)[1].rpartition("@")[2] or None
        message["Message-ID"] = make_msgid("confirm", domain=domain)
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(f"{greeting}\n\n{words['confirm_body']}\n\n{site.name}\n")
        message["Content-Language"] = subscriber.language
        return message
