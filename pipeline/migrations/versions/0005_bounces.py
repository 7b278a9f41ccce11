"""Bounces and complaints: suppressed addresses and the reports received

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

``suppressions`` holds every address never to be mailed again (a permanent bounce, a
complaint), whether or not it is a subscriber; ``mail_feedback`` every report received
about an address, for history and for counting temporary failures (pipeline.suppression).
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"  # "0005b" as briefed breaks this branch: see the commit message
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suppressions",
        sa.Column("address", sa.String(320), primary_key=True),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "mail_feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("message_id", sa.String(300), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_mail_feedback_address", "mail_feedback", ["address", "received_at"])


def downgrade() -> None:
    raise NotImplementedError("restore the backup made before the upgrade instead")
