"""Posting: each new article to each channel whose filters match it, at most once.

For every channel, in one run:
1. Rows a stopped run left ``sending`` are settled: sent again with the same key if the
   network deduplicates on it and the key is still fresh (Mastodon), else ``uncertain``.
2. Candidates: live articles published within the channel's ``max_age_hours`` that match
   its filters and have no ledger row, plus the channel's ``pending`` rows whose next
   attempt has come, oldest first, at most ``per_run``. An edited article keeps its
   ledger row, so it is not posted again: it is corrected instead (step 4).
3. Each is claimed in the ledger, then sent by the delivery core (pipeline.delivery),
   the same as mail: a short ``Retry-After`` waited out, a long one leaving the rest of
   the channel for the next run; 5xx and timeouts retried in rounds (1 s, 2 s, 4 s…) up
   to ``max_attempts`` tries in all, then at their next attempt time in a later run;
   400/401/403/404/422 failed at once with the network's reason. A sent post's row
   keeps the version of the article it said (pipeline.corrections.fingerprint).
4. Corrections: posts whose article changed or was taken down are edited, replied to
   or deleted by the channel's policy (pipeline.corrections), through the same core.

One channel's trouble — its server's limits unreadable, an interrupted post that cannot
be prepared again, an unexpected exception — is reported against that channel and the
other channels still run.

A dry run prepares the same posts and reports them without claiming or sending.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from pipeline.channels import Channel, Post, Receipt
from pipeline.clock import Clock, system_clock
from pipeline.corrections import Corrector, fingerprint, is_correction
from pipeline.delivery import MAX_WAIT, Courier, Job, Paused, RetryPolicy
from pipeline.errors import PermanentFailure, StoreError, TemporaryFailure
from pipeline.ledger import FAILED, PENDING, SENT, UNCERTAIN, Entry, Ledger, Settlement, stored_time
from pipeline.model import Article
from pipeline.schema import chunks
from pipeline.store import Store

__all__ = ["MAX_WAIT", "ChannelReport", "Poster", "idempotency_key", "post_stream"]

CHANNEL = "channel"  # the "item" of a problem that is the channel's, not one article's


@dataclass
class ChannelReport:
    sent: list[tuple[str, str | None]] = field(default_factory=list)  # article id, remote URL
    failed: list[tuple[str, str]] = field(default_factory=list)  # article id, reason
    pending: list[tuple[str, str]] = field(default_factory=list)
    uncertain: list[tuple[str, str]] = field(default_factory=list)
    previews: list[Post] = field(default_factory=list)  # dry run only
    corrected: list[tuple[str, str | None]] = field(default_factory=list)  # correction, URL

    @property
    def ok(self) -> bool:
        return not (self.failed or self.pending or self.uncertain)

    def add(self, job: Job, outcome: Settlement) -> None:
        """A settled delivery, as the report lists it."""
        if outcome.state == SENT:
            made = self.corrected if is_correction(outcome.item) else self.sent
            made.append((outcome.item, outcome.remote_url))
        else:
            kind = {FAILED: self.failed, PENDING: self.pending, UNCERTAIN: self.uncertain}
            kind[outcome.state].append((outcome.item, outcome.detail or ""))


def post_stream(channel: str) -> str:
    """The ledger stream of a channel's posts (and their corrections)."""
    return f"post:{channel}"


def idempotency_key(stream: str, article_id: str) -> str:
    """Stable for an (article, channel) pair, so every retry carries the same key."""
    return hashlib.sha256(f"{stream}\n{article_id}".encode()).hexdigest()[:40]


