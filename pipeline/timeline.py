"""What the pipeline did, as one timeline (``pipeline history``): scheduled runs, posts,
digest editions and, when asked for, each recipient's copy of a digest, newest first.

Each kind is read from its own table with the filters applied there, then merged by
time. Runs are dated by their scheduled time, posts and mails by their last change,
editions by when they were made. ``mail`` (one row per recipient) is left out unless
asked for: an edition already counts its recipients and names those it did not reach.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, and_, cast, false, literal, or_, select
from sqlalchemy.engine import Engine

from pipeline.clock import system_clock
from pipeline.digest.history import edition_counts
from pipeline.schema import deliveries, runs, subscribers

KINDS = ("run", "post", "edition", "mail")
DEFAULT_KINDS = ("run", "post", "edition")
POST, MAIL = "post:", "mail:"
WELCOME = "welcome"  # the welcome emails' stream (pipeline.welcome.STREAM, kept light here)
_ORDER = {kind: index for index, kind in enumerate(KINDS)}  # ties: the later kind first
_SPAN = re.compile(r"(\d{1,6})\s*(m|min|mins|minutes?|h|hours?|d|days?|w|weeks?)", re.IGNORECASE)
_UNIT = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class Filters:
    """What to show. ``digests`` and ``channels`` together mean "about any of these":
    runs that send or post to them, their editions, mails and posts."""

    kinds: tuple[str, ...] = DEFAULT_KINDS
    since: dt.datetime | None = None  # aware
    digests: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()

    @property
    def narrowed(self) -> bool:
        kinds = set(self.kinds) != set(DEFAULT_KINDS)
        return bool(self.since or self.digests or self.channels or kinds)

    @property
    def about(self) -> bool:
        """Whether only what concerns some digests or channels is wanted."""
        return bool(self.digests or self.channels)


@dataclass(frozen=True)
class Event:
    """One line of the timeline; ``notes`` are shown under it, ``data`` is for --json."""

    when: dt.datetime  # aware, UTC
    kind: str
    name: str  # the schedule, channel, edition or address
    state: str
    detail: str
    notes: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "when": self.when.isoformat(),
            "kind": self.kind,
            "name": self.name,
            "state": self.state,
            "detail": self.detail,
            **self.data,
        }


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """``7d``, ``12h``, ``30 minutes``, ``2w`` (before ``now``), a date ``2026-11-23``
    (midnight UTC, as history shows times in UTC) or a time ``2026-11-23T09:00`` (UTC
    unless it has an offset). ValueError says what would be right."""
    value = text.strip()
    span = _SPAN.fullmatch(value)
    if span:
        unit = _UNIT[span.group(2)[0].lower()]
        moment = now or system_clock()
        try:
            return moment - dt.timedelta(**{unit: int(span.group(1))})
        except OverflowError:
            raise ValueError(f"{text!r} reaches back before the year 1") from None
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), dt.UTC)
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration nor a date; write e.g. 7d, 12h, 30m, 2w, "
            "2026-11-23 or 2026-11-23T09:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def timeline(engine: Engine, filters: Filters = Filters(), limit: int | None = 50) -> list[Event]:
    """The newest ``limit`` events that pass ``filters`` (all of them for None or 0)."""
    most = limit or None
    found: list[Event] = []
    if "run" in filters.kinds:
        found += _runs(engine, filters, most)
    if "post" in filters.kinds and (filters.channels or not filters.digests):
        found += _posts(engine, filters, most)
    if "edition" in filters.kinds and (filters.digests or not filters.channels):
        found += _editions(engine, filters, most)
    if "mail" in filters.kinds and (filters.digests or not filters.channels):
        found += _mails(engine, filters, most)
    found.sort(key=lambda e: (e.when, _ORDER[e.kind]), reverse=True)
    return found[:most]


def _naive(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    return moment.replace(tzinfo=dt.UTC) if moment is not None else None


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.replace(tzinfo=dt.UTC).isoformat() if moment is not None else None


def _runs(engine: Engine, filters: Filters, most: int | None) -> list[Event]:
    query = select(runs).order_by(runs.c.scheduled_for.desc(), runs.c.id.desc())
    if filters.since is not None:
        query = query.where(runs.c.scheduled_for >= _naive(filters.since))
    if filters.about:
        query = query.where(_touching(filters))
    # the newest ``most`` read off the (scheduled_for, id) index
    query = query.limit(most)
    with engine.connect() as conn:
        return [_run_event(row) for row in conn.execute(query)]


def _touching(filters: Filters) -> Any:
    """Runs that send a digest or post to a channel the filters name, in SQL so that the
    LIMIT applies: ``digest NAME`` for a digest named; ``cycle`` or ``post`` alone, or
    naming a channel named (``post a b``)."""
    action = runs.c.action
    words = literal(" ") + action + literal(" ")  # whole words: "post ab" is not about "a"
    digest = [action == f"digest {name}" for name in filters.digests]
    digest += [action.startswith(f"digest {name} ", autoescape=True) for name in filters.digests]
    posts = or_(action.startswith("cycle ", autoescape=True), action.startswith("post "))
    named = [and_(posts, words.contains(f" {name} ", autoescape=True)) for name in filters.channels]
    everything = [action.in_(("cycle", "post"))] if filters.channels else []
    return or_(false(), *digest, *everything, *named)


def _run_event(row: Any) -> Event:
    counts: dict[str, int] = json.loads(row.counts)
    said = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    took = (
        f" in {(row.finished_at - row.started_at).total_seconds():.1f} s"
        if row.finished_at and row.started_at
        else ""
    )
    when = row.scheduled_for.replace(tzinfo=dt.UTC)
    return Event(
        when,
        "run",
        row.schedule,
        row.outcome,
        f"{row.action}{': ' + said if said else ''}{took}",
        tuple((row.detail or "").splitlines()),
        {
            "schedule": row.schedule,
            "action": row.action,
            "scheduled_for": when.isoformat(),
            "started_at": _iso(row.started_at),
            "finished_at": _iso(row.finished_at),
            "counts": counts,
            "notes": (row.detail or "").splitlines(),
        },
    )


def _streams(prefix: str, names: tuple[str, ...]) -> Any:
    """Rows of these streams: ``post:NAME``, or every edition ``mail:NAME@…``."""
    column = deliveries.c.stream
    if not names and prefix == MAIL:  # every digest's mail, and the welcome emails
        return or_(column.startswith(prefix, autoescape=True), column == WELCOME)
    if not names:
        return column.startswith(prefix, autoescape=True)
    if prefix == POST:
        return column.in_([f"{POST}{n}" for n in names])
    return or_(*(column.startswith(f"{MAIL}{n}@", autoescape=True) for n in names))


def _deliveries(
    engine: Engine, prefix: str, names: tuple[str, ...], filters: Filters, most: int | None
) -> list[Any]:
    """Ledger rows of posts or mails, newest change first; a mail's with its address."""
    if prefix == MAIL:
        query = select(deliveries, subscribers.c.email).select_from(
            # items of a mail stream are subscriber ids, written as text
            deliveries.outerjoin(subscribers, cast(subscribers.c.id, String) == deliveries.c.item)
        )
    else:
        query = select(deliveries)
    query = query.where(_streams(prefix, names))
    if filters.since is not None:
        query = query.where(deliveries.c.updated_at >= _naive(filters.since))
    query = query.order_by(
        deliveries.c.updated_at.desc(), deliveries.c.stream, deliveries.c.item
    ).limit(most)
    with engine.connect() as conn:
        return list(conn.execute(query).all())


