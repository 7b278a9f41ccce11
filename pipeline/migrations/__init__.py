"""The state store's schema revisions (Alembic), and bringing a store up to date.

Every store records its revision in ``alembic_version``. Opening one (``prepare``):

- new (none of the pipeline's tables): made at the newest revision ("head") with
  ``metadata.create_all`` and recorded as head. tests/test_migrations.py checks that
  this equals what running every revision gives;
- at head: nothing to do (tables that have gone missing are made again, as before);
- older, or made before migrations existed (no ``alembic_version``: 37796e2 or 9731dde,
  told apart by their columns): a SQLite file is upgraded at once, after a copy of it
  is written beside it (``state.db.bak-<revision>-<UTC time>``); any other database is
  refused until an operator backs it up and runs ``pipeline db upgrade``;
- at a revision this version does not know (a newer version upgraded it): refused.

Upgrades run in one transaction under a lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL an
advisory lock per schema), so processes starting together wait for the first to finish
and then find the store current; a failed upgrade leaves the store as it was.

The revisions are in ``versions/``; ``env.py`` runs them on the connection given here
(no alembic.ini). Adding one: ``python -m pipeline.migrations revision "what changed"``.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, inspect, text

from pipeline.clock import Clock, system_clock
from pipeline.errors import StoreError, display_path
from pipeline.schema import metadata

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

# Alembic is imported only where a store is made or upgraded: every command opens the
# store, and importing it costs more than the check that a store is current.

HERE = Path(__file__).resolve().parent
VERSION_TABLE = "alembic_version"

CONTEXT_OPTIONS: dict[str, Any] = {
    "target_metadata": metadata,
    "render_as_batch": True,  # SQLite alters most things only by copying the table
    "compare_type": True,
    "compare_server_default": True,
}
"""How env.py configures Alembic, and how ``differences`` compares: the same both ways."""

LOCK_WAIT_MS = 120_000  # how long a process waits for another's upgrade (SQLite)


@cache
def config() -> Config:
    """Alembic's configuration, made here: the installed package carries everything."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return cfg


@cache
def scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(config())


@cache
def revisions() -> tuple[str, ...]:
    """Every revision, oldest first, from the file names in versions/ (``0002_….py``):
    they are numbered in one line, each revising the one before, which
    tests/test_migrations.py checks against Alembic's own reading of the files."""
    found = (p.name.split("_", 1)[0] for p in (HERE / "versions").glob("[0-9]*_*.py"))
    return tuple(sorted(found, key=int))


def head() -> str:
    """The newest revision this version of the pipeline knows."""
    return revisions()[-1]


def describe(revision: str) -> str:
    """The first line of a revision's docstring."""
    doc = scripts().get_revision(revision).doc or ""
    return doc.strip().splitlines()[0] if doc.strip() else revision


def pending(revision: str | None) -> list[str]:
    """The revisions an upgrade from ``revision`` applies, oldest first."""
    return [s.revision for s in reversed(list(scripts().iterate_revisions(head(), revision)))]


@dataclass(frozen=True)
class Status:
    """Where a store stands. ``revision``: the one recorded in ``alembic_version``, or for
    a store made before migrations existed the one its columns show (``recorded`` is
    then False); None for a store without any of the pipeline's tables."""

    revision: str | None
    recorded: bool
    missing: frozenset[str]  # tables of the current schema that are not there

    @property
    def empty(self) -> bool:
        return self.revision is None

    @property
    def known(self) -> bool:
        return self.revision is None or self.revision in revisions()

    @property
    def current(self) -> bool:
        return self.revision == head()

    @property
    def behind(self) -> bool:
        return self.known and not self.empty and not self.current


def status(conn: Connection) -> Status:
    inspector = inspect(conn)
    tables = set(inspector.get_table_names())
    recorded = None
    if VERSION_TABLE in tables:
        recorded = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    missing = frozenset(set(metadata.tables) - tables)
    if recorded is not None:
        return Status(recorded, True, missing)
    if not tables & set(metadata.tables):
        return Status(None, False, missing)
    return Status(_unversioned(inspector, tables), False, missing)


def _unversioned(inspector: Any, tables: set[str]) -> str:
    """The revision of a store made before migrations existed. Only two schemas were ever
    released that way: 37796e2's (the baseline, 0001) and 9731dde's, which added the
    deliveries retry columns (0002)."""
    if "deliveries" not in tables:
        return "0001"
    columns = {c["name"] for c in inspector.get_columns("deliveries")}
    return "0002" if "next_attempt_at" in columns else "0001"


