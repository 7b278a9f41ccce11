"""Posting: each new article to each channel whose filters match it, at most once.

For every channel, in one run:
1. Rows a stopped run left ``sending`` are settled: sent again with the same key if the
   network deduplicates on it and the key is still fresh (Mastodon), else ``uncertain``.
2. Candidates: live articles published within the channel's ``max_age_hours`` that match
   its filters and have no ledger row, plus the channel's ``pending`` rows whose next
   attempt has come, oldest first, at most ``per_run``. An edited article keeps its
   ledger row, so it is not posted again.
3. Each is claimed in the ledger, then sent once. A ``Retry-After`` up to ``MAX_WAIT``
   is waited out on the spot (the network said when); a longer one leaves the post
   pending and the channel's other posts for the next run. 5xx and timeouts leave the
   post pending at once, and the posts that failed so are tried again together after
   one short wait per round (1 s, 2 s, 4 s…), up to ``max_attempts`` tries in all: the
   waits of a run do not grow with the number of failing posts. What still fails
   waits for its next attempt time (see pipeline.ledger) in a later run.
   400/401/403/404/422 fail at once with the network's reason.

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

from pipeline.channels import Channel, Post
from pipeline.errors import PermanentFailure, StoreError, TemporaryFailure
from pipeline.ledger import FAILED, PENDING, SENT, UNCERTAIN, Claim, Entry, Ledger, Settlement
from pipeline.model import Article
from pipeline.store import Store

MAX_WAIT = 120.0  # seconds; a longer Retry-After defers the post to the next run
BACKOFF_CAP = 60.0
CHANNEL = "channel"  # the "item" of a problem that is the channel's, not one article's


@dataclass
class ChannelReport:
    sent: list[tuple[str, str | None]] = field(default_factory=list)  # article id, remote URL
    failed: list[tuple[str, str]] = field(default_factory=list)  # article id, reason
    pending: list[tuple[str, str]] = field(default_factory=list)
    uncertain: list[tuple[str, str]] = field(default_factory=list)
    previews: list[Post] = field(default_factory=list)  # dry run only

    @property
    def ok(self) -> bool:
        return not (self.failed or self.pending or self.uncertain)


def stream_of(channel: str) -> str:
    return f"post:{channel}"


def idempotency_key(stream: str, article_id: str) -> str:
    """Stable for an (article, channel) pair, so every retry carries the same key."""
    return hashlib.sha256(f"{stream}\n{article_id}".encode()).hexdigest()[:40]


@dataclass
class _Retry:
    """A post that failed temporarily in this run, to be tried again in its rounds."""

    post: Post
    key: str
    claim: Claim | None  # None: the row is still ours in ``sending`` (its fate is open)
    reason: str
    tries: int


class RateLimited(Exception):
    """The network asked for a longer pause than a run waits: the channel stops here."""


class Poster:
    """Runs the posting stage; everything it touches is passed in."""

    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        sleep: Callable[[float], None],
    ):
        self.store = store
        self.ledger = ledger
        self.clock = clock
        self.sleep = sleep

    def run(self, channels: Iterable[Channel], dry_run: bool = False) -> dict[str, ChannelReport]:
        """Every channel in turn; one channel's failure is recorded in its report (as a
        failed item named ``channel``) and never stops the next channel."""
        reports = {}
        for channel in channels:
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

    def run_channel(
        self, channel: Channel, dry_run: bool = False, report: ChannelReport | None = None
    ) -> ChannelReport:
        report = report if report is not None else ChannelReport()
        stream = stream_of(channel.name)
        retries: list[_Retry] = []
        limited = False
        try:
            if not dry_run:
                self._settle_interrupted(channel, report, retries)
            for count, article in enumerate(self.candidates(channel)):
                if count and channel.options.spacing_seconds and not dry_run:
                    self.sleep(channel.options.spacing_seconds)
                try:
                    post = channel.prepare(article)
                except TemporaryFailure as exc:  # e.g. the instance's limits could not be read
                    why = f"{exc.reason}; this channel's posts wait for the next run"
                    report.pending.append((article.id, why))
                    break
                except PermanentFailure as exc:
                    if not dry_run and (claim := self.ledger.take(stream, article.id, "")):
                        self._record(stream, Settlement(claim.item, FAILED, exc.reason), report)
                    else:
                        report.failed.append((article.id, exc.reason))
                    continue
                if dry_run:
                    report.previews.append(post)
                    continue
                key = idempotency_key(stream, article.id)
                claim = self.ledger.take(stream, article.id, key)
                if claim is None:
                    continue  # another process took it, or it is not due yet
                self._attempt(channel, _Retry(post, key, claim, "", 0), report, retries)
        except RateLimited:
            limited = True  # the rest of the channel waits for the next run
        except Exception:
            self._leftovers(stream, report, retries)
            raise
        self._retry_rounds(channel, report, retries, rounds=not limited)
        return report

    def candidates(self, channel: Channel) -> list[Article]:
        """What this channel should get now, oldest first, at most ``per_run``."""
        options = channel.options
        stream = stream_of(channel.name)
        since = self.clock() - dt.timedelta(hours=options.max_age_hours)
        recent = [
            a for a in self.store.recent(since) if options.matches(a.language, a.section, a.tags)
        ]
        entries = self.ledger.entries(stream, [a.id for a in recent])
        fresh = [a for a in recent if a.id not in entries]
        retries = []
        for entry in self.ledger.due(stream):
            article = self.store.get(entry.item)
            if article is None:  # deleted from the store: nothing left to post
                self.ledger.drop(stream, entry.item, "the article is no longer in the store")
            else:
                retries.append(article)
        chosen = sorted(retries + fresh, key=lambda a: (a.published, a.id))
        return chosen[: options.per_run]

    def _attempt(
        self, channel: Channel, job: _Retry, report: ChannelReport, retries: list[_Retry]
    ) -> None:
        """Send a claimed post, waiting out short Retry-Afters on the spot; a 5xx or a
        timeout goes to ``retries`` for this run's rounds. Raises RateLimited when the
        network wants a pause longer than ``MAX_WAIT``."""
        stream, article_id = stream_of(channel.name), job.post.article.id
        while True:
            job.tries += 1
            try:
                receipt = channel.send(job.post, job.key)
            except PermanentFailure as exc:
                self._record(stream, Settlement(article_id, FAILED, exc.reason), report)
                return
            except TemporaryFailure as exc:
                if exc.unknown_outcome and channel.dedupe_window is None:
                    detail = f"{exc.reason}; not resent, to avoid a duplicate: check by hand"
                    self._record(stream, Settlement(article_id, UNCERTAIN, detail), report)
                    return
                if exc.retry_after is not None and exc.retry_after > MAX_WAIT:
                    self._defer(stream, job, exc.reason, report, exc.retry_after)
                    raise RateLimited() from exc
                if exc.retry_after is not None and job.tries < channel.options.max_attempts:
                    self.sleep(exc.retry_after)  # the network said when: that is no backoff
                    continue
                job.reason = exc.reason
                if exc.unknown_outcome or job.claim is None:
                    # It may have arrived: keep the row ours in ``sending`` and resend with
                    # the same key in this run only, while the network still knows the key.
                    job.claim = None
                else:  # certainly not delivered: pending on disk before any wait
                    outcome = self._pending(job, exc.reason)
                    self.ledger.record(stream, outcome)
                    if outcome.state == FAILED:
                        report.failed.append((article_id, outcome.detail or exc.reason))
                        return
                retries.append(job)
                return
            except Exception:
                # Not a failure the channel knows: it may or may not have been posted.
                detail = "an unexpected error while sending; it may or may not have been posted"
                self._record(stream, Settlement(article_id, UNCERTAIN, detail), report)
                raise
            outcome = Settlement(
                article_id, SENT, remote_id=receipt.remote_id, remote_url=receipt.remote_url
            )
            self._record(stream, outcome, report)
            return

    def _retry_rounds(
        self, channel: Channel, report: ChannelReport, retries: list[_Retry], rounds: bool
    ) -> None:
        """Try again what failed temporarily: one wait per round for all of them, so a
        run waits the same whether one post fails or twenty. Then record what is left."""
        stream = stream_of(channel.name)
        done = 0
        try:
            while rounds and (
                ready := [j for j in retries if j.tries < channel.options.max_attempts]
            ):
                done += 1
                self.sleep(_backoff(done))
                retries[:] = [j for j in retries if j not in ready]
                for index, job in enumerate(ready):
                    try:
                        if job.claim is not None:
                            item = job.post.article.id
                            claim = self.ledger.take(stream, item, job.key, early=True)
                            if claim is None:
                                continue  # settled meanwhile by another process
                            job.claim = claim
                        self._attempt(channel, job, report, retries)
                    except BaseException:
                        retries.extend(ready[index + 1 :])  # not tried again: still owed
                        raise
        except RateLimited:
            pass
        finally:
            self._leftovers(stream, report, retries)

    def _leftovers(self, stream: str, report: ChannelReport, retries: list[_Retry]) -> None:
        """Record what failed every try of this run: pending (already on disk), or, for a
        post that may have arrived, uncertain — it must not stay ``sending``."""
        for job in retries:
            item = job.post.article.id
            if job.claim is None:
                detail = (
                    f"{job.reason}; it may have been posted, and is not resent later, when "
                    "the network would no longer recognise it: check by hand"
                )
                self._record(stream, Settlement(item, UNCERTAIN, detail), report)
            else:
                entry = self.ledger.entries(stream, [item]).get(item)
                report.pending.append((item, (entry.detail if entry else None) or job.reason))

    def _pending(self, job: _Retry, reason: str, retry_after: float | None = None) -> Settlement:
        assert job.claim is not None
        return self.ledger.retry_later(job.claim, reason, retry_after)

    def _defer(
        self, stream: str, job: _Retry, reason: str, report: ChannelReport, retry_after: float
    ) -> None:
        if job.claim is None:  # an interrupted post: only this run may resend it
            detail = f"{reason}; it may have been posted, and cannot be resent in time"
            self._record(stream, Settlement(job.post.article.id, UNCERTAIN, detail), report)
            return
        self._record(stream, self._pending(job, reason, retry_after), report)

    def _record(self, stream: str, outcome: Settlement, report: ChannelReport) -> None:
        """Write a settlement to the ledger and the report."""
        self.ledger.record(stream, outcome)
        item = outcome.item
        if outcome.state == SENT:
            report.sent.append((item, outcome.remote_url))
        else:
            kind = {FAILED: report.failed, PENDING: report.pending, UNCERTAIN: report.uncertain}
            kind[outcome.state].append((item, outcome.detail or ""))

    def _settle_interrupted(
        self, channel: Channel, report: ChannelReport, retries: list[_Retry]
    ) -> None:
        """Rows a stopped run left ``sending``. A post is prepared again *before* its row
        is taken over, so a channel that cannot prepare it now (its server's limits
        unreadable) leaves the row as it was, for a later run to try while the key is
        fresh (after that it becomes uncertain); the other channels are unaffected."""
        stream = stream_of(channel.name)
        for entry in self.ledger.interrupted(stream):
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
                    if self.ledger.reclaim(entry):
                        job = _Retry(post, entry.key or "", None, "", 0)
                        self._attempt(channel, job, report, retries)
                    continue  # resent, or another process has taken it over
            self._record(stream, Settlement(entry.item, UNCERTAIN, detail), report)

    def _may_resend(self, channel: Channel, entry: Entry) -> bool:
        window = channel.dedupe_window
        if window is None or not entry.key:
            return False
        age = self.clock().replace(tzinfo=None) - entry.created_at
        return age < window


def _backoff(attempt: int) -> float:
    return min(BACKOFF_CAP, 2.0 ** (attempt - 1))
