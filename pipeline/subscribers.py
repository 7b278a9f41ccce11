"""Subscribers: who gets the digests, in the state store.

Statuses: ``active`` (receives digests), ``pending`` (signed up, not yet confirmed),
``unsubscribed`` and ``bounced`` (never mailed). A CSV import adds new people and
updates the name, language and topics of known ones, but never re-activates someone
who unsubscribed or bounced: only that person, through a confirmed sign-up, can
(pipeline.subscriber_import; pipeline.subscriber_formats reads other tools' exports).

A digest reaches an active subscriber when their language matches one of its audience's
languages and (if it names topics) they chose one of its topics. Languages match by
RFC 4647 basic filtering, case-insensitively, either way round: a subscriber's ``zh``
(any Chinese) takes a ``zh-CN`` digest, a digest for ``zh`` takes a ``zh-TW`` reader,
but ``zh-TW`` and ``zh-CN`` never match each other.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, exists, func, insert, or_, select, true, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from pipeline.clock import Clock, naive_utc, system_clock
from pipeline.errors import Problem
from pipeline.schema import list_unsubscribes, subscribers, suppressions
from pipeline.settings.base import normalise_language
from pipeline.settings.email import DigestSettings

ACTIVE, PENDING, UNSUBSCRIBED, BOUNCED = "active", "pending", "unsubscribed", "bounced"


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str
    language: str
    topics: tuple[str, ...]
    status: str
    status_detail: str | None = None
    paused_until: dt.datetime | None = None  # naive UTC; no digest before it
    consent_source: str | None = None  # how the address was given: "sign-up form", ...
    consent_at: dt.datetime | None = None  # naive UTC
    created_at: dt.datetime | None = None  # naive UTC


@dataclass
class ImportReport:
    tool: str = ""  # whose export the file is: "Mailchimp", ..., "this pipeline"
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_inactive: list[str] = field(default_factory=list)  # known, unsubscribed or bounced
    marked_inactive: list[str] = field(default_factory=list)  # "address (why)": the file says so
    suppressed: list[str] = field(default_factory=list)  # "address (why)": kept inactive
    rejected: list[Problem] = field(default_factory=list)
    unreached: list[Problem] = field(default_factory=list)  # active, but no digest reaches them


def is_paused(subscriber: Subscriber, now: dt.datetime) -> bool:
    """Whether the subscriber paused their digests (on the preference page) until after
    ``now`` (naive UTC, as the column holds it)."""
    return subscriber.paused_until is not None and now < subscriber.paused_until


def language_matches(first: str, second: str) -> bool:
    """RFC 4647 basic filtering, either way round: one tag equals the other or is a
    prefix of it ending at a ``-`` (``zh`` ~ ``zh-CN``, ``en`` ~ ``en-GB``; not
    ``zh-TW`` ~ ``zh-CN``, nor ``en`` ~ ``eng``), ignoring case. ``*`` matches all."""
    a, b = first.lower(), second.lower()
    if "*" in (a, b) or a == b:
        return True
    shorter, longer = sorted((a, b), key=len)
    return longer.startswith(shorter + "-")


def in_audience(subscriber: Subscriber, languages: Iterable[str], topics: Iterable[str]) -> bool:
    """Whether an audience (empty lists: anyone) takes this subscriber, whatever their
    status: a language that matches one of ``languages``, a topic among ``topics``."""
    languages, wanted = list(languages), {t.lower() for t in topics}
    return (not languages or any(language_matches(subscriber.language, v) for v in languages)) and (
        not wanted or bool(wanted & {t.lower() for t in subscriber.topics})
    )


def _language_condition(languages: Iterable[str]) -> ColumnElement[bool]:
    """``language_matches`` as SQL, to let the database drop the other languages: the
    subscriber's tag equals a wanted one or one of its prefixes, or extends it with ``-``
    (a subscriber's own tag is never ``*``). Tags are ASCII, so SQL's ``lower`` is
    Python's."""
    wanted = [v.lower() for v in languages]
    if not wanted or "*" in wanted:
        return true()
    column = func.lower(subscribers.c.language)
    exact: set[str] = set()
    for tag in wanted:
        parts = tag.split("-")
        exact.update("-".join(parts[:n]) for n in range(1, len(parts) + 1))
    return or_(
        column.in_(sorted(exact)),
        *(column.startswith(tag + "-", autoescape=True) for tag in wanted),
    )


def reached_by(subscriber: Subscriber, digests: Mapping[str, DigestSettings]) -> list[str]:
    """The digests whose audience takes this subscriber (one-click leaving aside)."""
    return [
        name
        for name, digest in digests.items()
        if in_audience(subscriber, digest.audience.languages, digest.audience.topics)
    ]


def unreached_message(subscriber: Subscriber, digests: Mapping[str, DigestSettings]) -> str:
    """Why no digest reaches an active subscriber, with what would: for `check` and import."""
    topics = ";".join(subscriber.topics) or "none"
    offered = (
        ", ".join(f"{name} ({_audience_words(d)})" for name, d in digests.items())
        or "no digests are configured"
    )
    return (
        f"{subscriber.email} is active but no digest reaches them (language "
        f"{subscriber.language}, topics {topics}); digests: {offered}"
    )


def _audience_words(digest: DigestSettings) -> str:
    languages = ", ".join(digest.audience.languages) or "any language"
    topics = digest.audience.topics
    return languages + (f"; topics {', '.join(topics)}" if topics else "")


def normalise_email(value: str) -> str:
    """The canonical form of an address; raises ValueError with a readable reason.

    Lower-cased whole: mailbox names are case-sensitive in theory, but people type
    ``Pema@`` and ``pema@`` for the same inbox, and a list must not mail them twice."""
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None


class SubscriberStore:
    def __init__(self, engine: Engine, clock: Clock = system_clock):
        self.engine = engine
        self._clock = clock
        self.clock = lambda: naive_utc(clock())  # the columns hold naive UTC

    def add_or_update(
        self,
        email: str,
        *,
        name: str = "",
        language: str,
        topics: Iterable[str] = (),
        status: str = ACTIVE,
    ) -> tuple[str, Subscriber]:
        """Insert, or update the details of an existing subscriber (status untouched).
        Returns ("added" | "updated" | "unchanged", the subscriber)."""
        address = normalise_email(email)
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            # It becomes the display name in To:, where a line break would add headers.
            raise ValueError("the name must be one line, without control characters")
        values = {
            "name": name.strip(),
            "language": normalise_language(language),
            "topics": json.dumps(sorted({t.strip() for t in topics if t.strip()})),
        }
        for key, value in (("email", address), *values.items()):
            limit = getattr(subscribers.c[key].type, "length", None)
            if limit and len(value) > limit:  # PostgreSQL would refuse it, SQLite keep it
                raise ValueError(
                    f"the {key} is {len(value):,} characters long; at most {limit} fit"
                )
        now = self.clock()
        with self.engine.begin() as conn:
            row = conn.execute(select(subscribers).where(subscribers.c.email == address)).first()
            if row is None:
                conn.execute(
                    insert(subscribers).values(
                        email=address, status=status, created_at=now, updated_at=now, **values
                    )
                )
                outcome = "added"
            elif all(getattr(row, k) == v for k, v in values.items()):
                outcome = "unchanged"
            else:
                conn.execute(
                    update(subscribers)
                    .where(subscribers.c.id == row.id)
                    .values(updated_at=now, **values)
                )
                outcome = "updated"
        found = self.get(address)
        assert found is not None
        return outcome, found

    def get(self, email: str) -> Subscriber | None:
        try:
            address = normalise_email(email)
        except ValueError:
            return None
        return self._one(subscribers.c.email == address)

    def get_by_id(self, subscriber_id: int) -> Subscriber | None:
        return self._one(subscribers.c.id == subscriber_id)

    def _one(self, condition) -> Subscriber | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(subscribers).where(condition)).first()
        return _subscriber(row) if row else None

    def all(
        self, status: str | None = None, ids: Collection[int] | None = None
    ) -> list[Subscriber]:
        query = select(subscribers).order_by(subscribers.c.email)
        if status:
            query = query.where(subscribers.c.status == status)
        if ids is not None:
            query = query.where(subscribers.c.id.in_(list(ids)))
        with self.engine.connect() as conn:
            return [_subscriber(row) for row in conn.execute(query)]

    def audience(
        self,
        languages: Iterable[str] = (),
        topics: Iterable[str] = (),
        list_name: str = "",
        ids: Collection[int] | None = None,
    ) -> list[Subscriber]:
        """Active subscribers whose language matches one of ``languages`` (RFC 4647,
        see ``language_matches``) with one of ``topics`` (empty: any), except those who
        left ``list_name`` and those paused until later than now; only those of ``ids``
        if given (one batch of an edition: a batch reads its own recipients, not the
        whole list)."""
        languages, topics = tuple(languages), tuple(topics)
        paused = subscribers.c.paused_until
        query = (
            select(subscribers)
            .where(
                subscribers.c.status == ACTIVE,
                or_(paused.is_(None), paused <= self.clock()),
                ~exists().where(
                    list_unsubscribes.c.subscriber_id == subscribers.c.id,
                    list_unsubscribes.c.list_name == list_name,
                ),
                # A suppressed address (pipeline.suppression) is never mailed, whatever its status.
                ~exists().where(suppressions.c.address == subscribers.c.email),
                _language_condition(languages),
            )
            .order_by(subscribers.c.email)
        )
        if ids is not None:
            query = query.where(subscribers.c.id.in_(list(ids)))
        with self.engine.connect() as conn:
            rows = conn.execute(query)
            # Topics live in a JSON column whose escaping no portable SQL compares
            # case-insensitively; the language was matched by the database.
            return [s for s in map(_subscriber, rows) if in_audience(s, (), topics)]

    def unreached(self, digests: Mapping[str, DigestSettings]) -> list[Subscriber]:
        """Active subscribers no digest's audience takes (by language and topics), by
        address; describe each with ``unreached_message``. Someone who left every digest
        by one-click is not listed: that was their choice, not a gap in the config."""
        return [s for s in self.all(ACTIVE) if not reached_by(s, digests)]

    def leave(self, subscriber_id: int, list_name: str) -> bool:
        """One-click unsubscribe from one digest; False if they had already left it."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(list_unsubscribes).values(
                        subscriber_id=subscriber_id, list_name=list_name, created_at=self.clock()
                    )
                )
        except IntegrityError:
            return False
        return True

    def left(self, subscriber_id: int) -> set[str]:
        """The digests this subscriber left (by one-click or the preference page)."""
        query = select(list_unsubscribes.c.list_name).where(
            list_unsubscribes.c.subscriber_id == subscriber_id
        )
        with self.engine.connect() as conn:
            return set(conn.scalars(query))

    def rejoin(self, subscriber_id: int, list_name: str) -> bool:
        """Undo ``leave`` for one digest; False if they had not left it."""
        with self.engine.begin() as conn:
            done = conn.execute(
                delete(list_unsubscribes).where(
                    list_unsubscribes.c.subscriber_id == subscriber_id,
                    list_unsubscribes.c.list_name == list_name,
                )
            )
        return done.rowcount == 1

    def set_preferences(
        self,
        subscriber_id: int,
        *,
        language: str,
        topics: Iterable[str],
        paused_until: dt.datetime | None,
    ) -> None:
        """What the subscriber chose on the preference page (status untouched)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == subscriber_id)
                .values(
                    language=normalise_language(language),
                    topics=json.dumps(sorted({t.strip() for t in topics if t.strip()})),
                    paused_until=paused_until,
                    updated_at=self.clock(),
                )
            )

    def activate(self, subscriber_id: int, detail: str) -> None:
        """A confirmed sign-up: active again, on every digest they had left."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(list_unsubscribes).where(list_unsubscribes.c.subscriber_id == subscriber_id)
            )
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == subscriber_id)
                .values(status=ACTIVE, status_detail=detail, updated_at=self.clock())
            )

    def set_status(self, subscriber_id: int, status: str, detail: str | None = None) -> bool:
        """Change a subscriber's status; False if there is no such subscriber."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(subscribers)
                .where(subscribers.c.id == subscriber_id)
                .values(status=status, status_detail=detail, updated_at=self.clock())
            )
        return done.rowcount == 1

    def remove(self, email: str) -> bool:
        """Delete a subscriber's personal data entirely (delivery history keeps only ids)."""
        found = self.get(email)
        if found is None:
            return False
        with self.engine.begin() as conn:
            conn.execute(
                delete(list_unsubscribes).where(list_unsubscribes.c.subscriber_id == found.id)
            )
            conn.execute(delete(subscribers).where(subscribers.c.id == found.id))
        return True

    def import_csv(
        self,
        path: Path,
        default_language: str,
        digests: Mapping[str, DigestSettings] | None = None,
        mapping: str | None = None,
    ) -> ImportReport:
        """Add or update every valid row; see pipeline.subscriber_import."""
        from pipeline.subscriber_import import import_file

        return import_file(self.engine, path, default_language, digests, mapping, self._clock)


def _subscriber(row) -> Subscriber:
    return Subscriber(
        id=row.id,
        email=row.email,
        name=row.name,
        language=row.language,
        topics=tuple(json.loads(row.topics)),
        status=row.status,
        status_detail=row.status_detail,
        paused_until=row.paused_until,
        consent_source=row.consent_source,
        consent_at=row.consent_at,
        created_at=row.created_at,
    )
