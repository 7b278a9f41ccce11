"""``pipeline status``: what the pipeline is doing, on one screen (see pipeline.status).

Times are local: a schedule's in its own time zone (as schedules.yaml gives them), the
rest in the site's, each with how long ago or how soon.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import TYPE_CHECKING

import click

from pipeline.cli.app import EXIT_OK, Project, command, main, pass_project
from pipeline.cli.tables import Section, show

if TYPE_CHECKING:
    from pipeline.status import Status

SHOWN = 5  # deliveries of each kind listed on screen; --json has them all


@main.command("status")
@click.option("--json", "as_json", is_flag=True, help="Everything, as one JSON document.")
@pass_project
@command
def status_command(project: Project, as_json: bool) -> int:
    """Schedules (next run, last outcome), editions being sent, deliveries that need a
    look or wait for a retry, subscribers per digest, each channel's last success and
    last problem, and with a queue its jobs, workers and editions' batches."""
    from pipeline.status import gather, to_json

    settings = project.settings
    with project.store() as store:
        status = gather(settings, store.engine, project.schedules, project.clock())
    if as_json:
        click.echo(to_json(status))
        return EXIT_OK
    site = zoneinfo.ZoneInfo(settings.site.timezone)
    moment = Moment(status.now, site)
    sections = [
        _schedules(status, moment, project.schedules_file.name),
        _editions(status, moment),
        _deliveries(status, moment),
        _subscribers(status),
        _channels(status, moment),
        *_queue(status, moment),
    ]
    heading = f"{settings.site.name}: pipeline status at {moment.full(status.now)}"
    show(sections, f"{heading} ({site.key} time unless marked)")
    return EXIT_OK


class Moment:
    """Times as people read them: ``Mon 23 Nov 09:00 +0545 (in 2 days)``."""

    def __init__(self, now: dt.datetime, zone: zoneinfo.ZoneInfo):
        self.now, self.zone = now, zone

    def full(self, moment: dt.datetime) -> str:
        local = moment.astimezone(self.zone)
        return f"{local:%a %d %b %Y %H:%M} {local.tzname()}"

    def at(self, moment: dt.datetime | None, zone: zoneinfo.ZoneInfo | None = None) -> str:
        from pipeline.ledger import how_long

        if moment is None:
            return "—"
        local = moment.astimezone(zone or self.zone)
        year = f" {local.year}" if local.year != self.now.astimezone(local.tzinfo).year else ""
        # The site's zone goes without saying (the heading names it); another is marked.
        marked = f" {local.tzname()}" if zone is not None and zone.key != self.zone.key else ""
        span = moment - self.now
        when = f"in {how_long(span)}" if span.total_seconds() > 0 else f"{how_long(-span)} ago"
        return f"{local:%a %d %b}{year} {local:%H:%M}{marked} ({when})"


def _schedules(status: Status, moment: Moment, file_name: str) -> Section:
    section = Section(
        f"Schedules ({file_name})",
        ("SCHEDULE", "DOES", "WHEN", "NEXT RUN", "LAST RUN", "OUTCOME"),
        empty="none defined",
        wide=("OUTCOME",),
    )
    for s in status.schedules:
        zone = zoneinfo.ZoneInfo(s.timezone)
        upcoming = moment.at(s.next_run, zone) if s.enabled else "paused (enabled: false)"
        if s.note:
            upcoming += f" — {s.note}"
        last, outcome = "never", "—"
        if s.last is not None:
            last = moment.at(s.last.scheduled_for, zone)
            said = (s.last.detail or "").strip().splitlines()
            outcome = s.last.outcome + (f": {said[0]}" if said else "")
        section.rows.append((s.name, s.action, s.when, upcoming, last, outcome))
    if status.schedules and all(s.last is None for s in status.schedules):
        section.notes.append(
            "no runs recorded yet: `pipeline serve` runs the schedules and records each run"
        )
    if status.schedule_problems:
        section.empty = f"{file_name} does not load"
        section.notes += status.schedule_problems
        section.notes.append("fix it, then check it with `pipeline check`")
    return section


def _editions(status: Status, moment: Moment) -> Section:
    section = Section("Digest editions being sent", ("EDITION", "STATUS", "MADE", "DELIVERIES"))
    for e in status.editions:
        counts = ", ".join(f"{n} {state}" for state, n in e.counts.items()) or "none yet"
        section.rows.append((e.id, e.status, moment.at(e.created_at), counts))
    return section


