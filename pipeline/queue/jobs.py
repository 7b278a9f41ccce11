"""What each queued job does, on whichever worker takes it, and how it reports.

Every job runs a stage through the same code as ``serve`` without a queue (the stages
from pipeline.assembly, via pipeline.actions), adds its counts and problems to the run
it belongs to (``RunLog.merge``), and logs one line. A job's follow-ups (a cycle's feeds
after an ingest, its posting after the feeds) are enqueued in the transaction that
records its outcome.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from pipeline.actions import Action, Actions, StepResult, digest_result
from pipeline.digest.batches import Batches
from pipeline.logs import event
from pipeline.queue.enqueue import (
    BATCH,
    DIGEST,
    FEEDS,
    INGEST,
    POST,
    JobSpec,
    batch_job,
    defer,
    next_jobs,
)
from pipeline.runs import RunLog
from pipeline.settings import Settings


class Jobs:
    def __init__(
        self,
        settings: Settings,
        actions: Actions,
        runs: RunLog,
        log: logging.Logger,
        *,
        pace: Callable[[], None] | None = None,
    ):
        assert settings.queue is not None
        self.settings = settings
        self.actions = actions
        self.runs = runs
        self.log = log
        self.pace = pace  # email.rate across every worker (pipeline.pacing.SharedPacer)
        self.batch_size = settings.queue.batch_size

    def tasks(self) -> dict[str, Callable[..., None]]:
        """Task name → what runs it; each takes the job's arguments by keyword."""
        return {
            INGEST: self.ingest,
            FEEDS: self.feeds,
            POST: self.post,
            DIGEST: self.digest,
            BATCH: self.digest_batch,
        }

    # -- the jobs ------------------------------------------------------------------------

    def ingest(self, *, source: str, run_id: int, then: list[str], job: int = 0) -> None:
        started = time.monotonic()
        [result] = self.actions.run(Action("ingest", (source,)))
        follow = next_jobs(then, self.settings, run_id)
        self._report(INGEST, job, run_id, result, started, follow)

    def feeds(self, *, run_id: int, then: list[str], job: int = 0) -> None:
        started = time.monotonic()
        [result] = self.actions.run(Action("feeds"))
        follow = next_jobs(then, self.settings, run_id)
        self._report(FEEDS, job, run_id, result, started, follow)

    def post(self, *, channel: str, run_id: int, job: int = 0) -> None:
        started = time.monotonic()
        if channel not in self.settings.channels:  # enqueued before a config change
            result = StepResult(f"post {channel}", problems=[f"no channel {channel!r} now"])
        else:
            [result] = self.actions.run(Action("post", (channel,)))
        self._report(POST, job, run_id, result, started)

    def digest(self, *, digest: str, scheduled: str, run_id: int, job: int = 0) -> None:
        """Choose and freeze the edition, and fan it out into batch jobs."""
        started = time.monotonic()

        def enqueue(conn: Connection, edition: str, number: int) -> None:
            defer(conn, batch_job(edition, number, run_id))

        plan = self._batches().plan(digest, dt.datetime.fromisoformat(scheduled), enqueue)
        edition = plan.edition
        result = StepResult(f"digest {digest}", {"batches": sum(plan.batches.values())})
        result.note = f"{edition.id}: {edition.status}" + (
            f" — {edition.detail}" if edition.detail else ""
        )
        self._report(DIGEST, job, run_id, result, started)

    def digest_batch(self, *, edition: str, number: int, run_id: int, job: int = 0) -> None:
        started = time.monotonic()
        report = self._batches().send(edition, number)
        result = digest_result(f"digest {edition}#{number}", report)
        result.note = None  # the plan's note says which edition; one per batch is noise
        self._report(BATCH, job, run_id, result, started)

    # -- reporting -----------------------------------------------------------------------

    def _batches(self) -> Batches:
        return Batches(self.actions.parts.digests(pace=self.pace), self.batch_size)

    def _report(
        self,
        task: str,
        job: int,
        run_id: int,
        result: StepResult,
        started: float,
        follow: list[JobSpec] = (),  # type: ignore[assignment]
    ) -> None:
        def enqueue(conn: Connection) -> None:
            for spec in follow:
                defer(conn, spec)

        notes = [result.note] if result.note else []
        self.runs.merge(run_id, result.counts, result.problems, notes, also=enqueue)
        fields: dict[str, Any] = {
            "task": task.removeprefix("pipeline."),
            "job": job,
            "run": run_id,
            "step": result.step,
            "outcome": "ok" if result.ok else "partial",
            "seconds": round(time.monotonic() - started, 3),
            **result.counts,
        }
        log = self.log.info if result.ok else self.log.warning
        log("job finished", extra=event("job.finished", **fields))
        for problem in result.problems:
            self.log.warning(problem, extra=event("job.problem", task=fields["task"], job=job))
