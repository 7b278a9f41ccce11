"""Digest editions: which articles go in, frozen once (sending: pipeline.digest.sending).

An edition is identified by its digest name and scheduled local time
(``weekly-en@2026-11-23T09:00+05:45``). It is rendered once and frozen in the state
store with the articles it carries, so a resumed send is byte-for-byte the same
edition, and the next edition takes only articles no earlier edition of that digest
carried or passed over, published since its window start (see pipeline.digest.window).

An edition is ``sending`` until its audience has been walked, then ``retrying`` while
some recipients wait for a retry, then ``sent``.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from collections.abc import Collection
from dataclasses import dataclass
from email.message import EmailMessage

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from pipeline.clock import Clock, system_clock
from pipeline.digest.message import build_message, view_url
from pipeline.digest.render import RenderedEdition, render_edition
from pipeline.digest.window import SKIPPED_EDITION, window_start
from pipeline.model import Article
from pipeline.schema import LIVE, articles, edition_articles, editions
from pipeline.settings import Settings
from pipeline.settings.email import DigestSettings
from pipeline.store import Store
from pipeline.subscribers import Subscriber, SubscriberStore

SENDING_EDITION, RETRYING_EDITION = "sending", "retrying"
SENT_EDITION = "sent"
CANDIDATES = 1000  # newest live articles examined for a new edition


@dataclass(frozen=True)
class Edition:
    id: str
    digest: str
    scheduled_for: dt.datetime  # aware, UTC
    status: str
    article_ids: tuple[str, ...]  # what it carries, in order
    rendered: RenderedEdition
    detail: str | None = None


def edition_id(name: str, scheduled: dt.datetime, timezone: str, timespec: str = "minutes") -> str:
    local = scheduled.astimezone(zoneinfo.ZoneInfo(timezone))
    return f"{name}@{local.isoformat(timespec=timespec)}"


class Editions:
    """Chooses, freezes and loads digest editions; everything it touches is passed in."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Clock = system_clock,
    ):
        assert settings.email is not None
        self.settings = settings
        self.email = settings.email
        self.store = store
        self.subscribers = SubscriberStore(store.engine, clock)  # a pause ends by this clock
        self.clock = clock

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
        digest, site = self.settings.digests[name], self.settings.site
        return render_edition(digest, site, articles, date=self.clock()), articles

    def audience(self, name: str, ids: Collection[int] | None = None) -> list[Subscriber]:
        """Who gets digest ``name`` now: active, matching, and not unsubscribed from it
        (of ``ids`` only, if given)."""
        digest = self.settings.digests[name]
        return self.subscribers.audience(
            digest.audience.languages, digest.audience.topics, list_name=name, ids=ids
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
            unfinished = self.open_editions(name, SENDING_EDITION)
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
        corrected = self.corrected(name, scheduled) if articles and digest.corrections else []
        rendered = render_edition(digest, self.settings.site, articles, corrected, date=scheduled)
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

    def corrected(self, name: str, at: dt.datetime) -> list[Article]:
        """Articles earlier editions of ``name`` carried whose content changed since the
        previous edition was made (the store moves ``changed_at`` only when it does), and
        are still published; newest first."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(editions)
                .where(
                    editions.c.digest == name,
                    editions.c.status != SKIPPED_EDITION,
                    editions.c.scheduled_for < at.astimezone(dt.UTC).replace(tzinfo=None),
                )
                .order_by(editions.c.created_at)
            ).all()
            if not rows:
                return []
            carried = {a for row in rows for a in _edition(row).article_ids}
            since = rows[-1].created_at
            changed = conn.scalars(
                select(articles.c.id).where(
                    articles.c.id.in_(sorted(carried)),
                    articles.c.status == LIVE,
                    articles.c.changed_at > since,
                    articles.c.changed_at > articles.c.first_seen,  # changed, not just new
                )
            ).all()
        found = [a for a in (self.store.get(i) for i in changed) if a is not None]
        return sorted(found, key=lambda a: (a.published, a.id), reverse=True)

    def load(self, id_: str) -> Edition | None:
        """The stored edition with this id (``weekly-en@2026-11-23T09:00+05:45``), if any."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(editions).where(editions.c.id == id_)).first()
        return _edition(row) if row else None

    def open_editions(self, name: str, status: str) -> list[Edition]:
        """Editions of ``name`` with this status (half-walked, or retrying), oldest first."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(editions)
                .where(editions.c.digest == name, editions.c.status == status)
                .order_by(editions.c.scheduled_for)
            ).all()
        return [_edition(row) for row in rows]

    def message(
        self, edition: Edition, digest: DigestSettings, subscriber: Subscriber, secret: str
    ) -> EmailMessage:
        """One subscriber's copy (see pipeline.digest.message)."""
        args = (edition.id, edition.digest, edition.rendered, digest, subscriber, secret)
        return build_message(self.settings, *args, self.clock())

    def view_url(self, edition: Edition) -> str | None:
        """The edition in a browser (served by ``pipeline serve``, beside /unsubscribe)."""
        return view_url(self.settings, edition.digest, edition.id)

    def address(self, item: str) -> str:
        """A ledger item of a digest stream (a subscriber id) as a person knows it."""
        found = self.subscribers.get_by_id(int(item)) if item.isdigit() else None
        return found.email if found else f"subscriber #{item} (no longer on file)"


def reopen(engine: Engine, edition: str) -> None:
    """An edition one of whose recipients was settled by hand as not sent: later sends
    of its digest retry that recipient."""
    with engine.begin() as conn:
        conn.execute(
            update(editions)
            .where(editions.c.id == edition, editions.c.status == SENT_EDITION)
            .values(status=RETRYING_EDITION, finished_at=None)
        )


def mail_stream(edition: str) -> str:
    """The ledger stream of an edition's messages: one row per subscriber."""
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
