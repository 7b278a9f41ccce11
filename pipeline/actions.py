"""What a schedule can do (``do:`` in schedules.yaml), run without a terminal.

``ingest``, ``feeds``, ``post [CHANNEL…]``, ``digest NAME`` and ``cycle`` (ingest, then
feeds, then post). The command line prints these stages' reports its own way; the
scheduler runs them through ``Actions`` and records the counts. Each action names the
locks it needs, so that two schedules (or two ``pipeline serve`` processes started by
mistake) never run the same action at once.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pipeline.clock import Clock, system_clock
from pipeline.settings import Settings
from pipeline.suggest import did_you_mean

if TYPE_CHECKING:  # `Actions` loads the stages: schedules.yaml's words need no store
    from pipeline.assembly import HttpSessions
    from pipeline.digest.sending import EditionReport
    from pipeline.store import Store

KINDS = ("cycle", "ingest", "feeds", "post", "digest")
# Other words comms staff use for an action; the hint then names the action itself.
ACTION_SYNONYMS = {
    **dict.fromkeys(("run", "all", "publish", "everything"), "cycle"),
    **dict.fromkeys(("fetch", "import", "pull", "read", "update"), "ingest"),
    **dict.fromkeys(("feed", "rss", "atom"), "feeds"),
    **dict.fromkeys(("posts", "social", "share", "toot"), "post"),
    **dict.fromkeys(("email", "mail", "newsletter", "send"), "digest"),
}


@dataclass(frozen=True)
class Action:
    kind: str
    args: tuple[str, ...] = ()

    def __str__(self) -> str:
        return " ".join((self.kind, *self.args))

    def steps(self) -> tuple[Action, ...]:
        if self.kind == "cycle":
            return (Action("ingest"), Action("feeds"), Action("post"))
        return (self,)

    def locks(self) -> tuple[str, ...]:
        """Sorted, so that every process takes them in the same order (no deadlock)."""
        names = {
            "digest:" + step.args[0] if step.kind == "digest" else step.kind
            for step in self.steps()
        }
        return tuple(sorted(names))


def parse_action(text: str, digests: Collection[str], channels: Collection[str]) -> Action:
    """``"post mastodon bluesky"`` → Action; ValueError(message, hint) for a mistake."""
    words = text.split()
    if not words:
        raise ValueError("is empty", f"use one of: {', '.join(KINDS)}")
    kind, args = words[0].lower(), tuple(words[1:])
    if kind not in KINDS:
        raise ValueError(f"{words[0]!r} is not an action", _suggest(words[0], KINDS))
    if kind == "digest":
        if len(args) != 1:
            raise ValueError("`digest` takes one digest name", _suggest("", digests, "digest"))
        if args[0] not in digests:
            raise ValueError(f"unknown digest {args[0]!r}", _suggest(args[0], digests, "digest"))
    elif kind == "post":
        for name in args:
            if name not in channels:
                raise ValueError(f"unknown channel {name!r}", _suggest(name, channels, "channel"))
    elif args:
        raise ValueError(f"`{kind}` takes no names", f"write just `do: {kind}`")
    return Action(kind, args)


def _suggest(word: str, allowed: Collection[str], noun: str = "action") -> str:
    if not allowed:
        return f"no {noun}s are defined in config/pipeline.yaml"
    names = sorted(allowed)
    synonyms = ACTION_SYNONYMS if noun == "action" else None
    return did_you_mean(word, names, f"the {noun}s are: {', '.join(names)}", synonyms=synonyms)


@dataclass
class StepResult:
    """One step's outcome for the run history: counts by kind, and what went wrong."""

    step: str
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    note: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


class Actions:
    """Runs actions against one project; its stages come from an ``Assembly``."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        http: HttpSessions,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock = system_clock,
    ):
        from pipeline.assembly import Assembly

        self.settings = settings
        self.store = store
        self.parts = Assembly(settings, store, http=http, clock=clock, sleep=sleep)

    def run(
        self,
        action: Action,
        scheduled: dt.datetime | None = None,
        stop: Callable[[], bool] = lambda: False,
    ) -> list[StepResult]:
        """Each step in turn; a stop request lets the running step finish, then stops.
        A database failure becomes a StoreError of one line (what, where, what to do):
        the run history keeps the message, and SQLAlchemy's would carry the statement
        and its parameters, whole emails among them."""
        from sqlalchemy.exc import SQLAlchemyError

        from pipeline.store import store_fault

        results: list[StepResult] = []
        for step in action.steps():
            if stop() and results:
                break
            try:
                results.append(getattr(self, "_" + step.kind)(step, scheduled, stop))
            except SQLAlchemyError as exc:
                raise store_fault(exc, self.settings.state) from None
        return results

    def _ingest(
        self, step: Action, scheduled: dt.datetime | None, stop: Callable[[], bool]
    ) -> StepResult:
        with self.parts.http() as http:
            # A queue's ingest job names its one source (pipeline.queue.enqueue).
            sources = [s for s in self.parts.sources(http) if not step.args or s.name in step.args]
            report = self.parts.ingest(sources)
        result = StepResult(str(step))
        for stored in report.stored.values():
            for kind in ("added", "updated", "removed"):
                result.counts[kind] = result.counts.get(kind, 0) + len(getattr(stored, kind))
        result.problems += [f"{name}: not read — {why}" for name, why in report.unavailable.items()]
        result.problems += [f"rejected: {problem}" for problem in report.rejected]
        return result

    def _feeds(
        self, step: Action, scheduled: dt.datetime | None, stop: Callable[[], bool]
    ) -> StepResult:
        from pipeline.errors import StorageError

        try:
            report = self.parts.write_feeds()
        except StorageError as exc:  # a cycle still posts: posting does not read the files
            return StepResult("feeds", {"written": 0}, [str(exc)])
        return StepResult("feeds", {"written": len(report.written)})

    def _post(
        self, step: Action, scheduled: dt.datetime | None, stop: Callable[[], bool]
    ) -> StepResult:
        result = StepResult(str(step), {"posted": 0})
        with self.parts.http() as http:
            channels = self.parts.channels(http, step.args)
            reports = self.parts.post(channels) if channels else {}
        for name, report in reports.items():
            result.counts["posted"] += len(report.sent)
            if report.corrected:  # only when there were some: history stays as it was
                result.counts["corrected"] = result.counts.get("corrected", 0) + len(
                    report.corrected
                )
            for kind in ("failed", "pending", "uncertain"):
                items = getattr(report, kind)
                if items:
                    result.counts[kind] = result.counts.get(kind, 0) + len(items)
                    result.problems += [f"{name}: {item} {kind} — {why}" for item, why in items]
        return result

    def _digest(
        self, step: Action, scheduled: dt.datetime | None, stop: Callable[[], bool]
    ) -> StepResult:
        report = self.parts.digests().send(step.args[0], scheduled, stop)
        return digest_result(str(step), report)


def digest_result(step: str, report: EditionReport) -> StepResult:
    """A digest send's report as a step's result: counts, notes and problems."""
    edition = report.edition.id if report.edition else step.split()[-1]
    result = StepResult(step, {"sent": len(report.sent)}, note=edition)
    if report.skipped:
        result.note = f"{edition}: skipped — {report.skipped}"
    elif report.already_done:
        result.note = f"{edition}: already sent"
    for kind in ("failed", "pending", "uncertain"):
        items = getattr(report, kind)
        if items:
            result.counts[kind] = len(items)
            result.problems += [f"{who} {kind} — {why}" for who, why in items]
    return result
