"""Joining a digest list without staff typing an address into a CSV: double opt-in.

``request`` records a new address as ``pending`` (details kept) and emails it a link
signed for that address, valid 48 hours; nothing else changes, so a stranger typing
someone's address cannot subscribe them, nor learn whether they are subscribed: a known
and an unknown address take the same statements, signing and rendering. One address
gets at most ``CONFIRMATIONS_PER_DAY`` confirmation emails in 24 hours, counted in the
state store; past that the form answers the same, but nothing is sent. ``confirm``
makes the address ``active`` — the only way back for someone who unsubscribed or
bounced — and rejoins every digest they had left.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Table, case, delete, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from pipeline import i18n
from pipeline.clock import Clock, system_clock
from pipeline.mailer import Transport
from pipeline.schema import state_values, subscribers
from pipeline.settings import Settings
from pipeline.settings.base import normalise_language
from pipeline.store import Store
from pipeline.subscribers import PENDING, Subscriber, SubscriberStore, normalise_email
from pipeline.suppression import COMPLAINT, Suppressions
from pipeline.tokens import InvalidToken, link_secret, sign, verify

CONFIRM = "confirm"
CONFIRM_FOR = dt.timedelta(hours=48)
# Enough for someone who mistyped or lost the first mail; few enough that the form is no
# way to flood an inbox (the per-client limit does not stop many clients).
CONFIRMATIONS_PER_DAY = 3
WINDOW = 24 * 3600.0
# state_values names: "signup:confirmations:" + a keyed hash of the address, so the
# table never holds the address itself; each keeps {"sent": [unix times]}.
COUNTS = "signup:confirmations:"
PRUNE_EVERY = 3600.0
# Databases with INSERT … ON CONFLICT DO UPDATE, one statement whichever way it goes.
UPSERTS: dict[str, Callable[[Table], sqlite.Insert | postgresql.Insert]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}


def offered_topics(settings: Settings) -> tuple[str, ...]:
    """The topics the sign-up form offers: those the digests' audiences name, in the
    order the config names them, each once (whatever its case). A topic no digest names
    would change nothing anyone receives, so it is not offered; with none, the form asks
    for no topics."""
    found: dict[str, str] = {}
    for digest in settings.digests.values():
        for topic in digest.audience.topics:
            found.setdefault(topic.strip().lower(), topic.strip())
    return tuple(v for v in found.values() if v)


def chosen_topics(offered: Iterable[str], posted: Iterable[str]) -> list[str] | None:
    """The ``offered`` topics among ``posted`` (any case), spelt as configured; None if
    one is not offered (a stale or forged form: nothing is guessed)."""
    spelt = {t.lower(): t for t in offered}
    chosen = [spelt.get(t.strip().lower()) for t in posted if t.strip()]
    if any(t is None for t in chosen):
        return None
    return list(dict.fromkeys(t for t in chosen if t is not None))


class SignUp:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        transport: Callable[[], Transport],
        clock: Clock = system_clock,
        per_day: int = CONFIRMATIONS_PER_DAY,
    ):
        assert settings.email is not None, "sign-ups need an `email:` section"
        self.settings = settings
        self.email = settings.email
        self.engine = store.engine
        self.subscribers = SubscriberStore(store.engine, clock)
        self.suppressions = Suppressions(store.engine, clock)
        self.secret = link_secret(self.email.unsubscribe.secret, store)
        self.transport = transport
        self.clock = clock
        self.per_day = per_day
        self.pruned_at = float("-inf")

    def request(self, email: str, *, name: str, language: str, topics: Iterable[str]) -> bool:
        """Record the sign-up and send the confirmation link; ValueError for a bad address.
        True if a mail went, False if the address already had ``per_day`` today.

        Whether the address is unknown, pending, active or unsubscribed, this runs the
        same statements, signs one token, renders one message and sends it: the answer
        and its timing say nothing about who is subscribed."""
        address = normalise_email(email)
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            # It becomes the display name in To:, where a line break would add headers.
            raise ValueError("the name must be one line, without control characters")
        details = {
            "name": name.strip(),
            "language": normalise_language(language),
            "topics": json.dumps(sorted({t.strip() for t in topics if t.strip()})),
        }
        for key, value in (("email", address), *details.items()):
            limit = getattr(subscribers.c[key].type, "length", None)
            if limit and len(value) > limit:  # PostgreSQL would refuse it, SQLite keep it
                raise ValueError(f"the {key} is {len(value):,} characters long; at most {limit}")
        now = self.clock().timestamp()  # the rate counts and tokens keep unix seconds
        with self.engine.begin() as conn:
            known = self._record(conn, address, details, now)
            allowed = self._count(conn, address, now)
        token = sign(
            self.secret,
            CONFIRM,
            known.id,
            "",
            email=address,
            expires=int(now + CONFIRM_FOR.total_seconds()),
        )
        link = f"{self.email.unsubscribe.origin}/confirm?{urlencode({'token': token})}"
        message = self.message(known, link)
        held = self.suppressions.get(address)
        if held is not None and held.kind == COMPLAINT:
            # They reported our mail as spam: no mail goes there again, not even this
            # one (the page says the same as for anyone, so it reveals nothing).
            allowed = False
        if allowed:
            transport = self.transport()
            try:
                transport.send(message)
            finally:
                transport.close()
        if now - self.pruned_at >= PRUNE_EVERY:
            self.pruned_at = now
            self.prune(now)
        return allowed

    def _record(
        self, conn: Connection, address: str, details: dict[str, str], now: float
    ) -> Subscriber:
        """A new address is added as pending; a pending one takes the new details; any
        other is left exactly as it was. One upsert whichever it is (rewriting the row
        with its own values), so an unknown address costs what a known one does."""
        when = dt.datetime.fromtimestamp(now, dt.UTC).replace(tzinfo=None)
        fresh = {**details, "updated_at": when}
        pending = subscribers.c.status == PENDING
        changes = {
            key: case((pending, literal(value, subscribers.c[key].type)), else_=subscribers.c[key])
            for key, value in fresh.items()
        }
        row = {"email": address, "status": PENDING, "created_at": when, **fresh}
        upsert(conn, subscribers, "email", row, changes)
        found = conn.execute(select(subscribers).where(subscribers.c.email == address)).one()
        return Subscriber(
            id=found.id,
            email=found.email,
            name=found.name,
            language=found.language,
            topics=tuple(json.loads(found.topics)),
            status=found.status,
            status_detail=found.status_detail,
        )

    def _count(self, conn: Connection, address: str, now: float) -> bool:
        """One more confirmation email for ``address``, if it had fewer than ``per_day``
        in the last 24 hours. Runs in the transaction that upserted the address's row,
        which holds concurrent sign-ups of that address back until it commits; the write
        is also conditional on the value read, so a count is never lost."""
        name = self._count_name(address)
        read = conn.scalar(select(state_values.c.value).where(state_values.c.name == name))
        sent = [t for t in _times(read) if t > now - WINDOW]
        allowed = len(sent) < self.per_day
        if allowed:
            sent.append(now)
        value = json.dumps({"sent": sent})
        # "" is never stored, so a row that appeared since the read is not overwritten.
        unchanged = state_values.c.value == (read or "")
        written = upsert(
            conn, state_values, "name", {"name": name, "value": value}, {"value": value}, unchanged
        )
        return allowed and written

    def _count_name(self, address: str) -> str:
        keyed = hmac.new(self.secret.encode(), address.encode(), hashlib.sha256).hexdigest()
        return COUNTS + keyed[:32]

    def prune(self, now: float) -> int:
        """Forget addresses that had no confirmation email for 24 hours (the table keeps
        only what the limit needs); how many were forgotten."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(state_values.c.name, state_values.c.value).where(
                    state_values.c.name.startswith(COUNTS)
                )
            ).all()
        stale = [(n, v) for n, v in rows if all(t <= now - WINDOW for t in _times(v))]
        if stale:
            with self.engine.begin() as conn:
                for name, value in stale:  # unless a sign-up counted one since the read
                    conn.execute(
                        delete(state_values).where(
                            state_values.c.name == name, state_values.c.value == value
                        )
                    )
        return len(stale)

    def check(self, token: str) -> Subscriber:
        """The subscriber a genuine, unexpired confirmation link is for; InvalidToken if not."""
        claims = verify(self.secret, token, CONFIRM, now=self.clock().timestamp())
        found = self.subscribers.get_by_id(claims.subscriber_id)
        if found is None or not claims.is_for(found.email):
            raise InvalidToken("the link is for an address we no longer know")
        return found

    def confirm(self, token: str) -> Subscriber:
        found = self.check(token)
        when = self.clock().astimezone(dt.UTC).isoformat(timespec="seconds")
        # Following a link mailed to the address shows the mailbox works again: a bounce
        # suppression is lifted (a complaint's never is; no link was mailed there).
        self.suppressions.lift(found.email)
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
        message["Date"] = format_datetime(self.clock().astimezone(dt.UTC))
        domain = parseaddr(self.email.from_)[1].rpartition("@")[2] or None
        message["Message-ID"] = make_msgid("confirm", domain=domain)
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(f"{greeting}\n\n{words['confirm_body']}\n\n{site.name}\n")
        message["Content-Language"] = subscriber.language
        return message


