"""What the pipeline is doing now (``pipeline status``): each schedule's next run and last
outcome, editions being sent, deliveries that need a person or are waiting for a retry,
who gets each digest, and each channel's last success and last problem.

Everything is read from the state store and the configuration; nothing is changed.
``gather`` collects it, the command line presents it (see pipeline.cli.status).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, and_, cast, func, or_, select
from sqlalchemy.engine import Engine

from pipeline.errors import ConfigError
from pipeline.ledger import FAILED, PENDING, SENT, UNCERTAIN
from pipeline.queue.status import QueueStatus, gather_queue
from pipeline.schema import deliveries, editions, list_unsubscribes, runs, subscribers
from pipeline.settings import Settings
from pipeline.settings.email import DigestSettings
from pipeline.subscribers import (
    ACTIVE,
    BOUNCED,
    UNSUBSCRIBED,
    Subscriber,
    SubscriberStore,
    in_audience,
)
from pipeline.subscribers import PENDING as SIGNED_UP

FAILED_WITHIN = dt.timedelta(days=7)  # older failures are history, not news
AUDIENCE_STATES = (ACTIVE, UNSUBSCRIBED, BOUNCED, SIGNED_UP)
IN_PROGRESS = ("sending", "retrying")  # digest.editions' SENDING_/RETRYING_EDITION
POST, MAIL = "post:", "mail:"


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    """A stored time (naive UTC) as an aware one."""
    return moment.replace(tzinfo=dt.UTC) if moment is not None else None


@dataclass(frozen=True)
class LastRun:
    scheduled_for: dt.datetime  # aware UTC
    outcome: str  # see pipeline.runs: ok, partial, failed, missed, busy, stopped, running
    finished_at: dt.datetime | None
    detail: str | None


@dataclass(frozen=True)
class ScheduleStatus:
    name: str
    action: str
    when: str  # in words: "Mondays at 09:00"
    timezone: str
    enabled: bool
    next_run: dt.datetime | None  # aware, in the schedule's zone; None when paused
    note: str | None  # daylight saving moved or doubled the next run
    last: LastRun | None

    def as_json(self) -> dict[str, Any]:
        last = self.last
        return {
            "name": self.name,
            "does": self.action,
            "when": self.when,
            "timezone": self.timezone,
            "enabled": self.enabled,
            "next_run": _iso(self.next_run),
            "next_run_note": self.note,
            "last_run": None
            if last is None
            else {
                "scheduled_for": last.scheduled_for.isoformat(),
                "outcome": last.outcome,
                "finished_at": _iso(last.finished_at),
                "detail": last.detail,
            },
        }


@dataclass(frozen=True)
class OpenEdition:
    id: str
    digest: str
    status: str  # sending (its audience is being walked) or retrying (some wait)
    created_at: dt.datetime  # aware UTC
    counts: dict[str, int]  # deliveries by state

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "digest": self.digest,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "counts": self.counts,
        }


@dataclass(frozen=True)
class Trouble:
    """A delivery that did not go out: uncertain, failed, or waiting for a retry."""

    kind: str  # post or mail
    where: str  # the channel, or the edition id
    what: str  # the article id, or the recipient's address
    state: str
    since: dt.datetime  # aware UTC: failing since, or last changed
    next_attempt_at: dt.datetime | None  # aware UTC (waiting ones); None: on the next run
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "channel" if self.kind == "post" else "edition": self.where,
            "article" if self.kind == "post" else "address": self.what,
            "state": self.state,
            "since": self.since.isoformat(),
            "next_attempt_at": _iso(self.next_attempt_at),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Audience:
    """A digest's subscribers by their status for it (see ``digest_statuses``)."""

    digest: str
    counts: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        return {"digest": self.digest, **{s: self.counts.get(s, 0) for s in AUDIENCE_STATES}}


@dataclass(frozen=True)
class Delivered:
    """One ledger row as a channel's last success or last problem."""

    at: dt.datetime  # aware UTC
    what: str  # article id, or "edition to address"
    state: str
    detail: str | None  # the remote URL of a success, the reason of a problem

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "item": self.what,
            "state": self.state,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class ChannelStatus:
    name: str
    type: str
    last_success: Delivered | None
    last_problem: Delivered | None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "last_success": self.last_success.as_json() if self.last_success else None,
            "last_problem": self.last_problem.as_json() if self.last_problem else None,
        }


