"""Posting: each new article to each channel whose filters match it, at most once.

For every channel, in one run:
1. Rows a stopped run left ``sending`` are settled: sent again with the same key if the
   network deduplicates on it and the key is still fresh (Mastodon), else ``uncertain``.
2. Candidates: live articles published within the channel's ``max_age_hours`` that match
   its filters and have no ledger row, plus the channel's ``pending`` rows, oldest first,
   at most ``per_run``. An edited article keeps its ledger row, so it is not posted again.
3. Each is claimed in the ledger, then sent. 429, 5xx and timeouts are retried with
   backoff (honouring Retry-After) up to ``max_attempts``; a wait longer than
   ``MAX_WAIT`` leaves it pending for the next run instead of blocking this one.
   400/401/403/404/422 fail at once with the network's reason.

A dry run prepares the same posts and reports them without claiming or sending.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pipeline.channels import Channel, Post
from pipeline.errors import PermanentFailure, TemporaryFailure
from pipeline.ledger import FAILED, PENDING, SENT, UNCERTAIN, Entry, Ledger
from pipeline.model import Article
from pipeline.store import Store

MAX_WAIT = 120.0  # seconds; a longer Retry-After defers the post to the next run
BACKOFF_CAP = 60.0


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
        reports = {}
        for channel in channels:
            try:
                reports[channel.name] = self.run_channel(channel, dry_run)
            finally:
                channel.close()
        return reports

    def run_channel(self, channel: Channel, dry_run: bool = False) -> ChannelReport:
        report = ChannelReport()
        stream = stream_of(channel.name)
        if not dry_run:
            self._settle_interrupted(channel, report)
        for count, article in enumerate(self.candidates(channel)):
            if count and channel.options.spacing_seconds and not dry_run:
                self.sleep(channel.options.spacing_seconds)
            try:
                post = channel.prepare(article)
            except TemporaryFailure as exc:  # e.g. the instance's limits could not be read
                report.pending.append((article.id, exc.reason))
                break
            except PermanentFailure as exc:
                if not dry_run and self.ledger.claim(stream, article.id, ""):
                    self.ledger.settle(stream, article.id, FAILED, detail=exc.reason)
                report.failed.append((article.id, exc.reason))
                continue
            if dry_run:
                report.previews.append(post)
                continue
            key = idempotency_key(stream, article.id)
            if not self.ledger.claim(stream, article.id, key):
                continue  # another process took it
            if not self._deliver(channel, post, key, report):
                break  # rate-limited: the rest wait for the next run
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
        retry_ids = [e.item for e in self.ledger.entries(stream).values() if e.state == PENDING]
        retries = [a for a in (self.store.get(i) for i in retry_ids) if a is not None]
        chosen = sorted(retries + fresh, key=lambda a: (a.published, a.id))
        return chosen[: options.per_run]

    def _deliver(self, channel: Channel, post: Post, key: str, report: ChannelReport) -> bool:
        """Send with retries and settle the ledger row; False when rate-limited."""
        stream, article_id = stream_of(channel.name), post.article.id
        attempts = channel.options.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                receipt = channel.send(post, key)
            except PermanentFailure as exc:
                self.ledger.settle(stream, article_id, FAILED, detail=exc.reason)
                report.failed.append((article_id, exc.reason))
                return True
            except TemporaryFailure as exc:
                if exc.unknown_outcome and channel.dedupe_window is None:
                    detail = f"{exc.reason}; not resent, to avoid a duplicate: check by hand"
                    self.ledger.settle(stream, article_id, UNCERTAIN, detail=detail)
                    report.uncertain.append((article_id, detail))
                    return True
                wait = exc.retry_after if exc.retry_after is not None else _backoff(attempt)
                if wait > MAX_WAIT or attempt == attempts:
                    detail = f"{exc.reason}; will retry next run"
                    self.ledger.settle(stream, article_id, PENDING, detail=detail)
                    report.pending.append((article_id, detail))
                    return wait <= MAX_WAIT
                self.sleep(wait)
                continue
            self.ledger.settle(
                stream, article_id, SENT, remote_id=receipt.remote_id, remote_url=receipt.remote_url
            )
            report.sent.append((article_id, receipt.remote_url))
            return True
        return True

    def _settle_interrupted(self, channel: Channel, report: ChannelReport) -> None:
        stream = stream_of(channel.name)
        for entry in self.ledger.interrupted(stream):
            if self._may_resend(channel, entry) and self.ledger.reclaim(entry):
                article = self.store.get(entry.item)
                if article is not None:
                    self._deliver(channel, channel.prepare(article), entry.key or "", report)
                    continue
            detail = "the run stopped while sending; it may or may not have been posted"
            self.ledger.settle(stream, entry.item, UNCERTAIN, detail=detail)
            report.uncertain.append((entry.item, detail))

    def _may_resend(self, channel: Channel, entry: Entry) -> bool:
        window = channel.dedupe_window
        if window is None or not entry.key:
            return False
        age = self.clock().replace(tzinfo=None) - entry.created_at
        return age < window


def _backoff(attempt: int) -> float:
    return min(BACKOFF_CAP, 2.0 ** (attempt - 1))
