"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Written by `python -m pipeline.migrations revision`; read it through before committing:
autogenerate cannot see renames (it writes a drop and an add) and needs a value for a
new NOT NULL column on existing rows (add it nullable, fill it, then make it NOT NULL).
"""

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    # Going back is restoring the backup taken before the upgrade (see the README).
    raise NotImplementedError("restore the backup made before the upgrade instead")
