"""Subscribers in control: a pause, and where each one's consent came from

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

``paused_until`` holds back every digest until that moment (UTC) without leaving any:
the preference page's "pause for N weeks". ``consent_source`` and ``consent_at`` keep
how and when the address was given to us (a sign-up form, a Mailchimp export's
OPTIN_TIME, an operator's ``subscribers add``), which an import must not lose.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("paused_until", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("consent_source", sa.String(200), nullable=True))
        batch.add_column(sa.Column("consent_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("restore the backup made before the upgrade instead")
