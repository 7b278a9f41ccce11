"""Sending digest editions, once per subscriber, through the delivery core.

Each (edition, subscriber) is a ledger row claimed before the SMTP conversation and
settled after (pipeline.delivery), so re-running after a crash at any point sends only
what was not sent; a message in flight at the crash is marked uncertain, not resent.
SMTP never deduplicates, so unlike Mastodon there is no safe blind retry.

A recipient refused for now (a 4xx reply) is pending with its own next attempt time
(see pipeline.ledger) and tried once more at the end of the send, after one pause for
the whole send. Only a half-walked edition is finished before a new one is made: a
recipient that keeps answering 4xx never holds back the next edition, and each send
retries the recipients whose time has come.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage

from sqlalchemy import update

from pipeline.channels import Receipt
from pipeline.clock import Clock, system_clock
from pipeline.delivery import Courier, Job, RetryPolicy
from pipeline.digest.editions import (
    RETRYING_EDITION,
    SENDING_EDITION,
    SENT_EDITION,
    Edition,
    Editions,
    edition_id,
    mail_stream,
)
from pipeline.digest.window import SKIPPED_EDITION
from pipeline.errors import PermanentFailure
from pipeline.feedback import Feedback
from pipeline.ledger import FAILED, PENDING, SENDING, SENT, UNCERTAIN, Ledger, Settlement
from pipeline.mailer import MailerBroken, Staged, Transport, stage
from pipeline.schema import editions
from pipeline.settings import Settings
from pipeline.store import Store
from pipeline.subscribers import Subscriber
from pipeline.suppression import Suppression, Suppressions
from pipeline.tokens import link_secret

BOUNCE_CODES = {550, 551, 553}  # the mailbox does not exist: stop mailing it
RETRY_WAIT = 5.0  # seconds: the one pause of a send before refused recipients are retried


@dataclass
class EditionReport:
    edition: Edition | None
    skipped: str | None = None  # why no edition was sent
    sent: list[str] = field(default_factory=list)  # email addresses
    failed: list[tuple[str, str]] = field(default_factory=list)
    pending: list[tuple[str, str]] = field(default_factory=list)
    uncertain: list[tuple[str, str]] = field(default_factory=list)
    already_done: bool = False
    earlier: list[str] = field(default_factory=list)  # earlier editions finished or retried
    waiting: int = 0  # recipients of these editions whose next attempt is later
    stopped: str | None = None  # why the send ended early (the mail server broke)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.pending or self.uncertain or self.stopped)

    def add(self, job: Job, outcome: Settlement) -> None:
        """A settled message, listed by its recipient's address."""
        address = str(job.about)  # the recipient's email address
        if outcome.state == SENT:
            self.sent.append(address)
        else:
            kind = {FAILED: self.failed, PENDING: self.pending, UNCERTAIN: self.uncertain}
            kind[outcome.state].append((address, outcome.detail or ""))


class SendStopped(MailerBroken):
    """The mail server broke mid-send; ``report`` says what was done until then."""

    def __init__(self, reason: str, report: EditionReport):
        super().__init__(reason)
        self.report = report


@dataclass
class SendState:
    """One send: its report, its courier (whose owed jobs are the recipients refused for
    now), its one SMTP connection (opened on the first message), and ``stop``."""

    report: EditionReport
    courier: Courier
    stop: Callable[[], bool]
    transport: Transport | None = None
    walked: set[str] = field(default_factory=set)  # editions whose audience was walked


