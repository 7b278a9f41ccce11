"""procrastinate's tables and functions, in the state store's PostgreSQL database.

Installed when a store with a ``queue:`` section is opened and they are missing, under
the same advisory lock as the store's migrations take, so processes starting together
install them once. procrastinate's schema belongs to its release: the version installed
is kept in ``state_values``, and a store made by another release is refused (the
pipeline pins procrastinate to one minor release, so an upgrade of it is a new pipeline
release that migrates the queue's schema too).
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, insert, select, text

from pipeline.errors import StoreError
from pipeline.schema import state_values

SCHEMA_KEY = "queue:procrastinate-schema"
LOCK_KEY = 0x5049504551  # "PIPEQ": one advisory lock for installing the queue's schema


def installed_release() -> str:
    from importlib.metadata import version

    return version("procrastinate")


def libpq_url(url: str) -> str:
    """The state store's SQLAlchemy URL as psycopg takes it (``postgresql://…``)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def ensure_schema(engine: Engine) -> bool:
    """Install procrastinate's schema unless present; True if it was installed now."""
    try:
        import procrastinate.schema
    except ImportError:
        raise StoreError(
            "a `queue:` needs procrastinate, which is not installed; install the "
            "PostgreSQL extra: pip install 'newsroom-pipeline[postgres]'"
        ) from None
    release = installed_release()
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        found = _recorded(conn)
        if found is not None:
            if found.split(".")[:2] != release.split(".")[:2]:
                raise StoreError(
                    f"the queue's tables were made by procrastinate {found}, and this "
                    f"installation has {release}; install the pipeline release that "
                    "matches the store, or follow the release notes' queue migration"
                )
            return False
        # Straight to psycopg, with no parameters: the SQL's own % signs stay as written.
        with conn.connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
            cursor.execute(procrastinate.schema.SchemaManager.get_schema())
        conn.execute(insert(state_values).values(name=SCHEMA_KEY, value=release))
    return True


def _recorded(conn: Connection) -> str | None:
    return conn.scalar(select(state_values.c.value).where(state_values.c.name == SCHEMA_KEY))
