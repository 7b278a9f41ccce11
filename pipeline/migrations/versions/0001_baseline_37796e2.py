"""Baseline: the state store as commit 37796e2 made it

Revision ID: 0001
Revises:
Create Date: 2026-12-04

What installations ran before migrations existed. A store with these tables but no
``alembic_version`` is recorded as this revision when it is first opened (see
``pipeline.migrations.status``) and upgraded from here.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "articles",
        sa.Column("id", sa.String(length=512), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("item_key", sa.String(length=1024), nullable=False),
        sa.Column("fingerprint", sa.String(length=200), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("guid", sa.String(length=1024), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("published", sa.DateTime(), nullable=False),
        sa.Column("language", sa.String(length=35), nullable=False),
        sa.Column("section", sa.String(length=100), nullable=False),
        sa.Column("translation_of", sa.String(length=512), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_articles_source_key", "articles", ["source", "item_key"])
    op.create_index("ix_articles_live_published", "articles", ["status", "published"])
    op.create_index("ix_articles_translation_of", "articles", ["translation_of"])

    op.create_table(
        "article_tags",
        sa.Column("article_id", sa.String(length=512), nullable=False),
        sa.Column("tag_key", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"]),
        sa.PrimaryKeyConstraint("article_id", "tag_key"),
    )
    op.create_index("ix_article_tags_tag_key", "article_tags", ["tag_key"])

    op.create_table(
        "deliveries",
        sa.Column("stream", sa.String(length=300), nullable=False),
        sa.Column("item", sa.String(length=512), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=True),
        sa.Column("owner", sa.String(length=300), nullable=True),
        sa.Column("remote_id", sa.String(length=512), nullable=True),
        sa.Column("remote_url", sa.String(length=2048), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("stream", "item"),
    )
    op.create_index("ix_deliveries_state", "deliveries", ["state"])
    op.create_index("ix_deliveries_updated", "deliveries", ["updated_at"])

    op.create_table(
        "state_values",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )

    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("language", sa.String(length=35), nullable=False),
        sa.Column("topics", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("status_detail", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_subscribers_status", "subscribers", ["status"])

    op.create_table(
        "list_unsubscribes",
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("list_name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("subscriber_id", "list_name"),
    )

    op.create_table(
        "editions",
        sa.Column("id", sa.String(length=300), nullable=False),
        sa.Column("digest", sa.String(length=100), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("articles", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_editions_digest", "editions", ["digest", "scheduled_for"])

    op.create_table(
        "edition_articles",
        sa.Column("digest", sa.String(length=100), nullable=False),
        sa.Column("article_id", sa.String(length=512), nullable=False),
        sa.Column("edition_id", sa.String(length=300), nullable=False),
        sa.Column("carried", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("digest", "article_id"),
    )

    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("schedule", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=300), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_runs_schedule", "runs", ["schedule", "scheduled_for"])

    op.create_table(
        "locks",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=300), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    raise NotImplementedError("restore the backup made before the upgrade instead")