class Digests(Editions):
    """Builds and sends digest editions; everything it touches is passed in."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        transport: Callable[[], Transport],
        clock: Clock = system_clock,
        sleep: Callable[[float], None],
        ledger: Ledger | None = None,
        retry_wait: float = RETRY_WAIT,
        connections: int = 1,
        pace: Callable[[], None] | None = None,
    ):
        super().__init__(settings, store, clock=clock)
        self.ledger = ledger or Ledger(store.engine)
        self.transport = transport
        self.sleep = sleep
        self.retry_wait = retry_wait
        self.connections = connections  # SMTP connections a send keeps open at once
        self.pace = pace  # waits for the next message's turn of a rate shared by them all
        self.suppressions = Suppressions.configured(store.engine, self.email.bounces, clock)

    def send(
        self,
        name: str,
        scheduled: dt.datetime | None = None,
        stop: Callable[[], bool] = lambda: False,
    ) -> EditionReport:
        """Send (or finish sending) an edition, then retry the recipients of earlier
        editions whose next attempt has come. ``stop`` is asked before each message: when
        it says so, the rest is left unclaimed for the next send to finish. A scheduled
        send first finishes any earlier edition a crash or stop left half-walked, so no
        edition is ever abandoned; a recipient waiting for a retry holds nothing up.

        A mail server that breaks (cannot connect, refuses the login) raises
        ``SendStopped``, which carries the report of what this send did until then."""
        run = self.new_run(stop)
        report = run.report
        with self.sending(run):
            # Read once (a full pass over the subscribers): to decide, then to send.
            audience = self.audience(name)
            if scheduled is not None:
                target = edition_id(name, scheduled, self.settings.site.timezone)
                for earlier in self.open_editions(name, SENDING_EDITION):
                    if earlier.id != target and not stop():
                        report.earlier.append(earlier.id)
                        self._send_edition(earlier, run, audience)
            edition = self.edition(name, scheduled, audience)
            report.edition = edition
            if edition.status == SKIPPED_EDITION:
                report.skipped = edition.detail
            elif edition.status == SENT_EDITION:
                report.already_done = True
            else:
                self._send_edition(edition, run, audience)
            for earlier in self.open_editions(name, RETRYING_EDITION):
                if earlier.id != edition.id and not stop():
                    self._send_edition(earlier, run, audience, earlier=True)
            self.retry_round(run)
        return report

    def new_run(self, stop: Callable[[], bool]) -> SendState:
        report = EditionReport(None)
        policy = RetryPolicy(tries=2, pause=lambda _: self.retry_wait)
        courier = Courier(self.ledger, policy, self.sleep, report.add, broken=(MailerBroken,))
        return SendState(report, courier, stop)

    @contextmanager
    def sending(self, run: SendState) -> Iterator[None]:
        """Around a send: a mail server that breaks ends it with ``SendStopped`` (what
        was done until then is recorded), and the connection is closed in any case."""
        try:
            yield
        except MailerBroken as exc:
            run.report.stopped = str(exc)
            run.courier.finish()
            raise SendStopped(str(exc), run.report) from exc
        finally:
            run.courier.flush()
            if run.transport is not None:
                run.transport.close()

    def _send_edition(
        self, edition: Edition, run: SendState, audience: list[Subscriber], earlier: bool = False
    ) -> None:
        """Walk an edition's audience (or, once walked, its recipients whose retry is due),
        then mark it sent, or retrying while some recipients wait for a retry."""
        todo = self.outstanding(edition, run, audience)
        if todo and earlier:
            run.report.earlier.append(edition.id)
        if self.deliver_all(edition, todo, run):
            run.walked.add(edition.id)
            self.close_if_done(edition)

    def outstanding(
        self,
        edition: Edition,
        run: SendState,
        audience: list[Subscriber],
        items: Collection[str] | None = None,
    ) -> list[Subscriber]:
        """Who of ``audience`` (only ``items``, for one batch) is still to get ``edition``:
        not yet claimed while it is being walked, or due for a retry. Rows a stopped
        process left ``sending`` become uncertain (in a batch, every such row: the batch
        is run again only after its worker stopped), and due rows of subscribers who
        left the audience are dropped, on the way."""
        stream = mail_stream(edition.id)
        for entry in self.ledger.interrupted(stream, items):
            detail = "the run stopped during the SMTP conversation; it may have been delivered"
            run.courier.abandon(entry, detail, about=self.address(entry.item))
        done = self.ledger.entries(stream, items)
        due = {item for item, entry in done.items() if self.ledger.is_due(entry)}
        members = {str(s.id) for s in audience}
        for item in sorted(due - members):  # unsubscribed, bounced or removed meanwhile
            self.ledger.drop(stream, item, "no longer in this digest's audience")
        if items is not None:
            audience = [s for s in audience if str(s.id) in items]
        if edition.status == SENDING_EDITION:
            todo = [s for s in audience if str(s.id) not in done or str(s.id) in due]
        else:
            todo = [s for s in audience if str(s.id) in due]
        run.report.waiting += sum(e.state == PENDING and i not in due for i, e in done.items())
        return todo

    def deliver_all(self, edition: Edition, todo: list[Subscriber], run: SendState) -> bool:
        """Send to each of ``todo`` over ``smtp.connections`` connections at once, each
        taking every n-th recipient; False if ``stop`` cut it short (the rest have no
        ledger row yet: the edition stays open)."""
        lanes = min(self.connections, len(todo))
        if lanes <= 1:
            return self._deliver_lane(edition, todo, run)
        broken = threading.Event()  # one connection's server broke: the others stop too
        runs = [
            SendState(run.report, run.courier.alike(), lambda: run.stop() or broken.is_set())
            for _ in range(lanes)
        ]

        def lane(index: int) -> bool:
            try:
                return self._deliver_lane(edition, todo[index::lanes], runs[index])
            except BaseException:
                broken.set()
                raise
            finally:
                transport = runs[index].transport
                if transport is not None:
                    transport.close()

        with ThreadPoolExecutor(lanes, thread_name_prefix="smtp") as pool:
            futures = [pool.submit(lane, index) for index in range(lanes)]
        for each in runs:  # the retry round at the end takes them all on one connection
            run.courier.owed.extend(each.courier.owed)
        return all([future.result() for future in futures])

    def _deliver_lane(self, edition: Edition, todo: list[Subscriber], run: SendState) -> bool:
        """Claim and send to each of ``todo`` in turn, on ``run``'s one connection.

        The claim's commit (a wait for the disk, or for PostgreSQL) and the look at the
        suppression list, then the building of the next copy, run on a second thread
        while this one stages the copy on the connection: envelope, DATA and body, all
        but the final dot (``pipeline.mailer.stage``). The dot goes only once the claim
        is committed, and the next claim only after the server's answer: as before, a
        crash leaves at most this one copy in doubt, and a copy whose claim never
        committed was never delivered (the server drops a transaction without its dot),
        so the next send sends it."""
        if not todo:
            return True
        stream = mail_stream(edition.id)
        digest = self.settings.digests[edition.digest]
        secret = link_secret(self.email.unsubscribe.secret, self.store)
        claims = ThreadPoolExecutor(1, thread_name_prefix="claim")

        def build(subscriber: Subscriber) -> _Copy:
            message = self.message(edition, digest, subscriber, secret)
            return _Copy(self, run, message, subscriber)

        try:
            upcoming = claims.submit(build, todo[0])
            for index in range(len(todo)):
                if run.stop():
                    return False
                copy = upcoming.result()
                claim = claims.submit(copy.claim, stream)
                if index + 1 < len(todo):  # built after the claim, while this one travels
                    upcoming = claims.submit(build, todo[index + 1])
                staged = copy.stage()
                try:
                    job = claim.result()
                except BaseException:
                    staged.abandon()
                    raise
                if job is None:  # another process has it, or it is not due
                    staged.abandon()
                else:
                    run.courier.attempt(job)
        finally:
            claims.shutdown()
            run.courier.flush()
        return True

    def deliver(self, run: SendState, message: EmailMessage) -> Staged:
        """Stage ``message`` on the run's connection (opened on the first message)."""
        if self.pace is not None:
            self.pace()
        if run.transport is None:
            try:
                run.transport = self.transport()
            except Exception as exc:  # met where the send would meet it: after the claim
                return Staged.failing(exc)
        return stage(run.transport, message)

    def bounced(self, subscriber: Subscriber, failure: PermanentFailure) -> None:
        """A refusal that says the mailbox does not exist: stop mailing it."""
        if failure.status in BOUNCE_CODES:
            reason = failure.reason or f"{failure.status}"
            self.suppressions.record(Feedback(subscriber.email, "bounce", reason, "smtp"))

    def retry_round(self, run: SendState) -> None:
        """One pause for the whole run, then one more try for each recipient refused
        for now (450/451/452, a dropped connection before DATA). What still fails waits
        for its next attempt time, in a later send."""
        retried = {job.stream for job in run.courier.owed}
        try:
            run.courier.rounds(run.stop)
        finally:
            run.courier.finish()
        for edition_id_ in sorted(retried):
            edition = self.load(edition_id_.removeprefix("mail:"))
            if edition is not None and edition.id in run.walked:
                self.close_if_done(edition)

    def close_if_done(self, edition: Edition) -> None:
        """An edition whose audience has been walked is ``sent`` once every row is final,
        else ``retrying`` (later sends retry its pending rows when they are due)."""
        rows = self.ledger.entries(mail_stream(edition.id)).values()
        waiting = any(e.state in (PENDING, SENDING) for e in rows)
        with self.store.engine.begin() as conn:
            conn.execute(
                update(editions)
                .where(
                    editions.c.id == edition.id,
                    editions.c.status.in_((SENDING_EDITION, RETRYING_EDITION)),
                )
                .values(
                    status=RETRYING_EDITION if waiting else SENT_EDITION,
                    finished_at=None if waiting else self.clock().replace(tzinfo=None),
                )
            )


