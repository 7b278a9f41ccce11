"""What `pipeline history` says about digest editions: counts per delivery state."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from pipeline.schema import deliveries, editions


@dataclass(frozen=True)
class EditionCounts:
    id: str
    status: str
    when: dt.datetime
    counts: dict[str, int]
    detail: str | None


def edition_counts(engine: Engine, limit: int = 50) -> list[EditionCounts]:
    """The newest editions, each with how many deliveries are sent/failed/uncertain/…"""
    with engine.connect() as conn:
        rows = conn.execute(
            select(editions.c.id, editions.c.status, editions.c.created_at, editions.c.detail)
            .order_by(editions.c.created_at.desc())
            .limit(limit)
        ).all()
        counted: dict[str, Counter] = {row.id: Counter() for row in rows}
        streams = {f"mail:{row.id}": row.id for row in rows}
        if streams:
            query = (
                select(deliveries.c.stream, deliveries.c.state, func.count())
                .where(deliveries.c.stream.in_(list(streams)))
                .group_by(deliveries.c.stream, deliveries.c.state)
            )
            for stream, state, n in conn.execute(query):
                counted[streams[stream]][state] = n
    return [
        EditionCounts(row.id, row.status, row.created_at, dict(counted[row.id]), row.detail)
        for row in rows
    ]