@dataclass(frozen=True)
class Upgrade:
    """What ``upgrade`` did. ``before`` is None for a store made new."""

    where: str
    before: str | None
    after: str
    backup: Path | None = None

    @property
    def changed(self) -> bool:
        """Whether an existing store moved to a newer revision."""
        return self.before is not None and self.before != self.after

    def __str__(self) -> str:
        if self.before is None:
            return f"made the state store {self.where} at revision {self.after}"
        if not self.changed:
            return f"the state store {self.where} is at revision {self.after}, the newest already"
        text = f"upgraded the state store {self.where} from revision {self.before} to {self.after}"
        if self.backup is not None:
            text += f"; a copy from before is {display_path(self.backup)}"
        return text


def prepare(engine: Engine, where: str, clock: Clock = system_clock) -> Upgrade | None:
    """Make the store usable by this version, or refuse (StoreError); see the module
    docstring. Returns what was done, or None when the store was current already."""
    with engine.connect() as conn:
        found = status(conn)
    if found.current and found.recorded and not found.missing:
        return None
    _refuse_unknown(found, where)
    if found.behind and engine.dialect.name != "sqlite":
        raise StoreError(
            f"the state store {where} is at revision {found.revision}; this version of the "
            f"pipeline needs {head()}. Nothing was changed. Back it up (pg_dump), then "
            "run `pipeline db upgrade`"
        )
    if found.behind and _read_only(engine):
        raise StoreError(
            f"the state store {where} is at revision {found.revision}; this version of the "
            f"pipeline needs {head()}, and it is opened read-only. Run `pipeline db upgrade` "
            "on the store it is a copy of, then copy it again"
        )
    return upgrade(engine, where, clock)


def upgrade(engine: Engine, where: str, clock: Clock = system_clock) -> Upgrade:
    """Bring the store to head: make it if new, else apply the revisions it lacks (a SQLite
    file is copied beside itself first). One transaction, under the migration lock."""
    from alembic import command

    with _locked(engine) as conn:
        found = status(conn)  # again: another process may have done it while we waited
        _refuse_unknown(found, where)
        if found.empty:
            metadata.create_all(conn)
            run(conn, command.stamp, "head")
            return Upgrade(where, None, head())
        backup = _backup(engine, found.revision or "", clock) if found.behind else None
        if not found.recorded:  # made before migrations: record what its columns show
            run(conn, command.stamp, found.revision)
        if found.behind:
            run(conn, command.upgrade, "head")
        if found.missing:
            metadata.create_all(conn)  # at head: the tables a lost store no longer has
        return Upgrade(where, found.revision, head(), backup)


def run(conn: Connection, alembic_command: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """An ``alembic.command`` on ``conn``, inside the caller's transaction (env.py)."""
    cfg = config()
    cfg.attributes["connection"] = conn
    try:
        return alembic_command(cfg, *args, **kwargs)
    finally:
        cfg.attributes.pop("connection", None)


def differences(conn: Connection) -> list[Any]:
    """How the database on ``conn`` differs from pipeline/schema.py (empty when they agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(conn, opts=CONTEXT_OPTIONS)
    return compare_metadata(context, metadata)


def _refuse_unknown(found: Status, where: str) -> None:
    if not found.known:
        raise StoreError(
            f"the state store {where} is at revision {found.revision}, which this version of "
            f"the pipeline does not know (its newest is {head()}): a newer version upgraded "
            "it. Run that version, or restore the copy made before the upgrade"
        )


def _read_only(engine: Engine) -> bool:
    return str(engine.url.query.get("mode", "")) == "ro"


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the store's migration lock until it
    commits (or rolls back, on any error: DDL is transactional in both databases)."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                # per schema: stores in other schemas of the database do not wait
                conn.execute(
                    text(
                        "SELECT pg_advisory_xact_lock("
                        "hashtext('pipeline.migrations:' || current_schema()))"
                    )
                )
            yield conn
        return
    # pysqlite would run DDL outside any transaction and begin only at the first INSERT;
    # with the driver in autocommit, BEGIN IMMEDIATE takes the write lock up front and
    # holds everything in one transaction.
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        waited = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {LOCK_WAIT_MS}")
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")
        finally:
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(waited or 0)}")


def _backup(engine: Engine, revision: str, clock: Clock) -> Path | None:
    """Copy a SQLite file beside itself, as it is before the upgrade (the caller holds
    the write lock, so the copy is complete and consistent). None for other stores."""
    database = engine.url.database or ""
    if engine.dialect.name != "sqlite" or database in ("", ":memory:"):
        return None
    path = Path(database.removeprefix("file:"))
    name = f"{path.name}.bak-{revision}-{clock().astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"
    target, n = path.with_name(name), 1
    while target.exists():
        target, n = path.with_name(f"{name}-{n}"), n + 1
    try:
        source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        with closing(source), closing(sqlite3.connect(target)) as copy:
            source.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    except (sqlite3.Error, OSError) as exc:
        target.unlink(missing_ok=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StoreError(
            f"cannot write {display_path(target)}, the copy of the state store made before "
            f"upgrading it: {reason}. Nothing was changed — free some space or make "
            f"{display_path(path.parent)} writable, then run again"
        ) from None
    return target
