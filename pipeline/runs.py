"""What the scheduler did, and who may do what now: the run history and action locks.

Both live in the state store, so they hold across processes and machines sharing it:
a second ``pipeline serve`` started by mistake finds the locks taken and the history
written, and cannot run an action the first is running.

A lock is a row (name, owner, expires_at). Taking it is one INSERT, or one UPDATE of
a row whose holder has expired or has certainly died (same host, pid gone): a single
statement either way, so two processes cannot both succeed. The holder renews it while
it works; a holder that hangs loses it only after ``ttl``.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from pipeline.clock import Clock, aware_utc, naive_utc, system_clock
from pipeline.ledger import owner_is_gone, this_process
from pipeline.schema import locks, runs

RUNNING, OK, PARTIAL, FAILED = "running", "ok", "partial", "failed"
MISSED, BUSY, STOPPED = "missed", "busy", "stopped"
QUEUED = "queued"  # its jobs are in the queue, for `pipeline worker` (pipeline.queue)


class Locks:
    """``clock`` dates each lock's expiry and judges it, so tests move it instead of
    sleeping past ``ttl``; ``holding`` renews on real time."""

    def __init__(
        self,
        engine: Engine,
        ttl: dt.timedelta = dt.timedelta(minutes=2),
        clock: Clock = system_clock,
    ):
        self.engine = engine
        self.ttl = ttl
        self.clock = clock

    def holder(self, name: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.scalar(select(locks.c.owner).where(locks.c.name == name))

    def acquire(self, name: str, owner: str) -> bool:
        expires = naive_utc(self.clock() + self.ttl)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(locks).values(name=name, owner=owner, expires_at=expires))
            return True
        except IntegrityError:
            pass
        holder = self.holder(name)
        stale = [locks.c.expires_at < naive_utc(self.clock())]
        if holder and owner_is_gone(holder.partition("/")[0]):
            stale.append(locks.c.owner == holder)
        with self.engine.begin() as conn:
            taken = conn.execute(
                update(locks)
                .where(locks.c.name == name, or_(*stale))
                .values(owner=owner, expires_at=expires)
            )
        return taken.rowcount == 1

    def renew(self, names: tuple[str, ...], owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(locks)
                .where(locks.c.name.in_(names), locks.c.owner == owner)
                .values(expires_at=naive_utc(self.clock() + self.ttl))
            )

    def release(self, names: tuple[str, ...], owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(locks).where(locks.c.name.in_(names), locks.c.owner == owner))

    @contextmanager
    def holding(self, names: tuple[str, ...]) -> Iterator[str | None]:
        """Take every lock in ``names`` (in order) or none: yields None and the name of
        a busy one's holder if one is taken; renews them in the background while held."""
        owner = f"{this_process()}/{uuid.uuid4().hex[:8]}"
        taken: list[str] = []
        for name in names:
            if not self.acquire(name, owner):
                self.release(tuple(taken), owner)
                yield f"{name} is running in {self.holder(name) or 'another process'}"
                return
            taken.append(name)
        done = threading.Event()

        def keep_alive() -> None:
            while not done.wait(self.ttl.total_seconds() / 4):
                self.renew(names, owner)

        renewer = threading.Thread(target=keep_alive, name="lock-renewer", daemon=True)
        renewer.start()
        try:
            yield None
        finally:
            done.set()
            renewer.join()
            self.release(names, owner)


@dataclass(frozen=True)
class Run:
    id: int
    schedule: str
    action: str
    scheduled_for: dt.datetime  # aware UTC
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    outcome: str
    counts: dict[str, int]
    detail: str | None
    owner: str | None


