"""Commands for schedules: ``schedule --next N`` and ``serve``."""

from __future__ import annotations

import itertools
import signal
import sys
import threading
from typing import Any

import click

from pipeline.cli.app import EXIT_OK, Project, command, log_format_option, main, pass_project
from pipeline.errors import PipelineError


@main.command("schedule")
@click.option(
    "--next",
    "count",
    type=click.IntRange(1, 1000),  # triggers.MAX_RUNS; not imported, to keep --help fast
    default=5,
    show_default=True,
    help="How many runs to show (1 to 1000).",
)
@pass_project
@command
def schedule_command(project: Project, count: int) -> int:
    """The next runs of every schedule, in local time and UTC."""
    from pipeline.cli.tables import aligned, on_terminal
    from pipeline.triggers import next_runs

    schedules = project.schedules()
    now = project.clock()
    title = f"Next {count} runs ({project.schedules_file.name})"
    header = ("schedule", "does", "when", "local time", "UTC", "note")
    runs: list[list[tuple[str, ...]]] = []  # per schedule, one row per run
    for schedule in schedules.schedules:
        does, when = str(schedule.action), f"{schedule.describe()} ({schedule.timezone})"
        if not schedule.enabled:
            runs.append([(schedule.name, does, when, "paused (enabled: false)", "", "")])
            continue
        runs.append(
            [
                (
                    schedule.name,
                    does,
                    when,
                    f"{run.local:%a %d %b %Y %H:%M} {run.local.tzname()}",
                    f"{run.at:%a %d %b %H:%M}",
                    run.note or "",
                )
                for run in next_runs(schedule.trigger, schedule.zone, now, count)
            ]
        )
    if not on_terminal():
        # To a file or a pipe: whole lines, never wrapped or cut at 80 columns, each run
        # with its schedule's name so that grep finds them all.
        click.echo("\n".join([title, *aligned([header, *itertools.chain(*runs)])]))
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in header:
        table.add_column(column, overflow="fold")
    for rows in runs:
        for index, row in enumerate(rows):
            table.add_row(*(row[:3] if index == 0 else ("", "", "")), *row[3:])
        table.add_section()
    Console().print(table)
    return EXIT_OK


@main.command("serve")
@log_format_option
@click.option(
    "--poll",
    default=2.0,
    show_default=True,
    hidden=True,
    help="Seconds between looks at schedules.yaml for edits.",
)
@click.option("--web-only", is_flag=True, help="Serve the web endpoints only; run no schedules.")
@click.option(
    "--listen", default=None, help="host:port for the web endpoints (default web.listen)."
)
@pass_project
@command
def serve(
    project: Project, log_format: str, poll: float, web_only: bool, listen: str | None
) -> int:
    """Run the schedules and the web endpoints until stopped (SIGTERM or Ctrl-C let the
    running step finish)."""
    from pipeline.actions import Actions
    from pipeline.assembly import http_session
    from pipeline.logs import configure, event
    from pipeline.scheduler import Scheduler

    log = configure(log_format, sys.stderr)
    settings = project.settings
    if not web_only:
        project.schedules()  # a broken file at start is exit status 2, before anything runs
    with project.store() as store:
        web = _web_server(project, store, listen)
        if web is None and web_only:
            raise click.UsageError("the web endpoints need an `email:` section in the config")
        if web is not None:
            config = web.config
            log.info(
                "web endpoints listening",
                extra=event("web.started", url=f"http://{config.host}:{config.port}"),
            )
        # uvicorn runs in a thread of its own, so the signals come here, not to uvicorn
        # (which would re-raise SIGTERM after shutting down: exit status -15, not 0).
        thread = threading.Thread(target=web.run, name="web", daemon=True) if web else None
        if thread is not None:
            thread.start()
        listener = _bounce_listener(project, store, log)
        if web_only:
            assert web is not None and thread is not None
            stopped = threading.Event()
            signal.signal(signal.SIGTERM, lambda signum, frame: stopped.set())
            signal.signal(signal.SIGINT, lambda signum, frame: stopped.set())
            while not stopped.wait(1.0) and thread.is_alive():
                pass
            if not stopped.is_set():  # uvicorn gave up: it could not listen there
                address = f"{web.config.host}:{web.config.port}"
                raise PipelineError(f"the web endpoints stopped; could not serve on {address}")
            log.info("stopping the web endpoints")
            web.should_exit = True
            thread.join(10)
            if listener is not None:
                listener.stop()
            return EXIT_OK
        actions = Actions(settings, store, http=http_session, clock=project.clock)
        enqueuer = None
        if settings.queue is not None:
            from pipeline.queue.enqueue import Enqueuer

            enqueuer = Enqueuer(store.engine, settings, project.clock)
        scheduler = Scheduler(
            project.schedules,
            project.schedules_file,
            actions,
            store,
            log=log,
            poll=poll,
            config_file=project.config_file,
            clock=project.clock,
            enqueuer=enqueuer,
        )

        def stop(signum: int, frame: object) -> None:
            # Stop first, then say so: once the line is out, no further message starts.
            scheduler.stop()
            log.info(f"{signal.Signals(signum).name}: finishing the running step, then stopping")

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if _lead(project, scheduler, log, poll):
            scheduler.serve()
        if web is not None and thread is not None:
            web.should_exit = True
            thread.join(10)
        if listener is not None:
            listener.stop()
    return EXIT_OK


