"""``pipeline worker``: run the queue's jobs (with a ``queue:`` section)."""

from __future__ import annotations

import sys

import click

from pipeline.cli.app import EXIT_OK, Project, command, log_format_option, main, pass_project


@main.command("worker")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Jobs this worker runs at once.",
)
@log_format_option
@pass_project
@command
def worker(project: Project, concurrency: int, log_format: str) -> int:
    """Run queued jobs until stopped (SIGTERM or Ctrl-C let the running jobs finish).
    Start as many as you like, on any machine that reaches the PostgreSQL state store."""
    from pipeline.actions import Actions
    from pipeline.assembly import http_session
    from pipeline.logs import configure
    from pipeline.pacing import SharedPacer
    from pipeline.queue.jobs import Jobs
    from pipeline.queue.worker import run_worker
    from pipeline.runs import RunLog

    settings = project.settings
    if settings.queue is None:
        raise click.UsageError(
            "there is no queue to work on: add `queue: {engine: procrastinate}` to the "
            "config (with a PostgreSQL `state:`), or run `pipeline serve` alone"
        )
    log = configure(log_format, sys.stderr)
    with project.store() as store:
        actions = Actions(settings, store, http=http_session, clock=project.clock)
        rate = settings.email.rate if settings.email else 0
        jobs = Jobs(
            settings,
            actions,
            RunLog(store.engine, project.clock),
            log,
            pace=SharedPacer(store.engine, "email", rate) if rate > 0 else None,
        )
        run_worker(settings, jobs, log, concurrency=concurrency)
    return EXIT_OK