def _posts(engine: Engine, filters: Filters, most: int | None) -> list[Event]:
    found = []
    for row in _deliveries(engine, POST, filters.channels, filters, most):
        channel = row.stream.removeprefix(POST)
        where = row.remote_url or row.detail or ""
        found.append(
            Event(
                row.updated_at.replace(tzinfo=dt.UTC),
                "post",
                channel,
                row.state,
                f"{row.item}  {where}".rstrip(),
                data={
                    "channel": channel,
                    "article": row.item,
                    "remote_url": row.remote_url,
                    "attempts": row.attempts,
                    "problem": row.detail if row.state != "sent" else None,
                    "next_attempt_at": _iso(row.next_attempt_at),
                },
            )
        )
    return found


def _mails(engine: Engine, filters: Filters, most: int | None) -> list[Event]:
    found = []
    for row in _deliveries(engine, MAIL, filters.digests, filters, most):
        edition = row.stream.removeprefix(MAIL)  # "welcome" for a welcome email
        address = row.email or f"subscriber #{row.item} (no longer on file)"
        found.append(
            Event(
                row.updated_at.replace(tzinfo=dt.UTC),
                "mail",
                address,
                row.state,
                edition + (f" — {row.detail}" if row.detail else ""),
                data={
                    "digest": None if row.stream == WELCOME else edition.partition("@")[0],
                    "edition": None if row.stream == WELCOME else edition,
                    "address": address,
                    "attempts": row.attempts,
                    "problem": row.detail,
                    "next_attempt_at": _iso(row.next_attempt_at),
                },
            )
        )
    return found


def _editions(engine: Engine, filters: Filters, most: int | None) -> list[Event]:
    found = []
    for row in edition_counts(engine, most, digests=filters.digests, since=filters.since):
        counts = ", ".join(f"{n} {state}" for state, n in row.counts.items())
        if row.status == "skipped":
            # Why: too few new articles, or nobody in its audience (see digest.editions).
            detail, notes = row.detail or "", []
        else:
            detail, notes = counts or "no recipients", [row.detail] if row.detail else []
        notes += [f"{p.address} {p.state} — {p.detail}" for p in row.problems]
        found.append(
            Event(
                row.when.replace(tzinfo=dt.UTC),
                "edition",
                row.id,
                row.status,
                detail,
                tuple(notes),
                {
                    "digest": row.digest,
                    "edition": row.id,
                    "counts": row.counts,
                    "note": row.detail,
                    "not_sent": [
                        {"address": p.address, "state": p.state, "problem": p.detail}
                        for p in row.problems
                    ],
                },
            )
        )
    return found
