"""Deliveries: when a pending row is next tried, and since when it has been failing

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04

Commit 9731dde: pending items are retried across runs with growing delays and given up
after 3 days. Both columns nullable: rows from before read as "due now, no failures yet".
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("failing_since", sa.DateTime(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("restore the backup made before the upgrade instead")
