"""The delivery ledger: one row per (stream, item), so each thing is delivered at most once.

A stream is what is delivered where: ``post:mastodon`` (items are article ids) or a
digest edition (items are subscriber ids). A row moves through these states::

    (none) ──claim──▶ sending ──▶ sent        the far side confirmed it
                         │    ──▶ pending     a temporary failure; tried again next run
                         │    ──▶ failed      a permanent failure, with the far side's reason
                         └──(crash)──▶ uncertain   found still "sending" by a later run:
                                                   it may or may not have arrived
    (none) ──skip──▶ skipped    deliberately never delivered (too old, filtered), with why

``claim`` is committed *before* the network is touched, and it only succeeds for a row
that is new or pending, so two processes can never both send the same item, and a
crash between sending and recording leaves evidence rather than a silent resend.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from pipeline.schema import deliveries

SENDING, SENT, PENDING, FAILED, UNCERTAIN, SKIPPED = (
    "sending",
    "sent",
    "pending",
    "failed",
    "uncertain",
    "skipped",
)
FINAL = frozenset({SENT, FAILED, UNCERTAIN, SKIPPED})


@dataclass(frozen=True)
class Settlement:
    """How a claimed delivery ended, to be recorded (see ``Ledger.claim``)."""

    item: str
    state: str
    detail: str | None = None
    remote_id: str | None = None
    remote_url: str | None = None


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


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


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


class Ledger:
    """Reads and moves delivery rows; every method is its own committed transaction."""

    def __init__(
        self,
        engine: Engine,
        clock=_now,
        owner: str | None = None,
        stale_after: dt.timedelta = dt.timedelta(hours=1),
    ):
        self.engine = engine
        self.clock = clock
        self.owner = owner or this_process()
        self.stale_after = stale_after

    def entries(self, stream: str, items: Iterable[str] | None = None) -> dict[str, Entry]:
        query = select(deliveries).where(deliveries.c.stream == stream)
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
        """Mark the item as being sent now; False if it is not ours to send (already
        sent, failed, uncertain, skipped, or being sent by another process).

        ``settle_first`` records how the previous item of the stream ended in the same
        transaction: a batch then commits once per item instead of twice, and the
        previous outcome is still on disk before anything more is sent."""
        now = self.clock()
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
            new = _insert_unless_present(conn.dialect.name, values)
            # RETURNING, not rowcount: psycopg reports -1 for INSERT … ON CONFLICT.
            if new is not None and conn.execute(new).first() is not None:
                return True
        if new is None:  # a database without INSERT … ON CONFLICT: let the key refuse it
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(deliveries).values(**values))
                return True
            except IntegrityError:
                pass
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(deliveries)
                .where(_row(stream, item), deliveries.c.state == PENDING)
                .values(
                    state=SENDING,
                    attempts=deliveries.c.attempts + 1,
                    key=key,
                    owner=self.owner,
                    updated_at=now,
                )
            )
            return moved.rowcount == 1

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
                .values(
                    attempts=deliveries.c.attempts + 1, owner=self.owner, updated_at=self.clock()
                )
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
        outcome = Settlement(item, state, detail, remote_id, remote_url)
        with self.engine.begin() as conn:
            self._settle(conn, stream, outcome)

    def _settle(self, conn: Connection, stream: str, outcome: Settlement) -> None:
        if outcome.state not in (SENT, PENDING, FAILED, UNCERTAIN):
            raise ValueError(f"cannot settle a delivery as {outcome.state!r}")
        conn.execute(
            update(deliveries)
            .where(_row(stream, outcome.item), deliveries.c.state == SENDING)
            .values(
                state=outcome.state,
                detail=outcome.detail,
                remote_id=outcome.remote_id,
                remote_url=outcome.remote_url,
                updated_at=self.clock(),
            )
        )

    def skip(self, stream: str, reasons: dict[str, str]) -> None:
        """Record items that will never be delivered, each with why."""
        if not reasons:
            return
        now = self.clock()
        known = set(self.entries(stream, reasons))
        rows = [
            {
                "stream": stream,
                "item": item,
                "state": SKIPPED,
                "attempts": 0,
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

    def interrupted(self, stream: str) -> list[Entry]:
        """Rows a stopped process left in ``sending``: their fate is unknown. A row whose
        owner may still be running (another host, or alive here) counts only once it is
        older than ``stale_after``."""
        cutoff = self.clock() - self.stale_after
        return [
            e
            for e in self.entries(stream).values()
            if e.state == SENDING
            and e.owner != self.owner
            and (owner_is_gone(e.owner) or e.updated_at < cutoff)
        ]

    def history(self, stream_prefix: str = "", limit: int = 50) -> list[Entry]:
        """Most recently changed rows first."""
        query = (
            select(deliveries)
            .where(deliveries.c.stream.startswith(stream_prefix))
            .order_by(deliveries.c.updated_at.desc(), deliveries.c.item)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [Entry(**row._mapping) for row in conn.execute(query)]


def _insert_unless_present(dialect: str, values: dict) -> Any:
    """INSERT … ON CONFLICT DO NOTHING where the database has it (no exception, so it
    can share a transaction), else None."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        return None
    return (
        dialect_insert(deliveries)
        .values(**values)
        .on_conflict_do_nothing()
        .returning(deliveries.c.item)
    )


def _row(stream: str, item: str):
    return and_(deliveries.c.stream == stream, deliveries.c.item == item)
