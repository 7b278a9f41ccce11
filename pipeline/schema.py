"""Every table of the state store, in one place.

SQLAlchemy Core. A new store is made from these tables (``metadata.create_all``);
existing stores change only through the revisions in pipeline/migrations. So any change
here needs a revision: ``python -m pipeline.migrations revision "what changed"`` writes
it (tests/test_migrations.py fails until the two agree). Times are stored as naive UTC.
Rows that record what happened (articles, deliveries) are marked, never deleted, so
history and permanent ids survive.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from pipeline.widths import ARTICLE_WIDTHS, TAG_WIDTH

LIVE, REMOVED = "live", "removed"

metadata = MetaData()

articles = Table(
    "articles",
    metadata,
    Column("id", String(ARTICLE_WIDTHS["id"]), primary_key=True),
    Column("source", String(ARTICLE_WIDTHS["source"]), nullable=False),
    Column("item_key", String(1024), nullable=False),
    Column("fingerprint", String(200), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("guid", String(1024), nullable=False),
    Column("status", String(10), nullable=False),  # live | removed
    Column("published", DateTime, nullable=False),  # UTC, for ordering
    Column("language", String(ARTICLE_WIDTHS["language"]), nullable=False),  # lower case
    Column("section", String(ARTICLE_WIDTHS["section"]), nullable=False),
    Column("translation_of", String(ARTICLE_WIDTHS["translation_of"])),
    Column("data", Text, nullable=False),  # the Article as JSON
    Column("first_seen", DateTime, nullable=False),
    Column("changed_at", DateTime, nullable=False),
    Index("ix_articles_source_key", "source", "item_key"),
    Index("ix_articles_live_published", "status", "published"),
    Index("ix_articles_translation_of", "translation_of"),
    # Feeds by language or section: the newest 50 read off the index, however many
    # articles the store holds (migration 0007).
    Index("ix_articles_live_language", "status", "language", "published"),
    Index("ix_articles_live_section", "status", "section", "published"),
)

article_tags = Table(
    "article_tags",
    metadata,
    Column("article_id", String(ARTICLE_WIDTHS["id"]), ForeignKey("articles.id"), primary_key=True),
    Column("tag_key", String(TAG_WIDTH), primary_key=True),  # lower case
    Index("ix_article_tags_tag_key", "tag_key"),  # tag feeds look articles up by tag
)

deliveries = Table(
    "deliveries",
    metadata,
    # stream: what is being delivered where, e.g. "post:mastodon" or
    # "mail:weekly-en@2026-11-23T09:00+05:45"; item: an article id or a subscriber id.
    Column("stream", String(300), primary_key=True),
    Column("item", String(512), primary_key=True),
    Column("state", String(12), nullable=False),  # see pipeline.ledger
    Column("attempts", Integer, nullable=False, default=0),
    Column("key", String(200)),  # idempotency key sent with the request
    Column("owner", String(300)),  # host:pid of the process that claimed it
    Column("remote_id", String(512)),
    Column("remote_url", String(2048)),
    Column("detail", Text),  # the far side's reason for a failure, or why it was skipped
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    # A pending row is tried again no earlier than next_attempt_at (null: at once), and
    # given up (failed) once it has kept failing since failing_since for longer than the
    # ledger's give_up_after. Both null in every other state; nullable so that rows
    # written before they existed read as "due now, no failures yet".
    Column("next_attempt_at", DateTime),
    Column("failing_since", DateTime),
    # What a sent post said: the sha256 of its article's title, summary and URL (see
    # pipeline.corrections). Null for mail and for rows from before corrections existed,
    # which are never corrected.
    Column("version", String(64)),
    Index("ix_deliveries_state", "state"),
    Index("ix_deliveries_updated", "updated_at"),
    # A channel's due or interrupted rows, and its newest changes (``pipeline history``),
    # without reading every row it ever had (migration 0007).
    Index("ix_deliveries_stream_state", "stream", "state"),
    Index("ix_deliveries_stream_updated", "stream", "updated_at"),
)

state_values = Table(
    "state_values",
    metadata,
    # small JSON documents components keep between runs (e.g. a Bluesky session)
    Column("name", String(200), primary_key=True),
    Column("value", Text, nullable=False),
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, unique=True),  # normalised by email-validator
    Column("name", String(200), nullable=False),
    Column("language", String(35), nullable=False),
    Column("topics", Text, nullable=False),  # JSON list
    Column("status", String(12), nullable=False),  # active | unsubscribed | bounced | pending
    Column("status_detail", Text),  # why it changed: "one-click unsubscribe", "550 5.1.1 …"
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("paused_until", DateTime),  # UTC; no digest until then (the preference page)
    Column("consent_source", String(200)),  # "sign-up form", "mailchimp import", ...
    Column("consent_at", DateTime),  # UTC, when that consent was given
    Index("ix_subscribers_status", "status"),
    sqlite_autoincrement=True,  # never reuse a deleted subscriber's id
)

list_unsubscribes = Table(
    "list_unsubscribes",
    metadata,
    # a subscriber who left one digest (one-click unsubscribe) but not the others
    Column(
        "subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("list_name", String(100), primary_key=True),
    Column("created_at", DateTime, nullable=False),
)

suppressions = Table(
    "suppressions",
    metadata,
    # an address never mailed again, subscriber or not (pipeline.suppression)
    Column("address", String(320), primary_key=True),  # normalised like subscribers.email
    Column("kind", String(12), nullable=False),  # bounce | complaint
    Column("reason", Text, nullable=False),  # the report's words: "5.1.1 user unknown"
    Column("source", String(40), nullable=False),  # dsn | arf | ses | mailgun | smtp | ...
    Column("created_at", DateTime, nullable=False),
)

mail_feedback = Table(
    "mail_feedback",
    metadata,
    # every report about an address: history, and the count of temporary failures
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("address", String(320), nullable=False),
    Column("kind", String(12), nullable=False),  # bounce | delay | complaint
    Column("reason", Text, nullable=False),
    Column("source", String(40), nullable=False),
    Column("message_id", String(300)),
    Column("received_at", DateTime, nullable=False),
    Column("outcome", Text, nullable=False),  # what was done, in words
    Index("ix_mail_feedback_address", "address", "received_at"),
    sqlite_autoincrement=True,
)

editions = Table(
    "editions",
    metadata,
    Column("id", String(300), primary_key=True),  # "weekly-en@2026-11-23T09:00+05:45"
    Column("digest", String(100), nullable=False),
    Column("scheduled_for", DateTime, nullable=False),  # UTC
    Column("status", String(12), nullable=False),  # sending | sent | skipped
    Column("articles", Text, nullable=False),  # JSON list of article ids, in order
    Column("subject", Text, nullable=False),
    Column("html", Text, nullable=False),  # with per-recipient placeholders; the archive copy
    Column("text", Text, nullable=False),
    Column("detail", Text),  # why it was skipped
    Column("created_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Index("ix_editions_digest", "digest", "scheduled_for"),
)

edition_articles = Table(
    "edition_articles",
    metadata,
    # which articles a digest has dealt with: carried by an edition, or passed over
    # because that edition was already full (as Mailchimp's RSS campaigns do, so a
    # busy week never spills stale articles into the weeks after). The next edition
    # takes only the others.
    Column("digest", String(100), primary_key=True),
    Column("article_id", String(512), primary_key=True),
    Column("edition_id", String(300), nullable=False),
    Column("carried", Boolean, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    # one row per scheduled run, written by `pipeline serve` (see pipeline.runs)
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("schedule", String(100), nullable=False),
    Column("action", String(300), nullable=False),
    Column("scheduled_for", DateTime, nullable=False),  # UTC
    Column("started_at", DateTime),
    Column("finished_at", DateTime),
    Column("outcome", String(12), nullable=False),  # running | ok | partial | failed | missed …
    Column("counts", Text, nullable=False),  # JSON {"added": 2, "sent": 40}
    Column("detail", Text),  # what went wrong, or why it was missed or skipped
    Column("owner", String(300)),  # host:pid of the process that ran it
    Index("ix_runs_schedule", "schedule", "scheduled_for"),
    Index("ix_runs_scheduled", "scheduled_for", "id"),  # history, newest first (0007)
)

fires = Table(
    "fires",
    metadata,
    # each scheduled fire once, whichever `serve` fires it (pipeline.queue.enqueue): the
    # row is written in the transaction that enqueues the fire's jobs
    Column("schedule", String(100), primary_key=True),
    Column("scheduled_for", DateTime, primary_key=True),  # UTC
    Column("run_id", Integer, nullable=False),
    Column("fired_by", String(300), nullable=False),  # host:pid
    Column("fired_at", DateTime, nullable=False),
)

edition_batches = Table(
    "edition_batches",
    metadata,
    # a digest edition fanned out into jobs of `queue.batch_size` recipients each
    Column("edition_id", String(300), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("subscriber_ids", Text, nullable=False),  # JSON list
    Column("state", String(12), nullable=False),  # queued | done
    Column("sent", Integer, nullable=False, default=0),
    Column("uncertain", Integer, nullable=False, default=0),
    Column("created_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
)

pacers = Table(
    "pacers",
    metadata,
    # the next free moment of a rate shared by every worker (pipeline.queue.pacing)
    Column("name", String(100), primary_key=True),
    Column("next_at", Float, nullable=False),  # seconds since the epoch, the database's clock
)

locks = Table(
    "locks",
    metadata,
    # held while an action runs, so no two schedulers run the same action at once
    Column("name", String(200), primary_key=True),  # "post", "digest:weekly-en"
    Column("owner", String(300), nullable=False),
    Column("expires_at", DateTime, nullable=False),  # UTC; renewed while the holder runs
)


def width(column: Column[Any]) -> int:
    """The most characters a ``String(n)`` column stores: PostgreSQL refuses a longer
    value (failing the whole transaction), so values are checked against it first."""
    length = column.type.length if isinstance(column.type, String) else None
    if length is None:
        raise TypeError(f"column {column} has no width: it is not a String(n)")
    return length


# Each width read once: the store checks every article it writes against them (the
# Article model checks its own fields against pipeline.widths, which these columns use).
ARTICLE_COLUMN_WIDTHS: dict[str, int] = {
    column.name: width(column)
    for column in articles.c
    if isinstance(column.type, String) and column.type.length is not None
}

_Value = TypeVar("_Value")


def chunks(values: Sequence[_Value], size: int = 500) -> Iterator[Sequence[_Value]]:
    """``values`` in IN lists of at most ``size``: far under every driver's parameter
    limit (SQLite allows 32,766, older builds 999)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
