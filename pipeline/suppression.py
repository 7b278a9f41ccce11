"""Suppressed addresses: never mailed again, by any transport, subscriber or not.

``Suppressions.record`` is the one ``FeedbackRecorder`` (pipeline.feedback): every reader
of returned mail and every provider's notification hands its reports here.

- ``bounce`` (5.x.x, the mailbox does not exist): the subscriber is ``bounced`` and the
  address suppressed.
- ``delay`` (4.x.x, mailbox full, greylisted for days): counted; ``soft_limit`` of them
  within ``soft_window`` make it a bounce.
- ``complaint`` (a feedback-loop report: "this is spam"): the subscriber is unsubscribed
  from every digest and the address suppressed. A complaint is never lifted by the
  pipeline; only staff, by hand, may (``lift(..., complaints=True)``).

A suppression outlives the subscriber: ``subscribers remove`` followed by an import of an
old list must not mail a dead or complaining address again. A confirmed sign-up lifts a
*bounce* suppression (the person has just shown the mailbox works by following a link
mailed to it); see pipeline.signup.

Every report is kept in ``mail_feedback`` with what was done, for `bounces show`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from pipeline.clock import Clock, naive_utc, system_clock
from pipeline.feedback import Feedback
from pipeline.schema import chunks, mail_feedback, subscribers, suppressions, width
from pipeline.subscribers import ACTIVE, BOUNCED, PENDING, UNSUBSCRIBED, normalise_email

BOUNCE, DELAY, COMPLAINT = "bounce", "delay", "complaint"
MAX_REASON = 1000  # characters of a report's words kept: enough for any diagnostic line
SOFT_LIMIT = 3
SOFT_WINDOW = dt.timedelta(days=7)


@dataclass(frozen=True)
class Suppression:
    address: str
    kind: str  # bounce | complaint
    reason: str
    source: str
    since: dt.datetime  # naive UTC

    def describe(self) -> str:
        """One line for a refused send, `subscribers list` and history."""
        what = "complained (reported as spam)" if self.kind == COMPLAINT else "bounced"
        when = f"{self.since:%Y-%m-%d %H:%M} UTC"
        return f"suppressed: {what} on {when} ({self.source}: {self.reason})"


@dataclass(frozen=True)
class Report:
    """One received report and what it did, as kept in ``mail_feedback``."""

    address: str
    kind: str
    reason: str
    source: str
    message_id: str | None
    received: dt.datetime  # naive UTC
    outcome: str


def clean(text: str, limit: int = MAX_REASON) -> str:
    """A report's words as one storable line: no control characters (PostgreSQL refuses
    NUL), no unencodable surrogates, at most ``limit`` characters."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:limit]