@dataclass
class Status:
    now: dt.datetime  # aware UTC
    schedules: list[ScheduleStatus] = field(default_factory=list)
    schedule_problems: list[str] = field(default_factory=list)  # schedules.yaml does not load
    editions: list[OpenEdition] = field(default_factory=list)
    uncertain: list[Trouble] = field(default_factory=list)
    failed: list[Trouble] = field(default_factory=list)  # within FAILED_WITHIN
    waiting: list[Trouble] = field(default_factory=list)
    audiences: list[Audience] = field(default_factory=list)
    channels: list[ChannelStatus] = field(default_factory=list)
    queue: QueueStatus | None = None  # with a `queue:` section only

    def as_json(self) -> dict[str, Any]:
        queue = {"queue": self.queue.as_json()} if self.queue is not None else {}
        return {
            "now": self.now.isoformat(),
            "schedules": [s.as_json() for s in self.schedules],
            "schedule_problems": self.schedule_problems,
            "editions_in_progress": [e.as_json() for e in self.editions],
            "deliveries": {
                "uncertain": [t.as_json() for t in self.uncertain],
                "failed": [t.as_json() for t in self.failed],
                "failed_within_days": FAILED_WITHIN.days,
                "waiting": [t.as_json() for t in self.waiting],
            },
            "subscribers": [a.as_json() for a in self.audiences],
            "channels": [c.as_json() for c in self.channels],
            **queue,  # with a `queue:` section only
        }


def gather(
    settings: Settings,
    engine: Engine,
    schedules: Callable[[], Any],
    now: dt.datetime,
) -> Status:
    """The whole status at ``now``. ``schedules`` loads schedules.yaml; if it does not
    load, its problems are reported, the rest still is."""
    status = Status(now)
    try:
        loaded = schedules()
    except ConfigError as exc:
        status.schedule_problems = [str(p) for p in exc.problems]
    else:
        status.schedules = [_schedule(engine, s, status.now) for s in loaded.schedules]
    status.editions = _open_editions(engine)
    troubles = _troubles(engine, status.now - FAILED_WITHIN)
    for trouble in troubles:
        {UNCERTAIN: status.uncertain, FAILED: status.failed, PENDING: status.waiting}[
            trouble.state
        ].append(trouble)
    memberships = digest_statuses(engine, settings.digests)
    for name in settings.digests:
        counts = Counter(states[name] for _, states in memberships if name in states)
        status.audiences.append(Audience(name, dict(counts)))
    status.channels = [
        ChannelStatus(name, options.type, *_last(engine, f"{POST}{name}", exact=True))
        for name, options in settings.channels.items()
    ]
    if settings.email is not None:
        kind = f"email ({settings.email.delivery})"
        status.channels.append(ChannelStatus("email", kind, *_last(engine, MAIL, exact=False)))
    if settings.queue is not None:
        status.queue = gather_queue(engine, settings.queue.stalled_after)
    return status


def _schedule(engine: Engine, schedule: Any, now: dt.datetime) -> ScheduleStatus:
    from pipeline.triggers import next_runs

    upcoming = next_runs(schedule.trigger, schedule.zone, now, 1) if schedule.enabled else []
    with engine.connect() as conn:
        row = conn.execute(
            select(runs.c.scheduled_for, runs.c.outcome, runs.c.finished_at, runs.c.detail)
            .where(runs.c.schedule == schedule.name)
            .order_by(runs.c.scheduled_for.desc(), runs.c.id.desc())
            .limit(1)
        ).first()
    last = (
        LastRun(
            row.scheduled_for.replace(tzinfo=dt.UTC),
            row.outcome,
            _aware(row.finished_at),
            row.detail,
        )
        if row is not None
        else None
    )
    return ScheduleStatus(
        schedule.name,
        str(schedule.action),
        schedule.describe(),
        schedule.timezone,
        schedule.enabled,
        upcoming[0].local if upcoming else None,
        upcoming[0].note if upcoming else None,
        last,
    )


def _open_editions(engine: Engine) -> list[OpenEdition]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(editions.c.id, editions.c.digest, editions.c.status, editions.c.created_at)
            .where(editions.c.status.in_(IN_PROGRESS))
            .order_by(editions.c.created_at, editions.c.id)
        ).all()
        found = []
        for row in rows:
            counts = conn.execute(
                select(deliveries.c.state, func.count())
                .where(deliveries.c.stream == f"{MAIL}{row.id}")
                .group_by(deliveries.c.state)
            ).all()
            found.append(
                OpenEdition(
                    row.id,
                    row.digest,
                    row.status,
                    row.created_at.replace(tzinfo=dt.UTC),
                    {state: n for state, n in sorted(counts)},
                )
            )
    return found