class _Copy:
    """One subscriber's copy, as the courier sends it: the first attempt ends the send
    staged while its claim committed; a retry sends it whole again.

    The last look before any transport, built-in or plug-in, gets it: an address
    suppressed since the audience was read is refused, and said so (a staged copy is
    then abandoned: its connection goes without the final dot)."""

    def __init__(
        self, digests: Digests, run: SendState, message: EmailMessage, subscriber: Subscriber
    ):
        self.digests = digests
        self.run = run
        self.message = message
        self.subscriber = subscriber
        self.staged: Staged | None = None
        self.suppressed: Suppression | None = None

    def claim(self, stream: str) -> Job | None:
        """On the claim thread: the suppression list, then the ledger row."""
        email = self.subscriber.email
        self.suppressed = self.digests.suppressions.of_subscriber(email)
        key = self.message["Message-ID"]
        return self.run.courier.take(stream, str(self.subscriber.id), key, self, about=email)

    def stage(self) -> Staged:
        self.staged = self.digests.deliver(self.run, self.message)
        return self.staged

    def __call__(self) -> Receipt:
        staged, self.staged = self.staged, None
        if staged is None:  # a retry: look at the list again
            self.suppressed = self.digests.suppressions.of_subscriber(self.subscriber.email)
        if self.suppressed is not None:
            if staged is not None:
                staged.abandon()
            raise PermanentFailure(f"not sent: {self.suppressed.describe()}")
        try:
            (staged or self.digests.deliver(self.run, self.message)).finish()
        except PermanentFailure as exc:
            self.digests.bounced(self.subscriber, exc)
            raise
        return Receipt(remote_id=self.message["Message-ID"])
