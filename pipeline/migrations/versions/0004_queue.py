"""Queue: scheduled fires, digest batches and shared pacing, for `pipeline worker`

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

With a `queue:` section, `serve` enqueues jobs and `pipeline worker` processes run them
(pipeline.queue). ``fires`` makes each scheduled fire happen once whichever scheduler
fires it; ``edition_batches`` records how an edition was fanned out (and its progress);
``pacers`` holds a message rate shared by every worker. Unused without a queue. The
queue's own tables (procrastinate's) are installed on PostgreSQL when a queue is
configured (pipeline.queue.schema), not by this revision.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fires",
        sa.Column("schedule", sa.String(100), primary_key=True),
        sa.Column("scheduled_for", sa.DateTime(), primary_key=True),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("fired_by", sa.String(300), nullable=False),
        sa.Column("fired_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "edition_batches",
        sa.Column("edition_id", sa.String(300), primary_key=True),
        sa.Column("number", sa.Integer(), primary_key=True),
        sa.Column("subscriber_ids", sa.Text(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("uncertain", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "pacers",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("next_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("restore the backup made before the upgrade instead")
