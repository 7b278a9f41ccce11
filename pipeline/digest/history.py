"""What `pipeline history` says about digest editions: counts per delivery state, and
every recipient that did not (yet) get one, by address."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

from sqlalchemy import String, cast, func, select
from sqlalchemy.engine import Engine

from pipeline.ledger import SENT, SKIPPED
from pipeline.schema import chunks, deliveries, editions, subscribers


@dataclass(frozen=True)
class Problem:
    """One recipient of an edition that is not sent: failed, pending or uncertain."""

    address: str
    state: str
    detail: str | None


@dataclass(frozen=True)
class EditionCounts:
    id: str
    status: str
    when: dt.datetime  # naive UTC: when the edition was made
    counts: dict[str, int]
    detail: str | None
    problems: list[Problem] = field(default_factory=list)
    digest: str = ""


def edition_counts(
    engine: Engine,
    limit: int | None = 50,
    *,
    digests: Collection[str] = (),
    since: dt.datetime | None = None,
) -> list[EditionCounts]:
    """The newest editions (all if ``limit`` is None or 0; only of ``digests`` if given,
    only those made at or after ``since``, aware), each with how many deliveries are
    sent/failed/uncertain/… and every recipient not sent, oldest change first."""
    chosen = select(
        editions.c.id,
        editions.c.digest,
        editions.c.status,
        editions.c.created_at,
        editions.c.detail,
    )
    if digests:
        chosen = chosen.where(editions.c.digest.in_(list(digests)))
    if since is not None:
        chosen = chosen.where(
            editions.c.created_at >= since.astimezone(dt.UTC).replace(tzinfo=None)
        )
    with engine.connect() as conn:
        rows = conn.execute(
            chosen.order_by(editions.c.created_at.desc(), editions.c.id.desc()).limit(limit or None)
        ).all()
        counted: dict[str, Counter] = {row.id: Counter() for row in rows}
        problems: dict[str, list[Problem]] = {row.id: [] for row in rows}
        streams = {f"mail:{row.id}": row.id for row in rows}
        for chunk in chunks(list(streams)):
            query = (
                select(deliveries.c.stream, deliveries.c.state, func.count())
                .where(deliveries.c.stream.in_(chunk))
                .group_by(deliveries.c.stream, deliveries.c.state)
            )
            for stream, state, n in conn.execute(query):
                counted[streams[stream]][state] = n
            unsent = (
                select(
                    deliveries.c.stream,
                    deliveries.c.item,
                    deliveries.c.state,
                    deliveries.c.detail,
                    deliveries.c.updated_at,
                    subscribers.c.email,
                )
                .select_from(
                    # items of a mail stream are subscriber ids, written as text
                    deliveries.outerjoin(
                        subscribers, cast(subscribers.c.id, String) == deliveries.c.item
                    )
                )
                .where(deliveries.c.stream.in_(chunk), deliveries.c.state.not_in((SENT, SKIPPED)))
            )
            # Sorted here, not by ORDER BY: SQLite would walk the whole updated_at index
            # in order rather than look the editions' few unsent rows up by stream.
            for row in sorted(conn.execute(unsent), key=lambda r: (r.updated_at, r.item)):
                address = row.email or f"subscriber #{row.item} (no longer on file)"
                problems[streams[row.stream]].append(Problem(address, row.state, row.detail))
    return [
        EditionCounts(
            row.id,
            row.status,
            row.created_at,
            dict(counted[row.id]),
            row.detail,
            problems[row.id],
            row.digest,
        )
        for row in rows
    ]
