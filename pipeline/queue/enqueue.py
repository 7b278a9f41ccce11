"""The jobs of an action, enqueued in the transaction that records its scheduled fire.

A fire is identified by its schedule and scheduled time (the ``fires`` table's key). The
scheduler that inserts that row first also inserts the run and the jobs, in the same
transaction: a standby that fires the same moment finds the row and enqueues nothing, and
a crash in between leaves neither (the next start's catch-up fires it again).

Jobs go in through procrastinate's own ``procrastinate_defer_jobs_v1`` on the caller's
connection (its Python ``defer`` would use a connection of its own, outside the
transaction). A queueing lock refuses a second job of the same kind while one waits: that
waiting job will do the work anyway, so the refusal is not an error.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, insert, text, update
from sqlalchemy.exc import IntegrityError

from pipeline.actions import Action
from pipeline.clock import Clock, naive_utc, system_clock
from pipeline.ledger import this_process
from pipeline.runs import QUEUED
from pipeline.schema import fires, runs
from pipeline.settings import Settings

INGEST, FEEDS, POST, DIGEST, BATCH = (
    "pipeline.ingest",
    "pipeline.feeds",
    "pipeline.post",
    "pipeline.digest",
    "pipeline.digest_batch",
)
TASKS = (INGEST, FEEDS, POST, DIGEST, BATCH)

_DEFER = text(
    "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW(:queue, :task, 0, :lock, "
    ":queueing_lock, CAST(:args AS jsonb), NULL)::procrastinate_job_to_defer_v1]))"
)


@dataclass(frozen=True)
class JobSpec:
    """One job to enqueue: its task, arguments, and procrastinate's two locks (``lock``:
    one such job runs at a time; ``queueing_lock``: one such job waits at a time)."""

    task: str
    args: dict[str, Any] = field(default_factory=dict)
    lock: str | None = None
    queueing_lock: str | None = None


def defer(conn: Connection, spec: JobSpec, queue: str = "default") -> int | None:
    """Enqueue ``spec`` in the caller's transaction; its id, or None when a job with the
    same queueing lock is already waiting."""
    values = {
        "queue": queue,
        "task": spec.task,
        "lock": spec.lock,
        "queueing_lock": spec.queueing_lock,
        "args": json.dumps(spec.args),
    }
    if spec.queueing_lock is None:
        return conn.execute(_DEFER, values).scalar_one()
    try:
        with conn.begin_nested():  # a refusal must not abort the caller's transaction
            return conn.execute(_DEFER, values).scalar_one()
    except IntegrityError:
        return None


def ingest_job(source: str, run_id: int, then: tuple[str, ...] = ()) -> JobSpec:
    return JobSpec(INGEST, {"source": source, "run_id": run_id, "then": list(then)})


def feeds_job(run_id: int, then: tuple[str, ...] = ()) -> JobSpec:
    # One feed writer at a time; one more waiting covers every change made meanwhile.
    args = {"run_id": run_id, "then": list(then)}
    return JobSpec(FEEDS, args, lock="feeds", queueing_lock="feeds")


def post_job(channel: str, run_id: int) -> JobSpec:
    # One job per channel at a time, across every worker: the network's pacing and
    # limits hold as if one process posted.
    args = {"channel": channel, "run_id": run_id}
    return JobSpec(POST, args, lock=f"channel:{channel}", queueing_lock=f"post:{channel}")


def digest_job(name: str, scheduled: dt.datetime, run_id: int) -> JobSpec:
    args = {"digest": name, "scheduled": scheduled.isoformat(), "run_id": run_id}
    return JobSpec(DIGEST, args, lock=f"digest:{name}")


def batch_job(edition: str, number: int, run_id: int) -> JobSpec:
    args = {"edition": edition, "number": number, "run_id": run_id}
    return JobSpec(BATCH, args, queueing_lock=f"batch:{edition}#{number}")


def jobs_for(
    action: Action, settings: Settings, run_id: int, scheduled: dt.datetime
) -> list[JobSpec]:
    """The first jobs of an action; a cycle's ingest jobs enqueue feeds and posting as
    they finish (``then``)."""
    if action.kind in ("ingest", "cycle"):
        then = ("feeds", "post") if action.kind == "cycle" else ()
        return [ingest_job(s.name, run_id, then) for s in settings.sources]
    if action.kind == "feeds":
        return [feeds_job(run_id)]
    if action.kind == "post":
        return [post_job(name, run_id) for name in action.args or settings.channels]
    if action.kind == "digest":
        return [digest_job(action.args[0], scheduled, run_id)]
    raise ValueError(f"no jobs for {action}")


def next_jobs(then: list[str], settings: Settings, run_id: int) -> list[JobSpec]:
    """What follows a finished step of a cycle."""
    if not then:
        return []
    if then[0] == "feeds":
        return [feeds_job(run_id, tuple(then[1:]))]
    if then[0] == "post":
        return [post_job(name, run_id) for name in settings.channels]
    raise ValueError(f"unknown step {then[0]!r}")


class Enqueuer:
    """What ``serve`` does with a fire when there is a queue."""

    def __init__(self, engine: Engine, settings: Settings, clock: Clock = system_clock):
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.owner = this_process()

    def fire(self, schedule: str, action: Action, scheduled: dt.datetime) -> int | None:
        """Record the fire and enqueue its jobs in one transaction; the run's id, or None
        if this fire was already enqueued (by this scheduler or another)."""
        now = naive_utc(self.clock())
        moment = naive_utc(scheduled)
        with self.engine.begin() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(fires).values(
                            schedule=schedule,
                            scheduled_for=moment,
                            run_id=0,
                            fired_by=self.owner,
                            fired_at=now,
                        )
                    )
            except IntegrityError:
                return None
            run_id = conn.execute(
                insert(runs)
                .values(
                    schedule=schedule,
                    action=str(action),
                    scheduled_for=moment,
                    started_at=now,
                    outcome=QUEUED,
                    counts="{}",
                    owner=self.owner,
                )
                .returning(runs.c.id)
            ).scalar_one()
            conn.execute(
                update(fires)
                .where(fires.c.schedule == schedule, fires.c.scheduled_for == moment)
                .values(run_id=run_id)
            )
            for spec in jobs_for(action, self.settings, run_id, scheduled):
                defer(conn, spec)
        return run_id