class Poster:
    """Runs the posting stage; everything it touches is passed in."""

    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        *,
        clock: Clock = system_clock,
        sleep: Callable[[float], None],
    ):
        self.store = store
        self.ledger = ledger
        self.clock = clock
        self.sleep = sleep
        # The run's recent articles, read once for every channel: (since, articles).
        self._recent: tuple[dt.datetime, list[Article]] | None = None

    def run(
        self,
        channels: Iterable[Channel],
        dry_run: bool = False,
        on_channel: Callable[[str], None] = lambda name: None,
    ) -> dict[str, ChannelReport]:
        """Every channel in turn (``on_channel`` told each name first); one channel's
        failure is recorded in its report (as a failed item named ``channel``) and never
        stops the next channel. The store's recent articles are read once, over the
        widest ``max_age_hours`` of them, and each channel takes its own part."""
        channels = list(channels)
        widest = max((c.options.max_age_hours for c in channels), default=0)
        self._recent = None
        try:
            if channels:
                self._recent_since(self.clock() - dt.timedelta(hours=widest))
            return self._run(channels, dry_run, on_channel)
        finally:
            self._recent = None  # a later run reads the store again

    def _run(
        self, channels: list[Channel], dry_run: bool, on_channel: Callable[[str], None]
    ) -> dict[str, ChannelReport]:
        reports = {}
        for channel in channels:
            on_channel(channel.name)
            report = reports[channel.name] = ChannelReport()
            try:
                self.run_channel(channel, dry_run, report)
            except (SQLAlchemyError, StoreError):
                raise  # the state store, not the channel: every channel would meet it
            except Exception as exc:  # a surprise in one network must not cost the others
                report.failed.append((CHANNEL, f"stopped by {type(exc).__name__}: {exc}"))
            finally:
                try:
                    channel.close()
                except Exception as exc:
                    report.failed.append((CHANNEL, f"not closed: {type(exc).__name__}: {exc}"))
        return reports

    def courier(self, channel: Channel, report: ChannelReport) -> Courier:
        """The delivery core for one channel in one run."""
        return Courier(
            self.ledger,
            RetryPolicy(tries=channel.options.max_attempts),
            self.sleep,
            report.add,
            dedupes=channel.dedupe_window is not None,
        )

    def run_channel(
        self, channel: Channel, dry_run: bool = False, report: ChannelReport | None = None
    ) -> ChannelReport:
        report = report if report is not None else ChannelReport()
        stream = post_stream(channel.name)
        courier = self.courier(channel, report)
        limited = False
        try:
            if not dry_run:
                self._settle_interrupted(channel, courier, report)
            for count, article in enumerate(self.candidates(channel)):
                if count and channel.options.spacing_seconds and not dry_run:
                    courier.flush()
                    self.sleep(channel.options.spacing_seconds)
                try:
                    post = channel.prepare(article)
                except TemporaryFailure as exc:  # e.g. the instance's limits could not be read
                    why = f"{exc.reason}; this channel's posts wait for the next run"
                    report.pending.append((article.id, why))
                    break
                except PermanentFailure as exc:
                    if dry_run or not courier.refuse(stream, article.id, exc.reason):
                        report.failed.append((article.id, exc.reason))
                    continue
                if dry_run:
                    report.previews.append(post)
                    continue
                key = idempotency_key(stream, article.id)
                job = courier.take(stream, article.id, key, _sender(channel, post, key))
                if job is not None:  # else another process took it, or it is not due yet
                    job.version = fingerprint(post.article)
                    courier.attempt(job)
        except Paused:
            limited = True  # the rest of the channel waits for the next run
        except Exception:
            courier.finish()
            raise
        try:
            if not limited:
                courier.rounds()
        finally:
            courier.finish()
        if not dry_run and not limited:
            self._correct(channel, report)
        return report

    def _correct(self, channel: Channel, report: ChannelReport) -> None:
        """The channel's corrections (pipeline.corrections), through a courier that resends
        an edit of unknown fate only where the network makes that harmless."""
        stream = post_stream(channel.name)
        courier = self.courier(channel, report)
        courier.dedupes = channel.repeatable_corrections
        try:
            Corrector(self.store, self.ledger).run(
                channel, stream, courier, lambda item: idempotency_key(stream, item)
            )
            courier.rounds()
        except Paused:
            pass
        finally:
            courier.finish()

    def candidates(self, channel: Channel) -> list[Article]:
        """What this channel should get now, oldest first, at most ``per_run``."""
        options = channel.options
        stream = post_stream(channel.name)
        since = self.clock() - dt.timedelta(hours=options.max_age_hours)
        recent = [
            a for a in self._recent_since(since) if options.matches(a.language, a.section, a.tags)
        ]
        # Oldest first, in chunks, until ``per_run`` have no ledger row and the rest are
        # published later (ties are ordered by id, which a database may collate its own
        # way): none of those can be chosen, so a channel does not look every candidate
        # of the run up.
        fresh: list[Article] = []
        for chunk in chunks(recent, 500):
            known = self.ledger.entries(stream, [a.id for a in chunk])
            fresh += [a for a in chunk if a.id not in known]
            enough = len(fresh) >= options.per_run
            if enough and chunk[-1].published > fresh[options.per_run - 1].published:
                break
        retries = []
        for entry in self.ledger.due(stream):
            if is_correction(entry.item):
                continue  # pipeline.corrections retries it
            article = self.store.get(entry.item)
            if article is None:  # deleted from the store: nothing left to post
                self.ledger.drop(stream, entry.item, "the article is no longer in the store")
            else:
                retries.append(article)
        chosen = sorted(retries + fresh, key=lambda a: (a.published, a.id))
        return chosen[: options.per_run]

    def _recent_since(self, since: dt.datetime) -> list[Article]:
        """Live articles published at or after ``since``, oldest first: from the run's
        one read of the store when that reaches back far enough."""
        if self._recent is None or since < self._recent[0]:
            self._recent = (since, self.store.recent(since))
        found = self._recent[1]
        return found if since == self._recent[0] else [a for a in found if a.published >= since]

    def _settle_interrupted(
        self, channel: Channel, courier: Courier, report: ChannelReport
    ) -> None:
        """Rows a stopped run left ``sending``. A post is prepared again *before* its row
        is taken over, so a channel that cannot prepare it now (its server's limits
        unreadable) leaves the row as it was, for a later run to try while the key is
        fresh (after that it becomes uncertain); the other channels are unaffected."""
        stream = post_stream(channel.name)
        for entry in self.ledger.interrupted(stream):
            if is_correction(entry.item):
                continue  # pipeline.corrections settles it
            detail = "the run stopped while sending; it may or may not have been posted"
            article = self.store.get(entry.item) if self._may_resend(channel, entry) else None
            if article is not None:
                try:
                    post = channel.prepare(article)
                except TemporaryFailure as exc:
                    why = f"{exc.reason}; the interrupted post is tried again on the next run"
                    report.pending.append((entry.item, why))
                    continue
                except PermanentFailure as exc:
                    detail = f"the run stopped while sending it, and now {exc.reason}"
                else:
                    send = _sender(channel, post, entry.key or "")
                    courier.resume(entry, send, fingerprint(post.article))
                    continue  # resent, or another process has taken it over
            courier.abandon(entry, detail)

    def _may_resend(self, channel: Channel, entry: Entry) -> bool:
        window = channel.dedupe_window
        if window is None or not entry.key:
            return False
        age = stored_time(self.clock()) - entry.created_at
        return age < window


def _sender(channel: Channel, post: Post, key: str) -> Callable[[], Receipt]:
    return lambda: channel.send(post, key)
