"""Digest editions fanned out into batches of recipients, each a job (pipeline.queue).

The edition is chosen and frozen once (``plan``), exactly as a send in one process does
it; its recipients still to be sent are cut into batches of ``queue.batch_size``, each a
row of ``edition_batches`` written in the same transaction as its job. A batch is sent by
whichever worker takes it (``send``), through the same claims as a send in one process,
so each recipient is still sent at most once; the last batch to finish closes the
edition (``sent``, or ``retrying`` while some recipients wait for a retry).

A batch that a killed worker left half done is taken again by another worker: what its
ledger rows say was sent is not sent again, and the message that was on the wire at the
kill is uncertain (``Digests.outstanding``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, func, insert, select, update

from pipeline.clock import naive_utc
from pipeline.digest.editions import RETRYING_EDITION, SENDING_EDITION, Edition, mail_stream
from pipeline.digest.sending import Digests, EditionReport
from pipeline.digest.window import SKIPPED_EDITION
from pipeline.ledger import SENT, UNCERTAIN
from pipeline.schema import edition_batches, editions

QUEUED_BATCH, DONE_BATCH = "queued", "done"

Enqueue = Callable[[Connection, str, int], None]  # (transaction, edition id, batch number)


@dataclass
class Plan:
    """What planning a digest did: the edition, and the batches enqueued per edition."""

    edition: Edition
    batches: dict[str, int] = field(default_factory=dict)
    closed: list[str] = field(default_factory=list)  # editions found complete


@dataclass(frozen=True)
class Progress:
    """How far a fanned-out edition is (``pipeline status``)."""

    edition: str
    batches: int
    done: int
    sent: int
    uncertain: int


class Batches:
    def __init__(self, digests: Digests, size: int):
        self.digests = digests
        self.size = size
        self.engine = digests.store.engine

    def plan(self, name: str, scheduled: dt.datetime | None, enqueue: Enqueue) -> Plan:
        """Choose and freeze the edition for ``scheduled``; then fan out every open
        edition of ``name`` (this one, one a crash left half walked, one with retries
        due) that has no batch waiting already."""
        digests = self.digests
        audience = digests.audience(name)
        edition = digests.edition(name, scheduled, audience)
        plan = Plan(edition)
        if edition.status == SKIPPED_EDITION:
            return plan
        state = digests.new_run(lambda: False)
        for status in (SENDING_EDITION, RETRYING_EDITION):
            for open_edition in digests.open_editions(name, status):
                if self._waiting(open_edition.id):
                    continue
                todo = digests.outstanding(open_edition, state, audience)
                if not todo:
                    digests.close_if_done(open_edition)
                    plan.closed.append(open_edition.id)
                    continue
                plan.batches[open_edition.id] = self._fan_out(
                    open_edition.id, [s.id for s in todo], enqueue
                )
        return plan

    def _waiting(self, edition: str) -> bool:
        with self.engine.connect() as conn:
            return bool(
                conn.scalar(
                    select(func.count())
                    .select_from(edition_batches)
                    .where(
                        edition_batches.c.edition_id == edition,
                        edition_batches.c.state == QUEUED_BATCH,
                    )
                )
            )

    def _fan_out(self, edition: str, ids: list[int], enqueue: Enqueue) -> int:
        now = naive_utc(self.digests.clock())
        chunks = [ids[i : i + self.size] for i in range(0, len(ids), self.size)]
        with self.engine.begin() as conn:
            last = conn.scalar(
                select(func.max(edition_batches.c.number)).where(
                    edition_batches.c.edition_id == edition
                )
            )
            first = 0 if last is None else last + 1
            for number, chunk in enumerate(chunks, start=first):
                conn.execute(
                    insert(edition_batches).values(
                        edition_id=edition,
                        number=number,
                        subscriber_ids=json.dumps(chunk),
                        state=QUEUED_BATCH,
                        sent=0,
                        uncertain=0,
                        created_at=now,
                    )
                )
                enqueue(conn, edition, number)
        return len(chunks)

    def send(self, edition_id: str, number: int) -> EditionReport:
        """Send one batch (again, after a worker died: only what is left), then close
        the edition if this was its last batch."""
        digests = self.digests
        edition = digests.load(edition_id)
        with self.engine.connect() as conn:
            row = conn.execute(
                select(edition_batches.c.subscriber_ids, edition_batches.c.state).where(
                    edition_batches.c.edition_id == edition_id, edition_batches.c.number == number
                )
            ).first()
        if edition is None or row is None or row.state == DONE_BATCH:
            return EditionReport(edition, already_done=True)
        items = {str(i) for i in json.loads(row.subscriber_ids)}
        state = digests.new_run(lambda: False)
        state.report.edition = edition
        with digests.sending(state):
            audience = digests.audience(edition.digest, [int(i) for i in items])
            todo = digests.outstanding(edition, state, audience, items)
            digests.deliver_all(edition, todo, state)
            digests.retry_round(state)
        self._finish(edition, number, items)
        return state.report

    def _finish(self, edition: Edition, number: int, items: set[str]) -> None:
        entries = self.digests.ledger.entries(mail_stream(edition.id), items).values()
        sent = sum(e.state == SENT for e in entries)
        uncertain = sum(e.state == UNCERTAIN for e in entries)
        with self.engine.begin() as conn:
            # The edition's row, locked: batches finishing at once close it exactly once.
            conn.execute(select(editions.c.id).where(editions.c.id == edition.id).with_for_update())
            conn.execute(
                update(edition_batches)
                .where(
                    edition_batches.c.edition_id == edition.id, edition_batches.c.number == number
                )
                .values(
                    state=DONE_BATCH,
                    sent=sent,
                    uncertain=uncertain,
                    finished_at=naive_utc(self.digests.clock()),
                )
            )
            left = conn.scalar(
                select(func.count())
                .select_from(edition_batches)
                .where(
                    edition_batches.c.edition_id == edition.id,
                    edition_batches.c.state == QUEUED_BATCH,
                )
            )
        if not left:
            self.digests.close_if_done(edition)


def progress(conn: Connection, edition: str) -> Progress:
    """Batches done of all, and messages sent and uncertain in the batches done."""
    row = conn.execute(
        select(
            func.count(),
            func.count().filter(edition_batches.c.state == DONE_BATCH),
            func.coalesce(func.sum(edition_batches.c.sent), 0),
            func.coalesce(func.sum(edition_batches.c.uncertain), 0),
        ).where(edition_batches.c.edition_id == edition)
    ).one()
    return Progress(edition, row[0], row[1], row[2], row[3])
