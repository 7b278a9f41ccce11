"""``pipeline worker``: run queued jobs until stopped, and take over stalled ones.

procrastinate's worker fetches jobs (woken by PostgreSQL notifications), runs up to
``concurrency`` at once (our jobs are synchronous: each in a thread of its own), and
records a heartbeat every ``stalled_after / 3`` seconds. Beside it, each worker looks for
jobs whose worker has sent no heartbeat for ``queue.stalled_after`` seconds (killed,
machine lost) and puts them back in the queue, so another worker finishes them; the
ledger makes the second run send only what the first had not. SIGTERM or SIGINT let the
running jobs finish, then stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from pipeline.logs import event
from pipeline.queue.jobs import Jobs
from pipeline.queue.schema import libpq_url
from pipeline.settings import Settings


def build_app(settings: Settings, jobs: Jobs | None = None) -> Any:
    """A procrastinate App on the state store's database, with the jobs' tasks if given."""
    import procrastinate

    connector = procrastinate.PsycopgConnector(conninfo=libpq_url(settings.state))
    app = procrastinate.App(connector=connector)
    for name, run in (jobs.tasks() if jobs else {}).items():
        app.task(name=name, pass_context=True)(_with_job_id(run))
    return app


def _with_job_id(run: Callable[..., None]) -> Callable[..., None]:
    def task(context: Any, **kwargs: Any) -> None:
        run(job=context.job.id, **kwargs)

    return task


def run_worker(settings: Settings, jobs: Jobs, log: logging.Logger, *, concurrency: int) -> None:
    """Run jobs until SIGTERM or SIGINT; returns once the running jobs have finished."""
    assert settings.queue is not None
    stalled_after = settings.queue.stalled_after
    app = build_app(settings, jobs)
    # procrastinate logs every job start and end itself; the pipeline's one line per job
    # is enough (its warnings and errors still show).
    logging.getLogger("procrastinate").setLevel(logging.WARNING)

    async def main() -> None:
        async with app.open_async():
            worker = asyncio.create_task(
                app.run_worker_async(
                    concurrency=concurrency,
                    update_heartbeat_interval=stalled_after / 3,
                    stalled_worker_timeout=stalled_after,
                    install_signal_handlers=True,
                )
            )
            rescuer = asyncio.create_task(_rescue_stalled(app, stalled_after, log))
            log.info("worker started", extra=event("worker.started", concurrency=concurrency))
            try:
                await worker
            finally:
                rescuer.cancel()
            log.info("worker stopped", extra=event("worker.stopped"))

    asyncio.run(main())


async def _rescue_stalled(app: Any, stalled_after: float, log: logging.Logger) -> None:
    """Every few seconds: jobs of workers with no heartbeat for ``stalled_after`` go back
    to the queue (another worker may do it first: that one is then no longer stalled)."""
    manager = app.job_manager
    while True:
        await asyncio.sleep(stalled_after / 3)
        try:
            for job in await manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after):
                try:
                    await manager.retry_job(job)
                except Exception:  # already taken back by another worker
                    continue
                log.warning(
                    "job taken over from a worker that stopped",
                    extra=event("job.stalled", job=job.id, task=job.task_name),
                )
            await manager.prune_stalled_workers(stalled_after)
        except Exception:  # the database went away for a moment: try again next time
            log.exception("could not look for stalled jobs", extra=event("worker.rescue_failed"))
