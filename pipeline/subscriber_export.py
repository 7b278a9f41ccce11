"""Every subscriber as a file: `subscribers export` (CSV that `subscribers import` reads
back as it is, or JSON), and the one-person view of `subscribers show`.

The columns are ``subscriber_formats.EXPORT_COLUMNS``: what the store keeps of a person
(status and why, the digests they left, paused until, consent source and date, created)
plus ``digests``, each digest's status for them as `subscribers list` shows it.
Moments are UTC in ISO 8601 with a ``Z``.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Mapping
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from pipeline.schema import list_unsubscribes
from pipeline.settings.email import DigestSettings
from pipeline.subscriber_formats import EXPORT_COLUMNS
from pipeline.subscribers import Subscriber


def moment(value: dt.datetime | None) -> str:
    """A naive-UTC column as ISO 8601 UTC (``2026-11-23T03:15:00Z``); empty for None."""
    return value.isoformat() + "Z" if value is not None else ""


def is_paused(subscriber: Subscriber, now: dt.datetime) -> bool:
    """Paused: a ``paused_until`` still ahead of ``now`` (naive UTC)."""
    return subscriber.paused_until is not None and subscriber.paused_until > now


def record(subscriber: Subscriber, states: Mapping[str, str], left: set[str]) -> dict[str, Any]:
    """One subscriber as the JSON export writes them (lists and objects kept)."""
    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "language": subscriber.language,
        "topics": list(subscriber.topics),
        "status": subscriber.status,
        "status_detail": subscriber.status_detail or "",
        "digests": dict(states),
        "left": sorted(left),
        "paused_until": moment(subscriber.paused_until),
        "consent_source": subscriber.consent_source or "",
        "consent_at": moment(subscriber.consent_at),
        "created_at": moment(subscriber.created_at),
    }


def records(engine: Engine, digests: Mapping[str, DigestSettings]) -> list[dict[str, Any]]:
    """Every subscriber, by address, as ``record``."""
    from pipeline.status import digest_statuses

    with engine.connect() as conn:
        left: dict[int, set[str]] = {}
        for subscriber_id, name in conn.execute(
            select(list_unsubscribes.c.subscriber_id, list_unsubscribes.c.list_name)
        ):
            left.setdefault(subscriber_id, set()).add(name)
    return [
        record(subscriber, states, left.get(subscriber.id, set()))
        for subscriber, states in digest_statuses(engine, digests)
    ]


def write_csv(rows: list[dict[str, Any]], out: IO[str]) -> None:
    """The CSV export: lists joined by ``;``, digests as ``name: status; …``."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        flat = {
            **row,
            "topics": ";".join(row["topics"]),
            "left": ";".join(row["left"]),
            "digests": "; ".join(f"{name}: {state}" for name, state in row["digests"].items()),
        }
        writer.writerow([flat[column] for column in EXPORT_COLUMNS])


def write_json(rows: list[dict[str, Any]], out: IO[str]) -> None:
    json.dump(rows, out, ensure_ascii=False, indent=2)
    out.write("\n")