def _troubles(engine: Engine, failed_since: dt.datetime) -> list[Trouble]:
    """Uncertain and waiting deliveries, and those failed since ``failed_since``; oldest
    first. A mail's recipient is named by address."""
    cutoff = failed_since.astimezone(dt.UTC).replace(tzinfo=None)
    query = (
        select(deliveries, subscribers.c.email)
        .select_from(
            # items of a mail stream are subscriber ids, written as text
            deliveries.outerjoin(subscribers, cast(subscribers.c.id, String) == deliveries.c.item)
        )
        .where(
            or_(
                deliveries.c.state.in_((UNCERTAIN, PENDING)),
                and_(deliveries.c.state == FAILED, deliveries.c.updated_at >= cutoff),
            )
        )
        .order_by(deliveries.c.updated_at, deliveries.c.stream, deliveries.c.item)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    found = []
    for row in rows:
        mail = row.stream.startswith(MAIL)
        what = (row.email or f"subscriber #{row.item} (no longer on file)") if mail else row.item
        found.append(
            Trouble(
                "mail" if mail else "post",
                row.stream.removeprefix(MAIL if mail else POST),
                what,
                row.state,
                (row.failing_since or row.updated_at).replace(tzinfo=dt.UTC),
                _aware(row.next_attempt_at),
                row.detail or "",
            )
        )
    return found


def _last(engine: Engine, stream: str, *, exact: bool) -> tuple[Delivered | None, ...]:
    """The newest sent row and the newest row that did not go out (with a reason) of a
    stream, or of every stream starting with ``stream``."""
    where = deliveries.c.stream == stream if exact else deliveries.c.stream.startswith(stream)
    problem = and_(
        deliveries.c.state.in_((FAILED, UNCERTAIN, PENDING)), deliveries.c.detail.is_not(None)
    )
    found: list[Delivered | None] = []
    with engine.connect() as conn:
        for condition in (deliveries.c.state == SENT, problem):
            query = select(deliveries)
            if not exact:  # mail: its recipient's address too
                query = select(deliveries, subscribers.c.email).select_from(
                    deliveries.outerjoin(
                        subscribers, cast(subscribers.c.id, String) == deliveries.c.item
                    )
                )
            query = query.where(where, condition).order_by(deliveries.c.updated_at.desc())
            row = conn.execute(query.limit(1)).first()
            if row is None:
                found.append(None)
                continue
            what = row.item
            if not exact:  # a mail: the edition and its recipient
                who = row.email or f"subscriber #{row.item}"
                what = f"{row.stream.removeprefix(MAIL)} to {who}"
            detail = row.remote_url if row.state == SENT else row.detail
            found.append(Delivered(row.updated_at.replace(tzinfo=dt.UTC), what, row.state, detail))
    return tuple(found)


def digest_status(
    subscriber: Subscriber, digest: str, settings: DigestSettings, left: set[str]
) -> str | None:
    """A subscriber's status for one digest: None if its audience does not take them
    (and they never left it); bounced, pending or unsubscribed (from everything, or
    from this digest: ``left`` are the digests they left); else active."""
    audience = settings.audience
    if digest not in left and not in_audience(subscriber, audience.languages, audience.topics):
        return None
    if subscriber.status in (BOUNCED, SIGNED_UP):  # an address that bounces, a sign-up
        return subscriber.status  # not yet confirmed: whatever they left before
    return UNSUBSCRIBED if digest in left else subscriber.status


def digest_statuses(
    engine: Engine, digests: Mapping[str, DigestSettings]
) -> list[tuple[Subscriber, dict[str, str]]]:
    """Every subscriber, by address, with their status for each digest that concerns
    them (its audience takes them, or they left it): see ``digest_status``."""
    with engine.connect() as conn:
        left: dict[int, set[str]] = {}
        for subscriber_id, name in conn.execute(
            select(list_unsubscribes.c.subscriber_id, list_unsubscribes.c.list_name)
        ):
            left.setdefault(subscriber_id, set()).add(name)
    found = []
    for subscriber in SubscriberStore(engine).all():
        mine = left.get(subscriber.id, set())
        states = {
            name: state
            for name, options in digests.items()
            if (state := digest_status(subscriber, name, options, mine)) is not None
        }
        found.append((subscriber, states))
    return found


def to_json(status: Status) -> str:
    return json.dumps(status.as_json(), ensure_ascii=False, indent=2)
