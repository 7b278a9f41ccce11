"""The delivery core: claim → send → classify → settle, with one retry policy, for every
stream (a channel's posts and their corrections, a digest edition's messages).

One attempt ends in one of four ways, each recorded in the ledger (pipeline.ledger):

- **sent**: the far side confirmed it; its id (status id, record URI, Message-ID) is kept.
- **retry after**: a temporary failure (429, 5xx, an SMTP 4xx, no connection). A short
  ``Retry-After`` (at most the policy's ``max_wait``) is waited out on the spot: the far
  side said when, so that is no backoff. A longer one leaves the item pending and
  ``Paused`` stops its stream for this run. Otherwise the item is pending on disk at once
  and tried again in this run's retry rounds (one pause per round for all of them, so a
  run waits the same whether one item fails or twenty), up to ``tries`` attempts; what
  still fails waits for its next attempt time in a later run (``Ledger.retry_later``).
- **failed**: a permanent failure (4xx, 5xx SMTP), or given up, with the far side's reason.
- **uncertain**: it may or may not have arrived (a timeout after sending, a crash). Only a
  stream whose far side deduplicates on the key (``dedupes``) is sent again, in this run,
  with the same key; else it is never resent, so nothing arrives twice.

A transport that broke (``broken``: the mail server refuses the login) leaves the item
pending, due again on the next run, and stops everything. An exception nobody expected
leaves the item uncertain and is raised.

The ledger is the retry state (attempts, failing since, next attempt): a library such as
tenacity would keep that in memory and lose it with the process, so the policy is here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.channels import Receipt
from pipeline.errors import PermanentFailure, TemporaryFailure
from pipeline.ledger import FAILED, PENDING, SENT, UNCERTAIN, Claim, Entry, Ledger, Settlement

MAX_WAIT = 120.0  # seconds; a longer Retry-After defers the item to the next run
BACKOFF_CAP = 60.0


def backoff(round_: int) -> float:
    """1 s, 2 s, 4 s … before retry round 1, 2, 3 …, at most ``BACKOFF_CAP``."""
    return min(BACKOFF_CAP, 2.0 ** (round_ - 1))


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one run tries: ``tries`` attempts per item in all, ``pause(n)`` seconds
    before retry round n, and a ``Retry-After`` up to ``max_wait`` waited out on the spot."""

    tries: int
    pause: Callable[[int], float] = backoff
    max_wait: float = MAX_WAIT


@dataclass
class Job:
    """One claimed item: how to send it (one attempt per call), and what the caller
    needs to report it (``about``: the subscriber, the post)."""

    stream: str
    item: str
    key: str
    send: Callable[[], Receipt]
    claim: Claim | None  # None: the row is still ours in ``sending`` and its fate is open
    about: Any = None
    version: str | None = None  # what it says, kept with its row once sent
    tries: int = 0
    reason: str = ""


class Paused(Exception):
    """The far side asked for a longer pause than a run waits: the stream stops here."""