def _lead(project: Project, scheduler: Any, log: Any, poll: float) -> bool:
    """With a queue, several ``serve`` may run: wait to lead (pipeline.queue.leader);
    False if stopped while standing by. Without one, this process simply leads."""
    if project.settings.queue is None:
        return True
    from pipeline.logs import event
    from pipeline.queue.leader import Leadership

    leadership = Leadership(project.settings.state)
    standing_by = False
    while not leadership.try_lead():
        if not standing_by:
            log.info("standing by: another serve leads the schedules", extra=event("serve.standby"))
            standing_by = True
        if scheduler.stopping.wait(poll):
            leadership.close()
            return False
    log.info("leading the schedules", extra=event("serve.leading"))
    scheduler.leadership = leadership  # held until this process ends
    return True


def _bounce_listener(project: Project, store: Any, log: Any) -> Any:
    """The SMTP listener for returned mail (``email.bounces.listen``), started; or None."""
    email = project.settings.email
    if email is None or email.bounces is None or email.bounces.listen is None:
        return None
    from pipeline.bounce_inbox import open_returned_mail
    from pipeline.bounce_listener import bounce_listener
    from pipeline.logs import event

    inbox = open_returned_mail(project.settings, store, project.clock, log)
    domain = email.bounce_domain
    assert domain is not None
    listener = bounce_listener(email.bounces.listen, inbox, domain, email.bounces.max_size, log)
    log.info(
        "listening for returned mail",
        extra=event("bounces.started", listen=email.bounces.listen, domain=domain),
    )
    return listener


def _web_server(project: Project, store: Any, listen: str | None) -> Any:
    """A uvicorn server for the web endpoints, or None without an `email:` section."""
    settings = project.settings
    if settings.email is None:
        return None
    import uvicorn

    from pipeline.settings.web import WebSettings
    from pipeline.web.app import create_app

    web = WebSettings(**{**settings.web.model_dump(), **({"listen": listen} if listen else {})})
    app = create_app(settings, store, clock=project.clock, plugins=project.plugins)
    config = uvicorn.Config(
        app,
        host=web.host,
        port=web.port,
        proxy_headers=True,
        forwarded_allow_ips=list(web.trusted_proxies),
        access_log=False,  # request lines carry tokens; events are logged by the pipeline
        server_header=False,
        log_level="warning",
    )
    return uvicorn.Server(config)
