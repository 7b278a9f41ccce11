"""Indexes that keep feed, posting and history queries independent of the store's size

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

A language or section feed reads its newest articles off (status, language|section,
published) instead of every live article; a channel's due and interrupted rows are
found by (stream, state), its newest changes by (stream, updated_at); ``pipeline
history`` reads runs newest first off (scheduled_for, id). Only indexes: no row changes,
so the downgrade drops them again.
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_articles_live_language", "articles", ["status", "language", "published"]),
    ("ix_articles_live_section", "articles", ["status", "section", "published"]),
    ("ix_deliveries_stream_state", "deliveries", ["stream", "state"]),
    ("ix_deliveries_stream_updated", "deliveries", ["stream", "updated_at"]),
    ("ix_runs_scheduled", "runs", ["scheduled_for", "id"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _columns in INDEXES:
        op.drop_index(name, table_name=table)