def _times(value: str | None) -> list[float]:
    """The send times a count holds (none for no row, or one this code did not write)."""
    try:
        sent = json.loads(value or "{}").get("sent", [])
        return [float(t) for t in sent]
    except (ValueError, TypeError, AttributeError):
        return []


def upsert(
    conn: Connection,
    table: Table,
    key: str,
    row: dict[str, Any],
    changes: dict[str, Any],
    only_if: Any = None,
) -> bool:
    """INSERT ``row``, or where its ``key`` is taken, UPDATE that row with ``changes``
    (when ``only_if`` holds); True if a row was written. On SQLite and PostgreSQL it is
    one statement whichever way it goes."""
    dialect_insert = UPSERTS.get(conn.dialect.name)
    if dialect_insert is not None:
        statement = (
            dialect_insert(table)
            .values(**row)
            .on_conflict_do_update(index_elements=[table.c[key]], set_=changes, where=only_if)
            .returning(table.c[key])
        )
        return conn.execute(statement).first() is not None
    # Any other database: the same effect in up to three statements.
    same = table.c[key] == row[key]
    where = same if only_if is None else same & only_if
    if conn.execute(update(table).where(where).values(**changes)).rowcount:
        return True
    if conn.scalar(select(table.c[key]).where(same)) is not None:
        return False
    conn.execute(insert(table).values(**row))
    return True
