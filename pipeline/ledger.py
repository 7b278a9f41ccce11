"""The delivery ledger: one row per (stream, item), so each thing is delivered at most once.

A stream is what is delivered where: ``post:mastodon`` (items are article ids, and the
corrections of their posts, ``news/1#update:…`` and ``news/1#delete``) or a digest
edition (items are subscriber ids). A sent row keeps the far side's id for what it made
and, for a post, the version of the article it said (see pipeline.corrections).
A row moves through these states::

    (none) ──claim──▶ sending ──▶ sent        the far side confirmed it
                         │    ──▶ pending     a temporary failure: tried again from
                         │                    next_attempt_at, until give_up_after
                         │    ──▶ failed      a permanent failure (or given up), with the reason
                         └──(crash)──▶ uncertain   found still "sending" by a later run:
                                                   it may or may not have arrived
    (none) ──skip──▶ skipped    deliberately never delivered (too old, filtered), with why
    uncertain ──settle by hand──▶ sent, or pending (due at once) to be sent again

``claim`` is committed *before* the network is touched, and it only succeeds for a row
that is new or pending, so two processes can never both send the same item, and a
crash between sending and recording leaves evidence rather than a silent resend.

A pending row never holds anything else up: it waits for its own next attempt, each
delay double the last (from ``retry_base``, at most ``retry_cap``), and once it has kept
failing for ``give_up_after`` it is failed with the last reason.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from pipeline.clock import Clock, system_clock
from pipeline.schema import deliveries

SENDING, SENT, PENDING, FAILED, UNCERTAIN, SKIPPED = (
    "sending",
    "sent",
    "pending",
    "failed",
    "uncertain",
    "skipped",
)
GIVE_UP_AFTER = dt.timedelta(days=3)
RETRY_BASE = dt.timedelta(minutes=5)
RETRY_CAP = dt.timedelta(hours=6)


@dataclass(frozen=True)
class Settlement:
    """How a claimed delivery ended, to be recorded (see ``Ledger.claim``). A pending one
    says when to try again (``Ledger.retry_later`` works it out)."""

    item: str
    state: str
    detail: str | None = None
    remote_id: str | None = None
    remote_url: str | None = None
    next_attempt_at: dt.datetime | None = None
    failing_since: dt.datetime | None = None
    version: str | None = None  # what a sent post said (pipeline.corrections)


@dataclass(frozen=True)
class Claim:
    """A row this process may now send: how many times it has been claimed, and since
    when it has been failing (None: it has not failed yet)."""

    stream: str
    item: str
    attempts: int
    failing_since: dt.datetime | None = None


@dataclass(frozen=True)
class Entry:
    stream: str
    item: str
    state: str
    attempts: int
    key: str | None
    owner: str | None
    remote_id: str | None
    remote_url: str | None
    detail: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    next_attempt_at: dt.datetime | None = None
    failing_since: dt.datetime | None = None
    version: str | None = None


def stored_time(moment: dt.datetime) -> dt.datetime:
    """A moment as the columns hold it: naive UTC (the database boundary). A naive
    moment is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_is_gone(owner: str | None) -> bool:
    """Whether the process that claimed a row has certainly stopped (same host only)."""
    host, _, pid = (owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def how_long(span: dt.timedelta) -> str:
    """``3 days``, ``5 hours``, ``12 minutes``: the largest whole unit, for messages."""
    seconds = int(span.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


class Ledger:
    """Reads and moves delivery rows; every method is its own committed transaction."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock = system_clock,
        owner: str | None = None,
        stale_after: dt.timedelta = dt.timedelta(hours=1),
        *,
        give_up_after: dt.timedelta = GIVE_UP_AFTER,
        retry_base: dt.timedelta = RETRY_BASE,
        retry_cap: dt.timedelta = RETRY_CAP,
    ):
        self.engine = engine
        self.clock = clock  # aware UTC; rows hold naive UTC (see ``now``)
        self.owner = owner or this_process()
        self.stale_after = stale_after
        self.give_up_after = give_up_after
        self.retry_base = retry_base
        self.retry_cap = retry_cap

    def now(self) -> dt.datetime:
        """The clock's time as the rows hold it (naive UTC), to compare with them."""
        return stored_time(self.clock())

    def entries(
        self, stream: str, items: Iterable[str] | None = None, *, state: str | None = None
    ) -> dict[str, Entry]:
        """The stream's rows (of ``items`` only, in ``state`` only, if given) by item.
        ``state`` is filtered in SQL, on the (stream, state) index: a channel's due or
        interrupted rows are found without reading every row it ever had."""
        query = select(deliveries).where(deliveries.c.stream == stream)
        if state is not None:
            query = query.where(deliveries.c.state == state)
        if items is not None:
            wanted = list(items)
            if not wanted:
                return {}
            query = query.where(deliveries.c.item.in_(wanted))
        with self.engine.connect() as conn:
            return {row.item: Entry(**row._mapping) for row in conn.execute(query)}

    def has_any(self, stream: str) -> bool:
        query = select(func.count()).select_from(deliveries).where(deliveries.c.stream == stream)
        with self.engine.connect() as conn:
            return bool(conn.scalar(query))

    def claim(
        self, stream: str, item: str, key: str, *, settle_first: Settlement | None = None
    ) -> bool:
        """``take``, answering only whether the item is now ours to send."""
        return self.take(stream, item, key, settle_first=settle_first) is not None

    def take(
        self,
        stream: str,
        item: str,
        key: str,
        *,
        settle_first: Settlement | None = None,
        early: bool = False,
    ) -> Claim | None:
        """Mark the item as being sent now; None if it is not ours to send (already
        sent, failed, uncertain, skipped, being sent by another process, or pending
        but not due yet — unless ``early``, for a run's own retry of what it just tried).

        ``settle_first`` records how the previous item of the stream ended in the same
        transaction: a batch then commits once per item instead of twice, and the
        previous outcome is still on disk before anything more is sent."""
        now = self.now()
        values = {
            "stream": stream,
            "item": item,
            "state": SENDING,
            "attempts": 1,
            "key": key,
            "owner": self.owner,
            "created_at": now,
            "updated_at": now,
        }
        with self.engine.begin() as conn:
            if settle_first is not None:
                self._settle(conn, stream, settle_first)
            new = _insert_unless_present(conn.dialect.name)
            # RETURNING, not rowcount: psycopg reports -1 for INSERT … ON CONFLICT.
            if new is not None and conn.execute(new, values).first() is not None:
                return Claim(stream, item, 1)
        if new is None:  # a database without INSERT … ON CONFLICT: let the key refuse it
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(deliveries).values(**values))
                return Claim(stream, item, 1)
            except IntegrityError:
                pass
        due = or_(deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at <= now)
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(deliveries)
                .where(
                    _row(stream, item), deliveries.c.state == PENDING, *(() if early else (due,))
                )
                .values(
                    state=SENDING,
                    attempts=deliveries.c.attempts + 1,
                    key=key,
                    owner=self.owner,
                    updated_at=now,
                )
                .returning(deliveries.c.attempts, deliveries.c.failing_since)
            ).first()
        return Claim(stream, item, moved.attempts, moved.failing_since) if moved else None

    def retry_later(
        self, claim: Claim, reason: str, retry_after: float | None = None
    ) -> Settlement:
        """How a claimed row that failed temporarily is to be settled: pending until its
        next attempt (double the time it has been failing, from ``retry_base`` up to
        ``retry_cap``, and no sooner than the far side's ``retry_after`` seconds), or
        failed once it has been failing for ``give_up_after``. The last attempt falls on
        the limit itself, so an item is never given up earlier than promised."""
        now = self.now()
        since = claim.failing_since or now
        failing = now - since
        if failing >= self.give_up_after:
            detail = (
                f"gave up after {claim.attempts} attempts over {how_long(failing)}; "
                f"the last: {reason}"
            )
            return Settlement(claim.item, FAILED, detail)
        delay = min(self.retry_cap, max(self.retry_base, failing))
        if retry_after is not None:
            delay = max(delay, dt.timedelta(seconds=retry_after))
        next_at = min(now + delay, since + self.give_up_after)
        detail = f"{reason}; next attempt after {next_at:%Y-%m-%d %H:%M}Z"
        return Settlement(claim.item, PENDING, detail, next_attempt_at=next_at, failing_since=since)

    def reclaim(self, entry: Entry) -> bool:
        """Take over an interrupted row to send it again with the same key (only for a
        channel that deduplicates on that key)."""
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(deliveries)
                .where(
                    _row(entry.stream, entry.item),
                    deliveries.c.state == SENDING,
                    deliveries.c.owner == entry.owner,
                )
                .values(attempts=deliveries.c.attempts + 1, owner=self.owner, updated_at=self.now())
            )
            return moved.rowcount == 1

    def settle(
        self,
        stream: str,
        item: str,
        state: str,
        *,
        detail: str | None = None,
        remote_id: str | None = None,
        remote_url: str | None = None,
    ) -> None:
        """Record how a claimed delivery ended."""
        self.record(stream, Settlement(item, state, detail, remote_id, remote_url))

    def record(self, stream: str, outcome: Settlement) -> None:
        """Record a settlement worked out beforehand (e.g. by ``retry_later``)."""
        with self.engine.begin() as conn:
            self._settle(conn, stream, outcome)

    def _settle(self, conn: Connection, stream: str, outcome: Settlement) -> None:
        if outcome.state not in (SENT, PENDING, FAILED, UNCERTAIN):
            raise ValueError(f"cannot settle a delivery as {outcome.state!r}")
        conn.execute(
            _settle_statement(),
            {
                "row_stream": stream,
                "row_item": outcome.item,
                "new_state": outcome.state,
                "new_detail": outcome.detail,
                "new_remote_id": outcome.remote_id,
                "new_remote_url": outcome.remote_url,
                "new_next_attempt_at": outcome.next_attempt_at,
                "new_failing_since": outcome.failing_since,
                "new_version": outcome.version,
                "new_updated_at": self.now(),
            },
        )

    def skip(self, stream: str, reasons: dict[str, str]) -> None:
        """Record items that will never be delivered, each with why."""
        if not reasons:
            return
        now = self.now()
        known = set(self.entries(stream, reasons))
        rows = [
            {
                "stream": stream,
                "item": item,
                "state": SKIPPED,  # attempts: the column's default, 0
                "detail": why,
                "created_at": now,
                "updated_at": now,
            }
            for item, why in reasons.items()
            if item not in known
        ]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(insert(deliveries), rows)

    def drop(self, stream: str, item: str, why: str) -> bool:
        """A pending item that is no longer wanted (its subscriber left, its article was
        removed) becomes skipped, with why, instead of waiting for ever."""
        return self._move(stream, item, PENDING, SKIPPED, why)

    def due(self, stream: str) -> list[Entry]:
        """Pending rows whose next attempt has come, oldest first."""
        now = self.now()
        pending = self.entries(stream, state=PENDING).values()
        found = (e for e in pending if e.next_attempt_at is None or e.next_attempt_at <= now)
        return sorted(found, key=lambda e: (e.created_at, e.item))

    def is_due(self, entry: Entry, now: dt.datetime | None = None) -> bool:
        """Whether a row is pending and its next attempt has come."""
        moment = self.now() if now is None else stored_time(now)
        return entry.state == PENDING and (
            entry.next_attempt_at is None or entry.next_attempt_at <= moment
        )

    def interrupted(self, stream: str, items: Collection[str] | None = None) -> list[Entry]:
        """Rows a stopped process left in ``sending``: their fate is unknown. A row whose
        owner may still be running (another host, or alive here) counts only once it is
        older than ``stale_after``.

        ``items``: rows the caller holds exclusively (a digest batch, whose job runs on
        one worker at a time and is run again only once that worker's heartbeat has
        stopped): any of them still ``sending`` was left by a stopped run, whatever its
        owner, so a worker lost on another machine holds nothing up for an hour."""
        cutoff = self.now() - self.stale_after
        return [
            e
            for e in self.entries(stream, items, state=SENDING).values()
            if (
                items is not None
                or (e.owner != self.owner and (owner_is_gone(e.owner) or e.updated_at < cutoff))
            )
        ]

    def uncertain(self, stream_prefix: str = "") -> list[Entry]:
        """Every uncertain row (of streams starting with ``stream_prefix``), oldest first."""
        query = (
            select(deliveries)
            .where(deliveries.c.state == UNCERTAIN, deliveries.c.stream.startswith(stream_prefix))
            .order_by(deliveries.c.updated_at, deliveries.c.stream, deliveries.c.item)
        )
        with self.engine.connect() as conn:
            return [Entry(**row._mapping) for row in conn.execute(query)]

    def settle_by_hand(self, stream: str, item: str, sent: bool, note: str = "") -> bool:
        """An operator's verdict on an uncertain row: it arrived (sent), or it did not
        (pending, due at once, with a fresh give-up period: it is sent on the next run).
        False if the row is not uncertain (any more)."""
        verdict = "sent" if sent else "not sent; sent again on the next run"
        why = f"settled by hand as {verdict}" + (f" ({note})" if note else "")
        return self._move(stream, item, UNCERTAIN, SENT if sent else PENDING, why)

    def _move(self, stream: str, item: str, from_state: str, to_state: str, why: str) -> bool:
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(deliveries)
                .where(_row(stream, item), deliveries.c.state == from_state)
                .values(
                    state=to_state,
                    detail=why,
                    next_attempt_at=None,
                    failing_since=None,
                    updated_at=self.now(),
                )
            )
            return moved.rowcount == 1

    def history(self, stream_prefix: str = "", limit: int | None = None) -> list[Entry]:
        """Most recently changed rows first; ``limit`` None (or 0) for all of them."""
        query = (
            select(deliveries)
            .where(deliveries.c.stream.startswith(stream_prefix))
            .order_by(deliveries.c.updated_at.desc(), deliveries.c.item)
            .limit(limit or None)
        )
        with self.engine.connect() as conn:
            return [Entry(**row._mapping) for row in conn.execute(query)]


