"""Digest editions: which articles go in, and sending each edition once per subscriber.

An edition is identified by its digest name and scheduled local time
(``weekly-en@2026-11-23T09:00+05:45``). It is rendered once and frozen in the state
store with the articles it carries, so a resumed send is byte-for-byte the same
edition, and the next edition takes only articles no earlier edition of that digest
carried or passed over, published since its window start (see pipeline.digest.window).

Sending claims a ledger row per (edition, subscriber) before the SMTP conversation and
settles it after, so re-running after a crash at any point sends only what was not
sent; a message in flight at the crash is marked uncertain, not resent. SMTP never
deduplicates, so unlike Mastodon there is no safe blind retry.

An edition is ``sending`` until its audience has been walked, then ``retrying`` while
some recipients wait for a retry (a 4xx reply: each is pending with its own next
attempt time, see pipeline.ledger), then ``sent``. Only a half-walked edition is
finished before a new one is made: a recipient that keeps answering 4xx never holds
back the next edition, and each send retries the recipients whose time has come.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from pipeline.digest.message import build_message, view_url
from pipeline.digest.render import RenderedEdition, render_edition
from pipeline.digest.window import SKIPPED_EDITION, window_start
from pipeline.errors import PermanentFailure, TemporaryFailure
from pipeline.ledger import FAILED, PENDING, SENDING, SENT, UNCERTAIN, Claim, Ledger, Settlement
from pipeline.mailer import MailerBroken, Transport
from pipeline.model import Article
from pipeline.schema import edition_articles, editions
from pipeline.settings import Settings
from pipeline.settings.email import DigestSettings
from pipeline.store import Store
from pipeline.subscribers import BOUNCED, Subscriber, SubscriberStore
from pipeline.tokens import link_secret

SENDING_EDITION, RETRYING_EDITION = "sending", "retrying"
SENT_EDITION = "sent"
CANDIDATES = 1000  # newest live articles examined for a new edition
BOUNCE_CODES = {550, 551, 553}  # the mailbox does not exist: stop mailing it
RETRY_WAIT = 5.0  # seconds: the one pause of a send before refused recipients are retried


@dataclass(frozen=True)
class Edition:
    id: str
    digest: str
    scheduled_for: dt.datetime  # aware, UTC
    status: str
    article_ids: tuple[str, ...]
    rendered: RenderedEdition
    detail: str | None = None


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


class SendStopped(MailerBroken):
    """The mail server broke mid-send; ``report`` says what was done until then."""

    def __init__(self, reason: str, report: EditionReport):
        super().__init__(reason)
        self.report = report


@dataclass
class _Run:
    """One send's report, its one SMTP connection (opened on the first message), and
    the recipients refused for now in it: owed one more try and a line in the report."""

    report: EditionReport
    stop: Callable[[], bool]
    transport: Transport | None = None
    owed: dict[tuple[str, int], tuple[Edition, Subscriber]] = field(default_factory=dict)
    walked: set[str] = field(default_factory=set)  # editions whose audience was walked


def edition_id(name: str, scheduled: dt.datetime, timezone: str, timespec: str = "minutes") -> str:
    local = scheduled.astimezone(zoneinfo.ZoneInfo(timezone))
    return f"{name}@{local.isoformat(timespec=timespec)}"


class Digests:
    """Builds and sends digest editions; everything it touches is passed in."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        transport: Callable[[], Transport],
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        sleep: Callable[[float], None],
        ledger: Ledger | None = None,
        retry_wait: float = RETRY_WAIT,
    ):
        assert settings.email is not None
        self.settings = settings
        self.email = settings.email
        self.store = store
        self.ledger = ledger or Ledger(store.engine)
        self.subscribers = SubscriberStore(store.engine)
        self.transport = transport
        self.clock = clock
        self.sleep = sleep
        self.retry_wait = retry_wait

    # -- choosing and freezing an edition -------------------------------------------------------

    def next_articles(self, name: str) -> list[Article]:
        """The articles an edition of ``name`` made now would carry, newest first."""
        return self._eligible(name, self.clock())[: self.settings.digests[name].max_items]

    def window_start(self, name: str, at: dt.datetime) -> dt.datetime:
        """The oldest publication time an edition of ``name`` at ``at`` takes."""
        return window_start(self.store.engine, name, self.settings.digests[name].max_age_days, at)

    def _eligible(self, name: str, at: dt.datetime) -> list[Article]:
        """Every matching article in the window of an edition at ``at`` that no earlier
        edition of ``name`` dealt with, newest first."""
        digest = self.settings.digests[name]
        since = self.window_start(name, at)
        with self.store.engine.connect() as conn:
            dealt_with = set(
                conn.scalars(
                    select(edition_articles.c.article_id).where(edition_articles.c.digest == name)
                )
            )
        wanted = {v.lower() for v in digest.article_languages()}
        return [
            a
            for a in self.store.latest(CANDIDATES)
            if a.published >= since
            and a.id not in dealt_with
            and a.language.lower() in wanted
            and digest.matches(a.language, a.section, a.tags)
        ]

    def preview(self, name: str) -> tuple[RenderedEdition, list[Article]]:
        articles = self.next_articles(name)
        return render_edition(self.settings.digests[name], self.settings.site, articles), articles

    def audience(self, name: str) -> list[Subscriber]:
        """Who gets digest ``name`` now: active, matching, and not unsubscribed from it."""
        digest = self.settings.digests[name]
        return self.subscribers.audience(
            digest.audience.languages, digest.audience.topics, list_name=name
        )

    def edition(
        self,
        name: str,
        scheduled: dt.datetime | None = None,
        audience: list[Subscriber] | None = None,
    ) -> Edition:
        """The edition to send: the one scheduled for ``scheduled`` if it exists, an
        unfinished one of this digest, or a new one made from the next articles (skipped
        if ``audience``, by default the digest's current one, is empty)."""
        digest, timezone = self.settings.digests[name], self.settings.site.timezone
        if scheduled is not None:
            new_id = edition_id(name, scheduled, timezone)
            found = self.load(new_id)
            if found is not None:
                return found
        else:
            unfinished = self._open(name, SENDING_EDITION)
            if unfinished:
                return unfinished[0]
            # A send by hand is a new edition each time, even twice in one second.
            scheduled = self.clock().replace(microsecond=0)
            new_id = edition_id(name, scheduled, timezone, "seconds")
            while self.load(new_id) is not None:
                scheduled += dt.timedelta(seconds=1)
                new_id = edition_id(name, scheduled, timezone, "seconds")
        eligible = self._eligible(name, scheduled)
        articles, passed_over = eligible[: digest.max_items], eligible[digest.max_items :]
        status, detail = SENDING_EDITION, None
        if len(articles) < digest.min_items:
            # Nothing is recorded as dealt with, so these wait for the next edition.
            status = SKIPPED_EDITION
            detail = f"{len(articles)} new articles; min_items is {digest.min_items}"
            articles, passed_over = [], []
        elif not (self.audience(name) if audience is None else audience):
            # Nobody would read it: keep the articles for an edition someone receives.
            status, detail = SKIPPED_EDITION, "no active subscribers in its audience"
            articles, passed_over = [], []
        elif passed_over:
            detail = f"{len(passed_over)} older articles left out; max_items is {digest.max_items}"
        rendered = render_edition(digest, self.settings.site, articles)
        now = self.clock().astimezone(dt.UTC).replace(tzinfo=None)
        try:
            with self.store.engine.begin() as conn:
                conn.execute(
                    insert(editions).values(
                        id=new_id,
                        digest=name,
                        scheduled_for=scheduled.astimezone(dt.UTC).replace(tzinfo=None),
                        status=status,
                        articles=json.dumps([a.id for a in articles]),
                        subject=rendered.subject,
                        html=rendered.html,
                        text=rendered.text,
                        detail=detail,
                        created_at=now,
                        finished_at=now if status == SKIPPED_EDITION else None,
                    )
                )
                if articles:
                    conn.execute(
                        insert(edition_articles),
                        [
                            {
                                "digest": name,
                                "article_id": a.id,
                                "edition_id": new_id,
                                "carried": index < len(articles),
                            }
                            for index, a in enumerate(articles + passed_over)
                        ],
                    )
        except IntegrityError:
            pass  # another process made this edition (or took an article) first: use theirs
        found = self.load(new_id)
        if found is None:
            raise RuntimeError(f"edition {new_id} could not be stored")
        return found

    def load(self, id_: str) -> Edition | None:
        """The stored edition with this id (``weekly-en@2026-11-23T09:00+05:45``), if any."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(editions).where(editions.c.id == id_)).first()
        return _edition(row) if row else None

    def _open(self, name: str, status: str) -> list[Edition]:
        """Editions of ``name`` with this status (half-walked, or retrying), oldest first."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(editions)
                .where(editions.c.digest == name, editions.c.status == status)
                .order_by(editions.c.scheduled_for)
            ).all()
        return [_edition(row) for row in rows]

    # -- sending ---------------------------------------------------------------------------

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
        report = EditionReport(None)
        run = _Run(report, stop)
        try:
            # Read once (a full pass over the subscribers): to decide, then to send.
            audience = self.audience(name)
            if scheduled is not None:
                target = edition_id(name, scheduled, self.settings.site.timezone)
                for earlier in self._open(name, SENDING_EDITION):
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
            for earlier in self._open(name, RETRYING_EDITION):
                if earlier.id != edition.id and not stop():
                    self._send_edition(earlier, run, audience, earlier=True)
            self._retry_round(run)
        except MailerBroken as exc:
            report.stopped = str(exc)
            self._report_owed(run)
            raise SendStopped(str(exc), report) from exc
        finally:
            if run.transport is not None:
                run.transport.close()
        return report

    def _send_edition(
        self, edition: Edition, run: _Run, audience: list[Subscriber], earlier: bool = False
    ) -> None:
        """Walk an edition's audience (or, once walked, its recipients whose retry is due),
        then mark it sent, or retrying while some recipients wait for a retry."""
        report, stream = run.report, stream_of(edition.id)
        for entry in self.ledger.interrupted(stream):
            detail = "the run stopped during the SMTP conversation; it may have been delivered"
            self.ledger.settle(stream, entry.item, UNCERTAIN, detail=detail)
            report.uncertain.append((self.address(entry.item), detail))
        done = self.ledger.entries(stream)
        now = self.ledger.clock()
        due = {item for item, entry in done.items() if self.ledger.is_due(entry, now)}
        members = {str(s.id) for s in audience}
        for item in sorted(due - members):  # unsubscribed, bounced or removed meanwhile
            self.ledger.drop(stream, item, "no longer in this digest's audience")
        if edition.status == SENDING_EDITION:
            todo = [s for s in audience if str(s.id) not in done or str(s.id) in due]
        else:
            todo = [s for s in audience if str(s.id) in due]
        report.waiting += sum(e.state == PENDING and i not in due for i, e in done.items())
        if todo and earlier:
            report.earlier.append(edition.id)
        if self._deliver_all(edition, todo, run, retry=False):
            run.walked.add(edition.id)
            self._close_if_done(edition)

    def _deliver_all(
        self, edition: Edition, todo: list[Subscriber], run: _Run, retry: bool
    ) -> bool:
        """Claim and send to each of ``todo`` in turn; False if ``stop`` cut it short. A
        recipient refused for now is pending at once (on disk before anything else is
        sent) and tried once more at the end of the run, unless this is that retry."""
        if not todo:
            return True
        stream = stream_of(edition.id)
        digest = self.settings.digests[edition.digest]
        secret = link_secret(self.email.unsubscribe.secret, self.store)
        outcome: Settlement | None = None  # the last message's, recorded with the next claim
        try:
            for subscriber in todo:
                if run.stop():
                    return False  # the rest have no ledger row yet: the edition stays open
                message = self.message(edition, digest, subscriber, secret)
                item, message_id = str(subscriber.id), message["Message-ID"]
                claim = self.ledger.take(
                    stream, item, message_id, settle_first=outcome, early=retry
                )
                outcome = None
                if claim is not None:  # else another process has it, or it is not due
                    if run.transport is None:
                        run.transport = self.transport()
                    outcome = self._deliver(run, message, stream, claim, subscriber)
                    if outcome.state == PENDING and not retry:
                        run.owed[(edition.id, subscriber.id)] = (edition, subscriber)
                    elif outcome.state == PENDING:
                        run.report.pending.append((subscriber.email, outcome.detail or ""))
                if retry:
                    run.owed.pop((edition.id, subscriber.id), None)
        finally:
            if outcome is not None:
                self.ledger.record(stream, outcome)
        return True

    def _deliver(
        self, run: _Run, message: EmailMessage, stream: str, claim: Claim, subscriber: Subscriber
    ) -> Settlement:
        """Send one claimed message once; how it ended, for the ledger. A broken mailer
        is recorded at once (the recipient is due again on the next send), then raised."""
        assert run.transport is not None
        report, address = run.report, subscriber.email
        try:
            run.transport.send(message)
        except PermanentFailure as exc:
            report.failed.append((address, exc.reason))
            if exc.status in BOUNCE_CODES:
                self.subscribers.set_status(subscriber.id, BOUNCED, exc.reason)
            return Settlement(claim.item, FAILED, exc.reason)
        except TemporaryFailure as exc:
            if exc.unknown_outcome:
                report.uncertain.append((address, exc.reason))
                return Settlement(claim.item, UNCERTAIN, exc.reason)
            outcome = self.ledger.retry_later(claim, exc.reason, exc.retry_after)
            if outcome.state == FAILED:
                report.failed.append((address, outcome.detail or exc.reason))
            return outcome
        except MailerBroken as exc:
            detail = f"{exc}; sent on the next run"
            pending = Settlement(claim.item, PENDING, detail, failing_since=claim.failing_since)
            self.ledger.record(stream, pending)
            report.pending.append((address, detail))
            raise
        except Exception as exc:  # a surprise mid-conversation: it may have been delivered
            detail = f"unexpected {type(exc).__name__} while sending: {exc}"
            self.ledger.record(stream, Settlement(claim.item, UNCERTAIN, detail))
            raise
        report.sent.append(address)
        return Settlement(claim.item, SENT, remote_id=message["Message-ID"])

    def _retry_round(self, run: _Run) -> None:
        """One pause for the whole run, then one more try for each recipient refused
        for now (450/451/452, a dropped connection before DATA). What still fails waits
        for its next attempt time, in a later send."""
        if run.owed and not run.stop():
            self.sleep(self.retry_wait)
            by_edition: dict[str, tuple[Edition, list[Subscriber]]] = {}
            for edition, subscriber in list(run.owed.values()):
                by_edition.setdefault(edition.id, (edition, []))[1].append(subscriber)
            for edition, subscribers in by_edition.values():
                if run.stop() or not self._deliver_all(edition, subscribers, run, retry=True):
                    break
                if edition.id in run.walked:
                    self._close_if_done(edition)
        self._report_owed(run)

    def _report_owed(self, run: _Run) -> None:
        """Those refused for now and not tried again (stopped, or the server broke):
        pending, with the reason and next attempt the ledger holds."""
        for (edition_id, subscriber_id), (_, subscriber) in run.owed.items():
            entry = self.ledger.entries(stream_of(edition_id), [str(subscriber_id)]).get(
                str(subscriber_id)
            )
            if entry is not None and entry.state == PENDING:
                run.report.pending.append((subscriber.email, entry.detail or ""))
        run.owed.clear()

    def _close_if_done(self, edition: Edition) -> None:
        """An edition whose audience has been walked is ``sent`` once every row is final,
        else ``retrying`` (later sends retry its pending rows when they are due)."""
        rows = self.ledger.entries(stream_of(edition.id)).values()
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

    def address(self, item: str) -> str:
        """A ledger item of a digest stream (a subscriber id) as a person knows it."""
        found = self.subscribers.get_by_id(int(item)) if item.isdigit() else None
        return found.email if found else f"subscriber #{item} (no longer on file)"

    # -- the message ------------------------------------------------------------------------

    def message(
        self, edition: Edition, digest: DigestSettings, subscriber: Subscriber, secret: str
    ) -> EmailMessage:
        """One subscriber's copy (see pipeline.digest.message)."""
        args = (edition.id, edition.digest, edition.rendered, digest, subscriber, secret)
        return build_message(self.settings, *args, self.clock())

    def view_url(self, edition: Edition) -> str:
        """The edition in a browser (served by ``pipeline serve``, beside /unsubscribe)."""
        return view_url(self.settings, edition.digest, edition.id)


def reopen(engine: Engine, edition: str) -> None:
    """An edition one of whose recipients was settled by hand as not sent: later sends
    of its digest retry that recipient."""
    with engine.begin() as conn:
        conn.execute(
            update(editions)
            .where(editions.c.id == edition, editions.c.status == SENT_EDITION)
            .values(status=RETRYING_EDITION, finished_at=None)
        )


def stream_of(edition: str) -> str:
    return f"mail:{edition}"


def _edition(row) -> Edition:
    return Edition(
        id=row.id,
        digest=row.digest,
        scheduled_for=row.scheduled_for.replace(tzinfo=dt.UTC),
        status=row.status,
        article_ids=tuple(json.loads(row.articles)),
        rendered=RenderedEdition(
            subject=row.subject, preheader="", html=row.html, text=row.text, warnings=()
        ),
        detail=row.detail,
    )
