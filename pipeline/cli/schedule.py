"""Commands for schedules: ``schedule --next N`` and ``serve``."""

from __future__ import annotations

import datetime as dt
import signal
import sys
import time

import click

from pipeline.cli.app import EXIT_OK, Project, command, main, pass_project


@main.command("schedule")
@click.option("--next", "count", default=5, show_default=True, help="How many runs to show.")
@pass_project
@command
def schedule_command(project: Project, count: int) -> int:
    """The next runs of every schedule, in local time and UTC."""
    from rich.console import Console
    from rich.table import Table

    from pipeline.triggers import next_runs

    schedules = project.schedules()
    now = dt.datetime.now(dt.UTC)
    table = Table(title=f"Next {count} runs ({project.schedules_file.name})", title_justify="left")
    for column in ("schedule", "does", "when", "local time", "UTC", "note"):
        table.add_column(column, overflow="fold")
    for schedule in schedules.schedules:
        if not schedule.enabled:
            paused = "paused (enabled: false)"
            table.add_row(schedule.name, str(schedule.action), schedule.describe(), paused, "", "")
            continue
        for index, run in enumerate(next_runs(schedule.trigger, schedule.zone, now, count)):
            table.add_row(
                schedule.name if index == 0 else "",
                str(schedule.action) if index == 0 else "",
                f"{schedule.describe()} ({schedule.timezone})" if index == 0 else "",
                f"{run.local:%a %d %b %Y %H:%M} {run.local.tzname()}",
                f"{run.at:%a %d %b %H:%M}",
                run.note or "",
            )
        table.add_section()
    Console().print(table)
    return EXIT_OK


@main.command("serve")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="One line per event: readable text, or JSON for log shippers.",
)
@click.option(
    "--poll",
    default=2.0,
    show_default=True,
    hidden=True,
    help="Seconds between looks at schedules.yaml for edits.",
)
@pass_project
@command
def serve(project: Project, log_format: str, poll: float) -> int:
    """Run the schedules until stopped (SIGTERM or Ctrl-C finish the running step)."""
    from pipeline.actions import Actions
    from pipeline.logs import configure
    from pipeline.scheduler import Scheduler

    log = configure(log_format, sys.stderr)
    settings = project.settings
    project.schedules()  # a broken file at start is exit status 2, before anything runs
    with project.store() as store:
        actions = Actions(settings, store, http=project.http, sleep=time.sleep)
        scheduler = Scheduler(
            project.schedules, project.schedules_file, actions, store, log=log, poll=poll
        )

        def stop(signum: int, frame: object) -> None:
            log.info(f"{signal.Signals(signum).name}: finishing the running step, then stopping")
            scheduler.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        scheduler.serve()
    return EXIT_OK
