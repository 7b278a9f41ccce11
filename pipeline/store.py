"""The state store: articles and source cursors, in any database SQLAlchemy speaks.

SQLite (a file under ``var/``) is the default; PostgreSQL works with only a different
URL. Articles are kept whole as JSON (the Article model is the schema) beside the
columns the queries filter and sort on. Rows are never deleted: a removed or drafted
article is marked ``removed`` so that its permanent feed id (``guid``) survives if it
comes back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import (
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    SQLAlchemyError,
)

from pipeline import reading
from pipeline.clock import naive_utc, system_clock
from pipeline.errors import (
    StoreError,
    describe_database_error,
    describe_os_error,
    display_path,
)
from pipeline.migrations import Upgrade, prepare
from pipeline.model import Article, Scan
from pipeline.redact import shown_url
from pipeline.schema import (
    LIVE,
    articles,
    deliveries,
    editions,
    state_values,
)
from pipeline.storing import ApplyReport as ApplyReport
from pipeline.storing import Streamed, Writer, known, save_value
from pipeline.storing import permanent_id as permanent_id


class Store:
    """Articles and source cursors in one database; every write is a transaction (an
    ingest's are batches of articles, pipeline.storing)."""

    def __init__(self, url: str, site_url: str):
        self.url = url  # as configured, for messages (``store_fault``); may hold a password
        self.site_url = site_url
        self.engine: Engine = open_engine(url)
        # Set when opening upgraded an older SQLite store (the command says so).
        self.upgraded: Upgrade | None = None
        try:
            done = prepare(self.engine, store_location(url))
        except SQLAlchemyError as exc:
            # from None: the chained SQLAlchemy error would print the CREATE statements
            raise store_fault(exc, url) from None
        if done is not None and done.changed:
            self.upgraded = done

    def close(self) -> None:
        self.engine.dispose()

    # -- ingest ---------------------------------------------------------------------------

    def known(self, source: str, conn: Connection | None = None) -> dict[str, str]:
        """item key -> fingerprint of what was stored for ``source`` (live rows win)."""
        if conn is None:
            with self.engine.connect() as own:
                return self.known(source, own)
        return known(conn, source)

    def cursor(self, source: str) -> dict[str, str]:
        return self.value(f"source:{source}")

    def value(self, name: str) -> dict:
        """A small JSON document a component keeps between runs ({} if none)."""
        with self.engine.connect() as conn:
            raw = conn.scalar(select(state_values.c.value).where(state_values.c.name == name))
        return json.loads(raw) if raw else {}

    def value_or_create(self, name: str, make: Callable[[], dict]) -> dict:
        """The stored value, or ``make()`` stored now; two processes racing get the same."""
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(state_values).values(name=name, value=json.dumps(make())))
        except IntegrityError:
            pass  # someone stored it first: theirs wins
        return self.value(name)

    def save_value(self, name: str, value: dict, conn: Connection | None = None) -> None:
        if conn is None:
            with self.engine.begin() as own:
                self.save_value(name, value, own)
            return
        save_value(conn, name, value)

    def apply(
        self, source: str, scan: Scan | Streamed, now: dt.datetime | None = None
    ) -> ApplyReport:
        """Store one scan of ``source``: its items in batches (``pipeline.storing``), then
        what needs the whole scan (removals, cursor) once it is complete. A whole ``Scan``
        goes the same way, its ``changed`` list read as a stream."""
        if isinstance(scan, Scan):
            scan = Streamed(scan.changed, dataclasses.replace(scan, changed=[]))
        writer = Writer(self.engine, self.site_url, source, naive_utc(now or system_clock()))
        writer.write(scan.items)
        return writer.finish(scan.scan)

    # -- starting over ------------------------------------------------------------------

    def holds_history(self) -> bool:
        """Whether anything was ever stored: an article, a delivery or a digest edition.
        A store without any is new, or was lost (see ``pipeline state adopt``)."""
        with self.engine.connect() as conn:
            return any(
                conn.execute(select(table).limit(1)).first() is not None
                for table in (articles, deliveries, editions)
            )

    def live_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            query = select(articles.c.id).where(articles.c.status == LIVE).order_by(articles.c.id)
            return list(conn.scalars(query))

    def restore_guids(self, guids: dict[str, str]) -> int:
        """Give articles back the feed ids published feeds already show (article id →
        guid), so feed readers do not see every article again after a fresh start."""
        width = getattr(articles.c.guid.type, "length", None) or 0
        rows = [{"k_id": id_, "guid": guid} for id_, guid in guids.items() if len(guid) <= width]
        if not rows:
            return 0
        with self.engine.begin() as conn:
            conn.execute(update(articles).where(articles.c.id == bindparam("k_id")), rows)
        return len(rows)

    # -- reading --------------------------------------------------------------------------

    def latest(
        self,
        limit: int,
        *,
        language: str | None = None,
        section: str | None = None,
        tag: str | None = None,
    ) -> list[Article]:
        """The newest live articles, newest first, with guid and translations filled in."""
        with self.engine.connect() as conn:
            return reading.latest(conn, limit, language=language, section=section, tag=tag)

    def recent(self, since: dt.datetime) -> list[Article]:
        """Live articles published at or after ``since``, oldest first."""
        with self.engine.connect() as conn:
            return reading.recent(conn, since)

    def get(self, article_id: str) -> Article | None:
        with self.engine.connect() as conn:
            return reading.get(conn, article_id)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return (
                conn.scalar(
                    select(func.count()).select_from(articles).where(articles.c.status == LIVE)
                )
                or 0
            )


