"""Alembic's entry point, run by every ``alembic.command`` call of pipeline.migrations.

There is no alembic.ini and no URL here: the caller passes an open connection (already
inside the transaction it will commit) as ``config.attributes["connection"]``, so the
migrations run in the caller's transaction and under its lock.
"""

from alembic import context

from pipeline.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError(
        "run migrations through `pipeline db upgrade` or `python -m pipeline.migrations`, "
        "not the alembic command line"
    )
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,  # SQLite alters most things only by copying the table
    compare_type=True,
    compare_server_default=True,
)
with context.begin_transaction():
    context.run_migrations()