class Suppressions:
    """The suppression list and the recorder of feedback; everything it touches is passed in."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock = system_clock,
        *,
        soft_limit: int = SOFT_LIMIT,
        soft_window: dt.timedelta = SOFT_WINDOW,
    ):
        self.engine = engine
        self.clock = lambda: naive_utc(clock())
        self.soft_limit = soft_limit
        self.soft_window = soft_window

    @classmethod
    def configured(cls, engine: Engine, bounces, clock: Clock = system_clock) -> Suppressions:
        """With the limits of ``email.bounces`` (None: the defaults)."""
        if bounces is None:
            return cls(engine, clock)
        window = dt.timedelta(days=bounces.soft_window_days)
        return cls(engine, clock, soft_limit=bounces.soft_limit, soft_window=window)

    # -- reading ---------------------------------------------------------------------

    def get(self, address: str) -> Suppression | None:
        return self.among([address]).get(_normal(address) or address)

    def of_subscriber(self, email: str) -> Suppression | None:
        """``get`` for an address as the subscriber table keeps it (normalised already):
        one primary-key lookup, for the check before every message of a send."""
        with self.engine.connect() as conn:
            row = conn.execute(select(suppressions).where(suppressions.c.address == email)).first()
        return _suppression(row) if row else None

    def among(self, addresses: Iterable[str]) -> dict[str, Suppression]:
        """The suppressed ones of ``addresses`` (normalised), by address."""
        wanted = sorted({_normal(a) or a for a in addresses})
        found: dict[str, Suppression] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(wanted):
                query = select(suppressions).where(suppressions.c.address.in_(chunk))
                found.update((row.address, _suppression(row)) for row in conn.execute(query))
        return found

    def addresses(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.scalars(select(suppressions.c.address)))

    def all(self) -> list[Suppression]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(suppressions).order_by(suppressions.c.address))
            return [_suppression(row) for row in rows]

    def history(self, address: str) -> list[Report]:
        """Every report received about ``address``, oldest first."""
        normal = _normal(address) or address
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(mail_feedback)
                .where(mail_feedback.c.address == normal)
                .order_by(mail_feedback.c.received_at, mail_feedback.c.id)
            ).all()
        return [
            Report(r.address, r.kind, r.reason, r.source, r.message_id, r.received_at, r.outcome)
            for r in rows
        ]

    # -- changing ----------------------------------------------------------------------

    def record(self, feedback: Feedback) -> str:
        """Apply one report (see the module's doc); what was done, in words."""
        address = _normal(feedback.address)
        if address is None:
            return f"ignored: {clean(feedback.address, 100)!r} is not an email address"
        reason = clean(feedback.reason) or "(no reason given)"
        source = clean(feedback.source, width(suppressions.c.source)) or "unknown"
        message_id = clean(feedback.message_id or "", width(mail_feedback.c.message_id)) or None
        now = self.clock()
        with self.engine.begin() as conn:
            outcome = self._apply(conn, address, feedback.kind, reason, source, now)
            conn.execute(
                insert(mail_feedback).values(
                    address=address,
                    kind=feedback.kind,
                    reason=reason,
                    source=source,
                    message_id=message_id,
                    received_at=now,
                    outcome=outcome,
                )
            )
        return outcome

    def _apply(
        self, conn: Connection, address: str, kind: str, reason: str, source: str, now: dt.datetime
    ) -> str:
        if kind == DELAY:
            since = now - self.soft_window
            earlier = conn.scalar(
                select(func.count()).where(
                    mail_feedback.c.address == address,
                    mail_feedback.c.kind == DELAY,
                    mail_feedback.c.received_at > since,
                )
            )
            count = (earlier or 0) + 1  # this one is inserted after
            days = self.soft_window.days
            if count < self.soft_limit:
                return f"temporary failure {count} of {self.soft_limit} within {days} days"
            reason = f"{count} temporary failures within {days} days, the last: {reason}"
            kind = BOUNCE
        if kind == BOUNCE:
            added = self._suppress(conn, address, BOUNCE, reason, source, now)
            changed = self._set_status(conn, address, BOUNCED, f"bounced: {reason}", now)
            parts = ["suppressed" if added else "already suppressed"]
            if changed:
                parts.append("subscriber marked bounced")
            return "bounce: " + ", ".join(parts)
        if kind == COMPLAINT:
            added = self._suppress(conn, address, COMPLAINT, reason, source, now)
            detail = f"complaint (reported as spam): {reason}"
            changed = self._set_status(conn, address, UNSUBSCRIBED, detail, now, also=(BOUNCED,))
            parts = ["suppressed" if added else "already suppressed"]
            if changed:
                parts.append("subscriber unsubscribed from every digest")
            return "complaint: " + ", ".join(parts)
        return f"ignored: unknown kind {clean(str(kind), 40)!r}"

    @staticmethod
    def _suppress(
        conn: Connection, address: str, kind: str, reason: str, source: str, now: dt.datetime
    ) -> bool:
        """Suppress ``address``; False if it already was. A complaint replaces a bounce
        (it is the stronger: never lifted by a sign-up), never the other way round."""
        row = conn.execute(select(suppressions).where(suppressions.c.address == address)).first()
        values = {"kind": kind, "reason": reason, "source": source, "created_at": now}
        if row is None:
            try:
                with conn.begin_nested():  # a concurrent report of the same address
                    conn.execute(insert(suppressions).values(address=address, **values))
                return True
            except IntegrityError:
                row = conn.execute(
                    select(suppressions).where(suppressions.c.address == address)
                ).one()
        if kind == COMPLAINT and row.kind != COMPLAINT:
            conn.execute(
                update(suppressions).where(suppressions.c.address == address).values(**values)
            )
            return True
        return False

    @staticmethod
    def _set_status(
        conn: Connection,
        address: str,
        status: str,
        detail: str,
        now: dt.datetime,
        also: tuple[str, ...] = (),
    ) -> bool:
        """The subscriber with this address (if any, and active, pending or one of
        ``also``) gets ``status``; True if one did."""
        done = conn.execute(
            update(subscribers)
            .where(
                subscribers.c.email == address,
                subscribers.c.status.in_((ACTIVE, PENDING, *also)),
            )
            .values(status=status, status_detail=detail, updated_at=now)
        )
        return bool(done.rowcount)

    def lift(self, address: str, *, complaints: bool = False) -> Suppression | None:
        """Remove a suppression (a complaint only with ``complaints``); the one removed."""
        found = self.get(address)
        if found is None or (found.kind == COMPLAINT and not complaints):
            return None
        with self.engine.begin() as conn:
            conn.execute(delete(suppressions).where(suppressions.c.address == found.address))
        return found


def _normal(address: str) -> str | None:
    try:
        return normalise_email(address)
    except (ValueError, TypeError):
        return None


def _suppression(row) -> Suppression:
    return Suppression(row.address, row.kind, row.reason, row.source, row.created_at)