def store_location(url: str) -> str:
    """Where the state store is, as a person should see it: the SQLite file's path, or the
    server URL without password and options."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "(an unreadable URL)"
    if parsed.get_backend_name() == "sqlite":
        database = (parsed.database or "").removeprefix("file:")
        return display_path(Path(database)) if database not in ("", ":memory:") else "(in memory)"
    return parsed.set(query={}).render_as_string(hide_password=True)


def store_fault(exc: BaseException, url: str) -> StoreError:
    """A database failure as one line for people: what, where, what to do; no SQL."""
    return StoreError(describe_database_error(exc, store_location(url)))


def open_engine(url: str) -> Engine:
    """The engine of the store at ``url``, as configured; its tables are neither made nor
    checked (``Store`` does that; ``pipeline db`` works on the engine alone)."""
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            parsed = _sqlite_file(parsed)
        engine = create_engine(parsed)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StoreError(f"state: cannot use database URL {shown_url(url)}: {reason}") from None
    except OSError as exc:
        what = "cannot create the folder of the state store"
        raise StoreError(describe_os_error(exc, what)) from None
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        event.listen(engine, "connect", _sqlite_wal)
    return engine


def _sqlite_file(parsed: Any) -> Any:
    """Create a SQLite file's folder, unless opened read-only. ``?mode=ro&uri=true`` (a
    read-only store, e.g. a copy for reporting) needs a ``file:`` name, which a path
    resolved against the project folder has lost: put it back."""
    database, query = parsed.database, parsed.query
    uri = str(query.get("uri", "")).lower() in ("true", "1")
    if uri and not database.startswith("file:"):
        parsed = parsed.set(database=f"file:{database}")
    if str(query.get("mode", "")) != "ro":
        Path(database.removeprefix("file:")).parent.mkdir(parents=True, exist_ok=True)
    return parsed


def _sqlite_wal(connection: Any, record: Any) -> None:
    """Write-ahead logging: one fsync per commit instead of the rollback journal's
    several (the ledger commits twice per message sent), and readers (the web
    endpoints) never wait for a writer (the scheduler). ``synchronous`` stays FULL, so
    a committed claim survives a power cut: exactly-once depends on it."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()
