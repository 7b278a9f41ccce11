"""Which digest editions the public may read, and what the archive pages say of them.

An edition is *public* once it has reached someone: ``sent`` or ``retrying`` (its
audience walked), or ``sending`` with at least one recipient's delivery confirmed (those
readers hold its "View in browser" link while the rest are still being mailed). One
nobody has received yet, and a skipped one, is not: its page answers 404 like an edition
that never existed, so a guessed address shows nothing early.

The archive lists only finished editions (``sent`` and ``retrying``), newest first,
with the titles of the articles they carry as those articles read now: a corrected title
is shown corrected, and an article deleted since is left out of the list (the frozen web
version of the edition still carries what was mailed).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import Row, exists, func, select
from sqlalchemy.engine import Engine

from pipeline.clock import aware_utc
from pipeline.digest.editions import RETRYING_EDITION, SENDING_EDITION, SENT_EDITION, mail_stream
from pipeline.ledger import SENT
from pipeline.schema import LIVE, articles, deliveries, editions

FINISHED = (SENT_EDITION, RETRYING_EDITION)
PAGE_SIZE = 20  # editions per archive page: a weekly digest's five months
LISTED = [  # what a listing reads of an edition: not its html and text
    editions.c[name]
    for name in (
        "id",
        "digest",
        "scheduled_for",
        "subject",
        "articles",
        "created_at",
        "finished_at",
    )
]
MAX_PAGE = 100_000  # a page number past any archive; larger ones are not looked up


@dataclass(frozen=True)
class Lead:
    title: str
    url: str


@dataclass(frozen=True)
class PastEdition:
    id: str  # "weekly-en@2026-11-23T09:00+05:45"
    digest: str
    scheduled_for: dt.datetime  # aware, UTC
    updated: dt.datetime  # aware, UTC: when it finished, else when it was made
    subject: str
    carried: int  # how many articles it carried
    leads: tuple[Lead, ...]  # its articles still published, in the edition's order

    @property
    def time(self) -> str:
        """The edition's part of its web address (``2026-11-23T09:00+05:45``)."""
        return self.id.partition("@")[2]


@dataclass(frozen=True)
class ArchivePage:
    editions: list[PastEdition]
    number: int  # 1-based
    pages: int  # at least 1, even when there is no edition yet
    total: int


class Archive:
    """Reads the editions table of one state store; no state of its own."""

    def __init__(self, engine: Engine, page_size: int = PAGE_SIZE):
        self.engine = engine
        self.page_size = page_size

    def page(self, digests: Collection[str], number: int) -> ArchivePage | None:
        """Page ``number`` of the finished editions of ``digests``, newest first; None
        for a page past the last (page 1 always exists)."""
        if not 1 <= number <= MAX_PAGE:
            return None
        with self.engine.connect() as conn:
            total = conn.scalar(
                select(func.count()).select_from(editions).where(*_finished(digests))
            )
        pages = max(1, math.ceil((total or 0) / self.page_size))
        if number > pages:
            return None
        offset = (number - 1) * self.page_size
        return ArchivePage(self._newest(digests, offset, self.page_size), number, pages, total or 0)

    def latest(self, digest: str, limit: int) -> list[PastEdition]:
        """The newest ``limit`` finished editions of ``digest``, newest first."""
        return self._newest([digest], 0, limit)

    def _newest(self, digests: Collection[str], offset: int, limit: int) -> list[PastEdition]:
        # Chosen by the columns stored before html and text, then read in full for the
        # chosen few: SQLite keeps a 40 KB edition in overflow pages, which a sort over
        # every edition's later columns (created_at, finished_at) would walk, row by row.
        with self.engine.connect() as conn:
            chosen = conn.scalars(
                select(editions.c.id)
                .where(*_finished(digests))
                .order_by(editions.c.scheduled_for.desc(), editions.c.id.desc())
                .offset(offset)
                .limit(limit)
            ).all()
            rows = conn.execute(select(*LISTED).where(editions.c.id.in_(chosen))).all()
        by_id = {row.id: row for row in rows}
        return self._with_leads([by_id[id_] for id_ in chosen if id_ in by_id])

    def is_public(self, edition_id: str, status: str) -> bool:
        """Whether the edition with this id and status has reached anyone (see above)."""
        if status in FINISHED:
            return True
        if status != SENDING_EDITION:
            return False
        confirmed = exists().where(
            deliveries.c.stream == mail_stream(edition_id), deliveries.c.state == SENT
        )
        with self.engine.connect() as conn:
            return bool(conn.scalar(select(confirmed)))

    def _with_leads(self, rows: Sequence[Row]) -> list[PastEdition]:
        carried = {row.id: tuple(json.loads(row.articles)) for row in rows}
        wanted = sorted({a for ids in carried.values() for a in ids})
        live: dict[str, Lead] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):  # bounded IN lists
                chunk = wanted[start : start + 500]
                query = select(articles.c.id, articles.c.data).where(
                    articles.c.id.in_(chunk), articles.c.status == LIVE
                )
                for article_id, data in conn.execute(query):
                    fields = json.loads(data)
                    live[article_id] = Lead(fields["title"], fields["url"])
        return [
            PastEdition(
                id=row.id,
                digest=row.digest,
                scheduled_for=aware_utc(row.scheduled_for),
                updated=aware_utc(row.finished_at or row.created_at),
                subject=row.subject,
                carried=len(carried[row.id]),
                leads=tuple(live[a] for a in carried[row.id] if a in live),
            )
            for row in rows
        ]


def _finished(digests: Collection[str]) -> tuple:
    return (editions.c.digest.in_(sorted(digests)), editions.c.status.in_(FINISHED))