class RunLog:
    """``clock`` dates when each run started and finished."""

    def __init__(self, engine: Engine, clock: Clock = system_clock):
        self.engine = engine
        self.clock = clock

    def start(self, schedule: str, action: str, scheduled_for: dt.datetime) -> int:
        with self.engine.begin() as conn:
            key = conn.execute(
                insert(runs).values(
                    schedule=schedule,
                    action=action,
                    scheduled_for=naive_utc(scheduled_for),
                    started_at=naive_utc(self.clock()),
                    outcome=RUNNING,
                    counts="{}",
                    owner=this_process(),
                )
            ).inserted_primary_key
        assert key is not None  # None only for executemany(); this inserts one row
        return int(key[0])

    def finish(
        self, run_id: int, outcome: str, counts: dict[str, int], detail: str | None = None
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(
                    outcome=outcome,
                    counts=json.dumps(counts),
                    detail=detail,
                    finished_at=naive_utc(self.clock()),
                )
            )

    def merge(
        self,
        run_id: int,
        counts: dict[str, int],
        problems: list[str],
        notes: Sequence[str] = (),
        *,
        also: Callable[[Connection], None] = lambda conn: None,
    ) -> None:
        """Add one job's outcome to its run (a queued run is done by many jobs, on any
        worker): counts add up, problems and notes are appended, and the run is ``ok``
        or, once any job had a problem, ``partial``. ``also`` runs in the same
        transaction (a job's follow-ups are enqueued with its outcome)."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(runs.c.counts, runs.c.detail, runs.c.outcome)
                .where(runs.c.id == run_id)
                .with_for_update()  # two jobs finishing at once both count
            ).first()
            if row is not None:
                self._add(conn, run_id, row, counts, problems, notes)
            also(conn)

    def _add(
        self,
        conn: Connection,
        run_id: int,
        row: Any,
        counts: dict[str, int],
        problems: list[str],
        notes: Sequence[str],
    ) -> None:
        total = json.loads(row.counts)
        for kind, n in counts.items():
            total[kind] = total.get(kind, 0) + n
        detail = "\n".join(filter(None, [row.detail, *notes, *problems])) or None
        conn.execute(
            update(runs)
            .where(runs.c.id == run_id)
            .values(
                outcome=PARTIAL if problems or row.outcome == PARTIAL else OK,
                counts=json.dumps(total),
                detail=detail,
                finished_at=naive_utc(self.clock()),
            )
        )

    def note(
        self, schedule: str, action: str, scheduled_for: dt.datetime, outcome: str, detail: str
    ) -> None:
        """A run that did not happen (missed while down, or busy elsewhere)."""
        with self.engine.begin() as conn:
            conn.execute(
                insert(runs).values(
                    schedule=schedule,
                    action=action,
                    scheduled_for=naive_utc(scheduled_for),
                    outcome=outcome,
                    counts="{}",
                    detail=detail,
                    owner=this_process(),
                )
            )

    def last_scheduled(self, schedule: str) -> dt.datetime | None:
        """The newest scheduled time recorded for ``schedule``, whatever its outcome."""
        with self.engine.connect() as conn:
            latest = conn.scalar(
                select(runs.c.scheduled_for)
                .where(runs.c.schedule == schedule)
                .order_by(runs.c.scheduled_for.desc())
                .limit(1)
            )
        return aware_utc(latest) if latest else None

    def close_interrupted(self) -> list[Run]:
        """Mark ``stopped`` the runs left ``running`` by a process that has certainly
        died (killed, or the machine restarted), and return them."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(runs).where(runs.c.outcome == RUNNING)).all()
        gone = [_run(r) for r in rows if owner_is_gone(r.owner)]
        for run in gone:
            self.finish(run.id, STOPPED, run.counts, "the process running it stopped mid-run")
        return gone

    def resumable(self, schedule: str) -> dt.datetime | None:
        """The scheduled time of the schedule's newest run if a stop cut it short (runs
        that never started, busy or missed, do not hide it)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(runs.c.scheduled_for, runs.c.outcome)
                .where(runs.c.schedule == schedule, runs.c.outcome.not_in((BUSY, MISSED)))
                .order_by(runs.c.scheduled_for.desc(), runs.c.id.desc())
                .limit(1)
            ).first()
        if row is None or row.outcome != STOPPED:
            return None
        return aware_utc(row.scheduled_for)

    def history(self, limit: int = 50) -> list[Run]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(runs).order_by(runs.c.scheduled_for.desc(), runs.c.id.desc()).limit(limit)
            ).all()
        return [_run(r) for r in rows]


def _run(row) -> Run:
    def aware(moment: dt.datetime | None) -> dt.datetime | None:
        return aware_utc(moment) if moment else None

    return Run(
        id=row.id,
        schedule=row.schedule,
        action=row.action,
        scheduled_for=aware_utc(row.scheduled_for),
        started_at=aware(row.started_at),
        finished_at=aware(row.finished_at),
        outcome=row.outcome,
        counts=json.loads(row.counts),
        detail=row.detail,
        owner=row.owner,
    )