def _deliveries(status: Status, moment: Moment) -> Section:
    from pipeline.status import FAILED_WITHIN

    groups = (
        ("uncertain", status.uncertain, "check and settle them: `pipeline deliveries uncertain`"),
        (
            f"failed in the last {FAILED_WITHIN.days} days",
            status.failed,
            "`pipeline status --json`",
        ),
        ("waiting for a retry", status.waiting, "`pipeline status --json`"),
    )
    counts = ", ".join(f"{len(items)} {label}" for label, items, _ in groups)
    section = Section(
        f"Deliveries: {counts}",
        ("STATE", "KIND", "WHERE", "WHAT", "SINCE", "NEXT ATTEMPT", "WHY"),
        wide=("WHY",),
    )
    for label, items, where in groups:
        for t in items[-SHOWN:][::-1]:  # the newest few
            upcoming = moment.at(t.next_attempt_at) if t.state == "pending" else "—"
            if t.state == "pending" and t.next_attempt_at is None:
                upcoming = "on the next run"
            state = "waiting" if t.state == "pending" else t.state
            section.rows.append(
                (state, t.kind, t.where, t.what, moment.at(t.since), upcoming, t.detail)
            )
        if len(items) > SHOWN:
            section.notes.append(f"{len(items) - SHOWN} more {label}: {where}")
        elif items and label == "uncertain":
            section.notes.append(where)
    return section


def _subscribers(status: Status) -> Section:
    from pipeline.status import AUDIENCE_STATES

    section = Section(
        "Subscribers per digest",
        ("DIGEST", *(state.upper() for state in AUDIENCE_STATES)),
        empty="no digests are configured",
    )
    for audience in status.audiences:
        counts = (str(audience.counts.get(state, 0)) for state in AUDIENCE_STATES)
        section.rows.append((audience.digest, *counts))
    if status.audiences:
        section.notes.append(
            "unsubscribed: from that digest or from all; `pipeline subscribers list --digest "
            "NAME` lists them"
        )
    return section


def _channels(status: Status, moment: Moment) -> Section:
    section = Section(
        "Channels",
        ("CHANNEL", "TYPE", "LAST SUCCESS", "LAST PROBLEM"),
        empty="no channels are configured",
        wide=("LAST PROBLEM",),
    )
    for c in status.channels:
        success = (
            f"{moment.at(c.last_success.at)} {c.last_success.what}" if c.last_success else "never"
        )
        problem = "none"
        if c.last_problem is not None:
            p = c.last_problem
            state = "waiting" if p.state == "pending" else p.state
            problem = f"{moment.at(p.at)} {state}: {p.what} — {p.detail}"
        section.rows.append((c.name, c.type, success, problem))
    return section


def _queue(status: Status, moment: Moment) -> list[Section]:
    queue = status.queue
    if queue is None:
        return []
    counts = (
        f"{queue.total('todo')} waiting, {queue.total('doing')} running, "
        f"{len(queue.stalled)} stalled, {queue.total('failed')} failed; "
        f"{len(queue.workers)} live workers"
    )
    jobs = Section(f"Queue: {counts}", ("TASK", "WAITING", "RUNNING", "FAILED"), empty="no jobs")
    tasks = sorted({task for by_task in queue.jobs.values() for task in by_task})
    for task in tasks:
        jobs.rows.append(
            (
                task,
                *(
                    str(queue.jobs.get(state, {}).get(task, 0))
                    for state in ("todo", "doing", "failed")
                ),
            )
        )
    for job in queue.stalled[:SHOWN]:
        beat = moment.at(job.last_heartbeat) if job.last_heartbeat else "its worker is gone"
        jobs.notes.append(f"stalled: job {job.id} ({job.task}), last heartbeat {beat}")
    if queue.stalled:
        jobs.notes.append("a live worker takes stalled jobs back within queue.stalled_after")
    if not queue.workers:
        jobs.notes.append("no worker is running: start one with `pipeline worker`")
    for worker in queue.workers:
        beat = moment.at(worker.last_heartbeat)
        jobs.notes.append(f"worker {worker.id}: {worker.running} running, heartbeat {beat}")
    batches = Section(
        "Editions sent in batches", ("EDITION", "BATCHES DONE", "SENT", "UNCERTAIN"), empty="none"
    )
    for p in queue.editions:
        batches.rows.append((p.edition, f"{p.done} of {p.batches}", str(p.sent), str(p.uncertain)))
    return [jobs, batches]