@dataclass
class Courier:
    """Delivers claimed jobs and settles them; ``settled`` hears every final outcome of
    this run (sent, failed, uncertain, and at ``finish`` what is left pending)."""

    ledger: Ledger
    policy: RetryPolicy
    sleep: Callable[[float], None]
    settled: Callable[[Job, Settlement], None]
    dedupes: bool = False
    broken: tuple[type[BaseException], ...] = ()
    owed: list[Job] = field(default_factory=list)
    _unrecorded: Settlement | None = None
    _unrecorded_stream: str = ""

    def alike(self) -> Courier:
        """A courier for another thread of the same send: same ledger, policy and
        reports, its own unrecorded outcome and owed jobs."""
        return Courier(
            self.ledger, self.policy, self.sleep, self.settled, self.dedupes, self.broken
        )

    # -- claiming ------------------------------------------------------------------------

    def take(
        self,
        stream: str,
        item: str,
        key: str,
        send: Callable[[], Receipt],
        about: Any = None,
    ) -> Job | None:
        """Claim ``item`` (None: not ours to send now). The previous outcome of the same
        stream is recorded in the same transaction, so a batch commits once per item."""
        first = self._unrecorded_of(stream)
        claim = self.ledger.take(stream, item, key, settle_first=first)
        return None if claim is None else Job(stream, item, key, send, claim, about)

    def resume(self, entry: Entry, send: Callable[[], Receipt], version: str | None = None) -> bool:
        """Take over a row a stopped run left ``sending`` and send it again with its key
        (only for a far side that deduplicates on it); False if another process has it."""
        if not self.ledger.reclaim(entry):
            return False
        job = Job(entry.stream, entry.item, entry.key or "", send, None, version=version)
        self.attempt(job)
        return True

    def refuse(self, stream: str, item: str, reason: str, about: Any = None) -> bool:
        """Claim and fail at once an item that cannot be sent at all (its text cannot be
        made); False if it was not ours to claim."""
        job = self.take(stream, item, "", _never, about)
        if job is not None:
            self._settle(job, Settlement(item, FAILED, reason), now=True)
        return job is not None

    def abandon(self, entry: Entry, detail: str, about: Any = None) -> None:
        """A row a stopped run left ``sending`` that is not sent again: uncertain."""
        job = Job(entry.stream, entry.item, entry.key or "", _never, None, about)
        self._settle(job, Settlement(entry.item, UNCERTAIN, detail), now=True)

    # -- sending -------------------------------------------------------------------------

    def attempt(self, job: Job) -> Settlement | None:
        """Send a claimed job until it settles or is owed a retry in this run (None)."""
        while True:
            job.tries += 1
            try:
                receipt = job.send()
            except PermanentFailure as exc:
                return self._settle(job, Settlement(job.item, FAILED, exc.reason))
            except TemporaryFailure as exc:
                if exc.unknown_outcome and not self.dedupes:
                    detail = f"{exc.reason}; not resent, to avoid a duplicate: check by hand"
                    return self._settle(job, Settlement(job.item, UNCERTAIN, detail))
                wait = exc.retry_after
                if wait is not None and wait > self.policy.max_wait:
                    self._defer(job, exc.reason, wait)
                    raise Paused() from exc
                if wait is not None and job.tries < self.policy.tries:
                    self.flush()
                    self.sleep(wait)  # the far side said when: that is no backoff
                    continue
                return self._owe(job, exc)
            except self.broken as exc:
                detail = f"{exc}; sent on the next run"
                failing = job.claim.failing_since if job.claim else None
                self._settle(job, Settlement(job.item, PENDING, detail, failing_since=failing))
                self.flush()
                raise
            except Exception as exc:  # a surprise mid-send: it may or may not have arrived
                detail = f"unexpected {type(exc).__name__} while sending: {exc}"
                self._settle(job, Settlement(job.item, UNCERTAIN, detail), now=True)
                raise
            outcome = Settlement(
                job.item,
                SENT,
                remote_id=receipt.remote_id,
                remote_url=receipt.remote_url,
                version=job.version,
            )
            return self._settle(job, outcome)

    def _owe(self, job: Job, exc: TemporaryFailure) -> Settlement | None:
        job.reason = exc.reason
        if exc.unknown_outcome or job.claim is None:
            # It may have arrived: keep the row ours in ``sending`` and resend with the
            # same key in this run only, while the far side still knows the key.
            job.claim = None
        else:  # certainly not delivered: pending on disk before any wait
            outcome = self.ledger.retry_later(job.claim, exc.reason, exc.retry_after)
            if outcome.state == FAILED:
                return self._settle(job, outcome)
            self._record(job.stream, outcome)
        self.owed.append(job)
        return None

    def _defer(self, job: Job, reason: str, retry_after: float) -> None:
        if job.claim is None:  # an interrupted send: only this run may resend it
            detail = f"{reason}; it may have arrived, and cannot be resent in time"
            self._settle(job, Settlement(job.item, UNCERTAIN, detail), now=True)
        else:
            outcome = self.ledger.retry_later(job.claim, reason, retry_after)
            self._settle(job, outcome, now=True)

    # -- retry rounds --------------------------------------------------------------------

    def rounds(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Try again what failed temporarily in this run: one pause per round for all of
        them, up to the policy's tries. What is left stays owed (see ``finish``)."""
        round_ = 0
        try:
            while not stop() and (ready := [j for j in self.owed if j.tries < self.policy.tries]):
                round_ += 1
                self.flush()
                self.sleep(self.policy.pause(round_))
                self.owed[:] = [j for j in self.owed if j not in ready]
                for index, job in enumerate(ready):
                    try:
                        if stop():
                            self.owed.extend(ready[index:])
                            return
                        if job.claim is not None:
                            first = self._unrecorded_of(job.stream)
                            claim = self.ledger.take(
                                job.stream, job.item, job.key, settle_first=first, early=True
                            )
                            if claim is None:
                                continue  # settled meanwhile by another process
                            job.claim = claim
                        self.attempt(job)
                    except BaseException:
                        self.owed.extend(ready[index + 1 :])  # not tried again: still owed
                        raise
        except Paused:
            pass

    def _unrecorded_of(self, stream: str) -> Settlement | None:
        """The outcome waiting to be recorded, if it is of ``stream`` (to go with its next
        claim); one of another stream is written now."""
        if self._unrecorded is not None and self._unrecorded_stream == stream:
            first, self._unrecorded = self._unrecorded, None
            return first
        self.flush()
        return None

    def finish(self) -> None:
        """Record what is left: pending rows (on disk already) are reported with the
        ledger's reason and next attempt; a job that may have arrived is uncertain — it
        must not stay ``sending``."""
        self.flush()
        for job in self.owed:
            if job.claim is None:
                detail = (
                    f"{job.reason}; it may have arrived, and is not resent later, when the "
                    "far side would no longer recognise it: check by hand"
                )
                self._settle(job, Settlement(job.item, UNCERTAIN, detail), now=True)
                continue
            entry = self.ledger.entries(job.stream, [job.item]).get(job.item)
            if entry is not None and entry.state == PENDING:
                self.settled(job, Settlement(job.item, PENDING, entry.detail or job.reason))
        self.owed.clear()

    # -- the ledger ----------------------------------------------------------------------

    def _settle(self, job: Job, outcome: Settlement, now: bool = False) -> Settlement:
        """Record (with the next claim of the stream, or ``now``) and report."""
        self._record(job.stream, outcome, now=now)
        self.settled(job, outcome)
        return outcome

    def _record(self, stream: str, outcome: Settlement, now: bool = True) -> None:
        self.flush()
        if now:
            self.ledger.record(stream, outcome)
        else:
            self._unrecorded, self._unrecorded_stream = outcome, stream

    def flush(self) -> None:
        """Write the outcome waiting for the next claim (before any wait, and at the end)."""
        if self._unrecorded is not None:
            outcome, self._unrecorded = self._unrecorded, None
            self.ledger.record(self._unrecorded_stream, outcome)


def _never() -> Receipt:
    raise AssertionError("an abandoned row is never sent")
