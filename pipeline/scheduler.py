"""``pipeline serve``: run the schedules of schedules.yaml until stopped.

Built on APScheduler 3.11 with its in-memory job store: each process has its own
scheduler (APScheduler 3 must never share a job store between processes), and the
processes coordinate through the state store instead:

- **Locks.** A run takes the locks its action names (``pipeline.actions``) before it
  starts, waiting up to ``lock_wait`` for another schedule or another ``serve`` to
  finish; if still busy, the run is recorded as ``busy``. Underneath, the delivery
  ledger and digest editions (named by scheduled time) already make a second send
  impossible; the locks keep two processes from even trying.
- **Catch-up.** On start, a schedule whose newest run fell while the service was down
  runs once now if that was within its ``grace``; older runs (or one past grace) are
  recorded as ``missed``. A run a stop interrupted is finished the same way.
- **Reload.** schedules.yaml is re-read when it changes. A good edit replaces the
  changed schedules; a bad one (or anything unexpected while reading it) is logged with
  every problem, located, and the last good schedules keep running: an edit never stops
  the service. The config file is watched too: a bad edit is logged the same way, a
  good one is noted; either way the configuration ``serve`` started with stays in use
  until it is restarted.
- **Stopping.** ``stop()`` (SIGTERM/SIGINT in the command) lets the running step
  finish — a digest stops between messages — records the run as ``stopped``, and
  returns.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from pipeline import redact
from pipeline.actions import Actions
from pipeline.clock import Clock, system_clock
from pipeline.errors import ConfigError, PipelineError
from pipeline.logs import event
from pipeline.runs import BUSY, FAILED, MISSED, OK, PARTIAL, QUEUED, STOPPED, Locks, RunLog
from pipeline.schedules import Schedule, ScheduleSet
from pipeline.settings import MAX_FILE_BYTES, load_settings
from pipeline.store import Store
from pipeline.triggers import build_trigger, runs_between

if TYPE_CHECKING:
    from pipeline.queue.enqueue import Enqueuer

LOOKBACK = dt.timedelta(days=1)  # how far back catch-up looks for missed runs


class Scheduler:
    def __init__(
        self,
        load: Callable[[], ScheduleSet],
        schedules_file: Path,
        actions: Actions,
        store: Store,
        *,
        log: logging.Logger,
        clock: Clock = system_clock,
        poll: float = 2.0,
        lock_wait: float = 300.0,
        workers: int = 4,
        config_file: Path | None = None,
        enqueuer: Enqueuer | None = None,
    ):
        self.load = load
        self.enqueuer = enqueuer  # with a queue: a fire enqueues jobs for the workers
        self.schedules_file = schedules_file
        self.config_file = config_file
        self._seen_config: bytes | None = None
        self.actions = actions
        self.store = store
        self.runs = RunLog(store.engine, clock)
        self.locks = Locks(store.engine, clock=clock)
        self.log = log
        self.clock = clock
        self.poll = poll
        self.lock_wait = lock_wait
        self.stopping = threading.Event()
        self.current: dict[str, Schedule] = {}
        self._seen_file: bytes | None = None
        self._aps = BackgroundScheduler(
            timezone=dt.UTC,
            executors={"default": ThreadPoolExecutor(workers)},
            job_defaults={"coalesce": True, "max_instances": 1},
        )

    # -- lifecycle ---------------------------------------------------------------------

    def serve(self) -> None:
        """Start, catch up, then watch schedules.yaml until ``stop()``; returns when the
        running steps have finished."""
        self.start()
        while not self.stopping.wait(self.poll):
            self.reload_if_changed()
            self.check_config_if_changed()
        self.shutdown()

    def start(self) -> None:
        schedules = self.load()  # a bad file at start is the caller's ConfigError
        self._seen_file = self._file_state(self.schedules_file)
        if self.config_file is not None:
            self._seen_config = self._file_state(self.config_file)
        for run in self.runs.close_interrupted():
            self.log.warning(
                "a run was cut short by a crash",
                extra=event(
                    "run.interrupted",
                    schedule=run.schedule,
                    scheduled=run.scheduled_for.isoformat(),
                ),
            )
        self._aps.start()
        self._apply(schedules)
        self.log.info(
            "serving",
            extra=event(
                "serve.started", schedules=len(schedules.enabled()), file=str(self.schedules_file)
            ),
        )
        self.catch_up(schedules)

    def shutdown(self) -> None:
        """Wait for running steps to finish (they stop early once ``stop()`` is called)."""
        self._aps.shutdown(wait=True)
        self.log.info("stopped", extra=event("serve.stopped"))

    def stop(self) -> None:
        self.stopping.set()

    # -- the schedules -----------------------------------------------------------------

    def _apply(self, schedules: ScheduleSet) -> None:
        wanted = {s.name: s for s in schedules.enabled()}
        # Every trigger is built before any job changes: one that cannot be built leaves
        # the running schedules as they were, not half replaced.
        triggers = {
            name: build_trigger(schedule.trigger, schedule.zone)
            for name, schedule in wanted.items()
            if not _same(self.current.get(name), schedule)
        }
        for name in set(self.current) - set(wanted):
            self._aps.remove_job(name)
            self.log.info("schedule removed", extra=event("schedule.removed", schedule=name))
        for name, trigger in triggers.items():
            schedule = wanted[name]
            self._watch_since(schedule)
            self._aps.add_job(
                self._fire,
                trigger=trigger,
                args=[name],
                id=name,
                name=name,
                replace_existing=True,
                misfire_grace_time=int(schedule.grace.total_seconds()),
            )
            job = self._aps.get_job(name)
            self.log.info(
                "schedule added",
                extra=event(
                    "schedule.added",
                    schedule=name,
                    do=str(schedule.action),
                    when=schedule.describe(),
                    next=job.next_run_time.astimezone(schedule.zone).isoformat()
                    if job and job.next_run_time
                    else None,
                ),
            )
        self.current = wanted

    @staticmethod
    def _file_state(path: Path) -> bytes | None:
        # The content, not the mtime: two quick saves within the clock's resolution
        # would look unchanged. The file is small; reading it every poll costs nothing
        # (and a huge one is read only as far as the reader would look, plus its size).
        try:
            with path.open("rb") as file:
                head = file.read(MAX_FILE_BYTES + 1)
                size = file.seek(0, 2)
            return hashlib.sha256(head + size.to_bytes(8, "big")).digest()
        except OSError:
            return None

    def reload_if_changed(self) -> bool:
        """Re-read schedules.yaml if it changed; True if the new schedules are running.
        Never raises: a bad edit is logged and the last good schedules keep running."""
        state = self._file_state(self.schedules_file)
        if state == self._seen_file:
            return False
        self._seen_file = state
        kept = "schedules.yaml has problems; the last good schedules keep running"
        try:
            schedules = self.load()
            self._apply(schedules)
        except ConfigError as exc:
            self._log_problems(exc, "schedules.invalid")
            self.log.error(kept, extra=event("schedules.kept", problems=len(exc.problems)))
            return False
        except Exception:  # a bug met by some edit must not stop every schedule
            self.log.exception(kept, extra=event("schedules.kept", problems=1))
            return False
        self.log.info(
            "schedules reloaded",
            extra=event("schedules.reloaded", schedules=len(schedules.enabled())),
        )
        return True

    def check_config_if_changed(self) -> None:
        """Check the config file when it changed. The settings ``serve`` started with
        stay in use either way (the actions and web endpoints hold them), so a bad edit
        cannot stop anything; it is reported, located, so it can be fixed before the
        next start."""
        if self.config_file is None:
            return
        state = self._file_state(self.config_file)
        if state == self._seen_config:
            return
        self._seen_config = state
        try:
            load_settings(self.config_file)
        except ConfigError as exc:
            self._log_problems(exc, "config.invalid")
            self.log.error(
                "the config file has problems; serve keeps the configuration it started "
                "with, and a restart would fail until they are fixed",
                extra=event("config.kept", problems=len(exc.problems)),
            )
        except Exception:
            self.log.exception("the config file could not be checked", extra=event("config.kept"))
        else:
            self.log.warning(
                "the config file changed; restart serve to use it",
                extra=event("config.changed", file=str(self.config_file)),
            )

    def _log_problems(self, exc: ConfigError, kind: str) -> None:
        for problem in exc.problems:
            self.log.error(str(problem), extra=event(kind, problem=str(problem)))

    def _watch_since(self, schedule: Schedule) -> dt.datetime:
        """When this process (or an earlier one) started watching the schedule: a schedule
        added today has no missed runs from before today."""
        value = self.store.value_or_create(
            f"schedule-watched:{schedule.name}", lambda: {"since": self.clock().isoformat()}
        )
        return dt.datetime.fromisoformat(value["since"])

    # -- running -----------------------------------------------------------------------

    def catch_up(self, schedules: ScheduleSet) -> None:
        """Run once what the downtime missed, if within grace; record the rest as missed."""
        now = self.clock()
        for schedule in schedules.enabled():
            last = self.runs.last_scheduled(schedule.name)
            resumable = self.runs.resumable(schedule.name)
            if resumable is not None and now - resumable <= schedule.grace:
                self._submit(schedule, resumable, "finishing a run that was stopped")
                continue
            since = max(last or self._watch_since(schedule), now - LOOKBACK)
            # Two windows, since runs_between keeps the earliest runs when there are many.
            window = max(since, now - schedule.grace)
            late = runs_between(schedule.trigger, schedule.zone, window, now)
            skipped = runs_between(schedule.trigger, schedule.zone, since, window) + late[:-1]
            if skipped:
                detail = (
                    f"{len(skipped)} run{'s' if len(skipped) > 1 else ''} from "
                    f"{_local(skipped[0], schedule)} to {_local(skipped[-1], schedule)} "
                    "missed while the service was down "
                    f"(catch-up only within {_words(schedule.grace)})"
                )
                self.runs.note(schedule.name, str(schedule.action), skipped[-1], MISSED, detail)
                self.log.warning(
                    detail, extra=event("run.missed", schedule=schedule.name, count=len(skipped))
                )
            if late:
                self._submit(schedule, late[-1], "catching up a run missed while down")

    def _submit(self, schedule: Schedule, scheduled: dt.datetime, why: str) -> None:
        self.log.info(
            why,
            extra=event("run.catch_up", schedule=schedule.name, scheduled=scheduled.isoformat()),
        )
        self._aps.add_job(
            self.execute,
            args=[schedule, scheduled],
            id=f"catch-up:{schedule.name}",
            replace_existing=True,
        )

    def _fire(self, name: str) -> None:
        schedule = self.current.get(name)
        if schedule is None:
            return
        now = self.clock()
        # The run this call is for: the newest due one (APScheduler does not pass it).
        lookback = min(schedule.grace, dt.timedelta(hours=1)) + dt.timedelta(minutes=1)
        due = runs_between(schedule.trigger, schedule.zone, now - lookback, now)
        self.execute(schedule, due[-1] if due else now.replace(microsecond=0))

    def execute(self, schedule: Schedule, scheduled: dt.datetime) -> str:
        """One run of ``schedule`` for its ``scheduled`` time, under its action's locks;
        returns the outcome recorded."""
        if self.stopping.is_set():
            return STOPPED
        fields = {
            "schedule": schedule.name,
            "do": str(schedule.action),
            "scheduled": _local(scheduled, schedule),
        }
        if self.enqueuer is not None:
            return self._enqueue(schedule, scheduled, fields)
        busy = self._wait_for_locks(schedule)
        if busy is not None:
            self.runs.note(schedule.name, str(schedule.action), scheduled, BUSY, busy)
            self.log.warning("run skipped: busy", extra=event("run.busy", **fields, detail=busy))
            return BUSY
        with self.locks.holding(schedule.action.locks()) as refused:
            if refused is not None:  # taken between the wait and now
                self.runs.note(schedule.name, str(schedule.action), scheduled, BUSY, refused)
                return BUSY
            run_id = self.runs.start(schedule.name, str(schedule.action), scheduled)
            self.log.info("run started", extra=event("run.started", **fields))
            try:
                results = self.actions.run(schedule.action, scheduled, stop=self.stopping.is_set)
            except PipelineError as exc:  # a known fault: its message says it all
                self.runs.finish(run_id, FAILED, {}, redact.scrub(str(exc)))
                self.log.error(str(exc), extra=event("run.failed", **fields))
                return FAILED
            except Exception as exc:  # a run must never take the scheduler down
                detail = redact.scrub(f"{type(exc).__name__}: {exc}")
                self.runs.finish(run_id, FAILED, {}, detail)
                self.log.exception("run failed", extra=event("run.failed", **fields))
                return FAILED
            counts: dict[str, int] = {}
            for result in results:
                for kind, n in result.counts.items():
                    counts[kind] = counts.get(kind, 0) + n
            problems = [p for r in results for p in r.problems]
            notes = [r.note for r in results if r.note]
            outcome = OK if not problems else PARTIAL
            if self.stopping.is_set() and (
                len(results) < len(schedule.action.steps()) or schedule.action.kind == "digest"
            ):
                outcome = STOPPED
            summary = "\n".join(notes + problems) or None
            self.runs.finish(run_id, outcome, counts, summary)
            log = self.log.info if outcome == OK else self.log.warning
            log("run finished", extra=event("run.finished", **fields, outcome=outcome, **counts))
            for problem in problems:
                self.log.warning(problem, extra=event("run.problem", schedule=schedule.name))
            return outcome

    def _enqueue(self, schedule: Schedule, scheduled: dt.datetime, fields: dict) -> str:
        """With a queue: the fire's jobs go to the workers (the jobs' own locks keep two
        of a kind from running at once, so no action lock is taken here)."""
        assert self.enqueuer is not None
        try:
            run_id = self.enqueuer.fire(schedule.name, schedule.action, scheduled)
        except Exception:  # a fire must never take the scheduler down
            self.log.exception("could not enqueue the run", extra=event("run.failed", **fields))
            return FAILED
        if run_id is None:
            self.log.info(
                "already enqueued by another scheduler", extra=event("run.duplicate", **fields)
            )
            return QUEUED
        self.log.info("run queued", extra=event("run.queued", **fields, run=run_id))
        return QUEUED

    def _wait_for_locks(self, schedule: Schedule) -> str | None:
        """None once the locks are free (they are taken just after), or who holds one."""
        deadline = time.monotonic() + self.lock_wait
        while True:
            held = [n for n in schedule.action.locks() if self.locks.holder(n)]
            if not held:
                return None
            if time.monotonic() >= deadline or self.stopping.wait(1.0):
                holder = self.locks.holder(held[0]) or "another process"
                return f"{held[0]} was still running in {holder}"


def _same(old: Schedule | None, new: Schedule) -> bool:
    return old is not None and (old.action, old.trigger, old.timezone, old.grace) == (
        new.action,
        new.trigger,
        new.timezone,
        new.grace,
    )


def _local(moment: dt.datetime, schedule: Schedule) -> str:
    return moment.astimezone(schedule.zone).isoformat(timespec="minutes")


def _words(span: dt.timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"
