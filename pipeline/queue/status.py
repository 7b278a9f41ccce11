"""The queue's part of ``pipeline status``: jobs by state, stalled jobs, live workers,
and how far each fanned-out edition is.

Read from procrastinate's tables and ``edition_batches`` in the state store; nothing is
changed. A job is *stalled* when it is running on a worker that has sent no heartbeat
for ``queue.stalled_after`` seconds (or whose row is gone): a live worker takes it back
shortly (pipeline.queue.worker).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select, text

from pipeline.digest.batches import Progress, progress
from pipeline.schema import edition_batches, editions

_JOBS = text(
    "SELECT j.task_name, j.status::text, count(*) FROM procrastinate_jobs j "
    "WHERE j.status IN ('todo', 'doing', 'failed') GROUP BY 1, 2"
)
_STALLED = text(
    "SELECT j.id, j.task_name, w.last_heartbeat FROM procrastinate_jobs j "
    "LEFT JOIN procrastinate_workers w ON w.id = j.worker_id "
    "WHERE j.status = 'doing' AND (w.id IS NULL "
    "OR w.last_heartbeat < now() - make_interval(secs => :seconds)) ORDER BY j.id"
)
_WORKERS = text(
    "SELECT w.id, w.last_heartbeat, "
    "(SELECT count(*) FROM procrastinate_jobs j WHERE j.worker_id = w.id "
    "AND j.status = 'doing') FROM procrastinate_workers w "
    "WHERE w.last_heartbeat >= now() - make_interval(secs => :seconds) ORDER BY w.id"
)


@dataclass(frozen=True)
class Worker:
    id: int
    last_heartbeat: dt.datetime  # aware
    running: int  # jobs it is running now

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "last_heartbeat": self.last_heartbeat.isoformat(),
            "running": self.running,
        }


@dataclass(frozen=True)
class StalledJob:
    id: int
    task: str
    last_heartbeat: dt.datetime | None  # of its worker; None: the worker row is gone


@dataclass
class QueueStatus:
    jobs: dict[str, dict[str, int]] = field(default_factory=dict)  # state → task → count
    stalled: list[StalledJob] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)
    editions: list[Progress] = field(default_factory=list)

    def total(self, state: str) -> int:
        return sum(self.jobs.get(state, {}).values())

    def as_json(self) -> dict[str, Any]:
        return {
            "jobs": {state: self.jobs.get(state, {}) for state in ("todo", "doing", "failed")},
            "stalled": [
                {
                    "id": j.id,
                    "task": j.task,
                    "last_heartbeat": j.last_heartbeat.isoformat() if j.last_heartbeat else None,
                }
                for j in self.stalled
            ],
            "workers": [w.as_json() for w in self.workers],
            "editions": [
                {
                    "edition": p.edition,
                    "batches": p.batches,
                    "batches_done": p.done,
                    "sent": p.sent,
                    "uncertain": p.uncertain,
                }
                for p in self.editions
            ],
        }


def gather_queue(engine: Engine, stalled_after: float) -> QueueStatus:
    """The queue now. procrastinate's tables exist once a ``serve`` or ``worker`` has
    opened the store with a queue configured; before that the queue is simply empty."""
    status = QueueStatus()
    with engine.connect() as conn:
        if conn.scalar(text("SELECT to_regclass('procrastinate_jobs')")) is not None:
            for task, state, count in conn.execute(_JOBS):
                status.jobs.setdefault(state, {})[task.removeprefix("pipeline.")] = count
            status.stalled = [
                StalledJob(job_id, task.removeprefix("pipeline."), beat)
                for job_id, task, beat in conn.execute(_STALLED, {"seconds": stalled_after})
            ]
            status.workers = [
                Worker(*row) for row in conn.execute(_WORKERS, {"seconds": stalled_after})
            ]
        fanned_out = conn.scalars(
            select(editions.c.id)
            .where(
                editions.c.status.in_(("sending", "retrying")),
                editions.c.id.in_(select(edition_batches.c.edition_id)),
            )
            .order_by(editions.c.created_at)
        ).all()
        status.editions = [progress(conn, edition) for edition in fanned_out]
    return status
