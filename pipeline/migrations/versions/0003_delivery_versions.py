"""Deliveries: the version of an article a post carries, so corrections can follow it

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

A sent post's row records the fingerprint of what it said (title, summary, URL): a later
change to the article is then a correction to make (pipeline.corrections). Nullable:
rows from before have no version and are never corrected, so an upgrade does not flood
every network with edits of old posts.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("version", sa.String(64), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("restore the backup made before the upgrade instead")