@cache
def _settle_statement() -> Any:
    """The UPDATE that settles a claimed row, built once: a batch settles a row per
    message, and building the statement each time cost as much as running it."""
    settled = "state detail remote_id remote_url next_attempt_at failing_since version updated_at"
    return (
        update(deliveries)
        .where(
            deliveries.c.stream == bindparam("row_stream"),
            deliveries.c.item == bindparam("row_item"),
            deliveries.c.state == SENDING,
        )
        .values({name: bindparam(f"new_{name}") for name in settled.split()})
    )


@cache
def _insert_unless_present(dialect: str) -> Any:
    """INSERT … ON CONFLICT DO NOTHING where the database has it (no exception, so it
    can share a transaction), else None. Built once per dialect; the values are the
    execution's parameters."""
    from sqlalchemy.dialects import postgresql, sqlite

    # Two unrelated Insert classes, each with its own on_conflict_do_nothing.
    dialect_insert: Callable[[Table], sqlite.Insert | postgresql.Insert]
    if dialect == "sqlite":
        dialect_insert = sqlite.insert
    elif dialect == "postgresql":
        dialect_insert = postgresql.insert
    else:
        return None
    return dialect_insert(deliveries).on_conflict_do_nothing().returning(deliveries.c.item)


def _row(stream: str, item: str):
    return and_(deliveries.c.stream == stream, deliveries.c.item == item)
