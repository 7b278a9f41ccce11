"""The state store: articles and source cursors, in any database SQLAlchemy speaks.

SQLite (a file under ``var/``) is the default; PostgreSQL works with only a different
URL. Articles are kept whole as JSON (the Article model is the schema) beside the
columns the queries filter and sort on. Rows are never deleted: a removed or drafted
article is marked ``removed`` so that its permanent feed id (``guid``) survives if it
comes back.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from sqlalchemy import (
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    SQLAlchemyError,
)

from pipeline import reading
from pipeline.clock import naive_utc, system_clock
from pipeline.errors import (
    Problem,
    StoreError,
    describe_database_error,
    describe_os_error,
    display_path,
)
from pipeline.migrations import Upgrade, prepare
from pipeline.model import Article, Scan
from pipeline.reading import chunks as _chunks
from pipeline.redact import shown_url
from pipeline.schema import (
    LIVE,
    REMOVED,
    article_tags,
    articles,
    deliveries,
    editions,
    state_values,
)
from pipeline.urls import WEB_URL

_TAG_SAFE = "/:-._~!$&'()*+,;=@"  # RFC 4151 pchar, unescaped
_URI_SCHEMES = ("tag:", "urn:")  # ids that are URIs already, besides web addresses


@dataclass
class ApplyReport:
    """What storing one scan changed."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    rejected: list[Problem] = field(default_factory=list)


class _Existing(NamedTuple):
    source: str
    item_key: str
    status: str
    content_hash: str
    data: str


def _row(
    source: str, key: str, fingerprint: str, content_hash: str, article: Article, now: dt.datetime
) -> dict[str, object]:
    return {
        "id": article.id,
        "source": source,
        "item_key": key,
        "fingerprint": fingerprint,
        "content_hash": content_hash,
        "status": LIVE,
        "published": naive_utc(article.published),
        "language": article.language.lower(),
        "section": article.section,
        "translation_of": article.translation_of,
        "data": article.model_dump_json(exclude={"guid", "translations"}),
        "changed_at": now,
    }


def _duplicate(article: Article, holder: _Existing) -> Problem:
    first = Article.model_validate_json(holder.data).origin if holder.data else holder.item_key
    return Problem(
        article.origin,
        None,
        None,
        f"duplicate id {article.id!r}: {first} already uses it",
        "give one of them a different `id:` (or remove the `id:` line to use the default)",
    )


def permanent_id(article: Article, site_url: str, first_seen: dt.datetime) -> str:
    """The feed id an article keeps for ever (RFC 4151 tag URI unless it has a URI id)."""
    if article.id.lower().startswith(_URI_SCHEMES) or WEB_URL.match(article.id):
        return article.id
    host = urlsplit(site_url).hostname or "localhost"
    specific = quote(article.id, safe=_TAG_SAFE)
    return f"tag:{host},{first_seen:%Y-%m-%d}:{specific}"


class Store:
    """Articles and source cursors in one database; every write is one transaction."""

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
        query = select(articles.c.item_key, articles.c.fingerprint, articles.c.status).where(
            articles.c.source == source
        )
        found: dict[str, str] = {}
        for key, fingerprint, status in conn.execute(query):
            if key not in found or status == LIVE:
                found[key] = fingerprint
        return found

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
        conn.execute(delete(state_values).where(state_values.c.name == name))
        conn.execute(insert(state_values).values(name=name, value=json.dumps(value)))

    def apply(self, source: str, scan: Scan, now: dt.datetime | None = None) -> ApplyReport:
        """Store one scan of ``source`` atomically: all of it or (on error) none of it.

        Reads what exists in a few set-based queries and writes with executemany, so a
        cold ingest of thousands of articles is not thousands of round trips.
        """
        now = naive_utc(now or system_clock())
        report = ApplyReport(rejected=list(scan.rejected))
        with self.engine.begin() as conn:
            live_by_key = {
                row.item_key: row.id
                for row in conn.execute(
                    select(articles.c.id, articles.c.item_key).where(
                        articles.c.source == source, articles.c.status == LIVE
                    )
                )
            }
            existing = self._rows_by_id(conn, [item.article.id for item in scan.changed])
            inserts, updates, refreshed, retired = [], [], [], []
            for item in scan.changed:
                article, old = item.article, existing.get(item.article.id)
                content_hash = article.content_hash()
                moved = old is not None and (old.source, old.item_key) != (source, item.key)
                if old is not None and old.status == LIVE and moved:
                    report.rejected.append(_duplicate(article, old))
                    continue
                if old is not None and old.status == LIVE and old.content_hash == content_hash:
                    refreshed.append({"k_id": article.id, "fingerprint": item.fingerprint})
                    report.unchanged += 1
                    continue
                values = _row(source, item.key, item.fingerprint, content_hash, article, now)
                guid = permanent_id(article, self.site_url, now) if old is None else None
                problem = _too_wide({**values, "guid": guid}, article.tags)
                if problem is not None:  # PostgreSQL would refuse it, failing the whole scan
                    report.rejected.append(Problem(article.origin, None, None, *problem))
                    continue
                if old is None:
                    inserts.append({**values, "guid": guid, "first_seen": now})
                    report.added.append(article.id)
                else:
                    updates.append({**values, "k_id": article.id})
                    (report.updated if old.status == LIVE else report.added).append(article.id)
                # a placeholder row keeps the id taken for the rest of this scan
                existing[article.id] = _Existing(source, item.key, LIVE, content_hash, "")
                previous = live_by_key.get(item.key)
                if previous is not None and previous != article.id:  # its id was edited
                    retired.append(previous)
            if inserts:
                conn.execute(insert(articles), inserts)
            if updates:
                conn.execute(
                    update(articles).where(articles.c.id == bindparam("k_id")),
                    [{k: v for k, v in row.items() if k != "id"} for row in updates],
                )
            written = {*report.added, *report.updated}
            # One article per id: a scan that listed an id twice must not write its tags twice.
            tagged = {i.article.id: i.article for i in scan.changed if i.article.id in written}
            self._set_tags(conn, list(tagged.values()))
            stored = self.known(source, conn)
            refreshed += [
                {"k_source": source, "k_key": key, "fingerprint": fingerprint}
                for key, fingerprint in scan.unchanged.items()
                if stored.get(key) != fingerprint
            ]
            self._refresh_fingerprints(conn, refreshed)
            report.unchanged += len(scan.unchanged)
            if scan.complete:
                seen = {i.key for i in scan.changed} | set(scan.unchanged) | scan.held
                retired += [id_ for key, id_ in live_by_key.items() if key not in seen]
            retired = [id_ for id_ in dict.fromkeys(retired) if id_ not in written]
            self._remove(conn, retired, now)
            report.removed.extend(retired)
            if scan.cursor is not None:
                self.save_value(f"source:{source}", scan.cursor, conn)
        return report

    @staticmethod
    def _rows_by_id(conn: Connection, ids: list[str]) -> dict[str, _Existing]:
        found: dict[str, _Existing] = {}
        columns = (
            articles.c.id,
            articles.c.source,
            articles.c.item_key,
            articles.c.status,
            articles.c.content_hash,
            articles.c.data,
        )
        for chunk in _chunks(sorted(set(ids)), 500):
            for row in conn.execute(select(*columns).where(articles.c.id.in_(chunk))):
                found[row.id] = _Existing(*row[1:])
        return found

    @staticmethod
    def _refresh_fingerprints(conn: Connection, rows: list[dict]) -> None:
        by_id = [r for r in rows if "k_id" in r]
        by_key = [r for r in rows if "k_key" in r]
        if by_id:
            conn.execute(update(articles).where(articles.c.id == bindparam("k_id")), by_id)
        if by_key:
            conn.execute(
                update(articles).where(
                    articles.c.source == bindparam("k_source"),
                    articles.c.item_key == bindparam("k_key"),
                ),
                by_key,
            )

    @staticmethod
    def _set_tags(conn: Connection, changed: list[Article]) -> None:
        for chunk in _chunks([a.id for a in changed], 500):
            conn.execute(delete(article_tags).where(article_tags.c.article_id.in_(chunk)))
        rows = [
            {"article_id": a.id, "tag_key": key}
            for a in changed
            for key in sorted({tag.lower() for tag in a.tags})
        ]
        if rows:
            conn.execute(insert(article_tags), rows)

    @staticmethod
    def _remove(conn: Connection, ids: list[str], now: dt.datetime) -> None:
        for chunk in _chunks(ids, 500):
            conn.execute(
                update(articles)
                .where(articles.c.id.in_(chunk))
                .values(status=REMOVED, changed_at=now)
            )

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


_HINTS = {  # the model checks the Article's own fields; these are made from them
    "item_key": "give the file a shorter path",
    "guid": "give it a shorter `id:` (its feed id spells the id out with %-escapes)",
}


def _too_wide(values: dict[str, Any], tags: Iterable[str]) -> tuple[str, str] | None:
    """(what, hint) for the first value wider than its column, or None."""
    widths = [(articles.c.get(name), value) for name, value in values.items()]
    widths += [(article_tags.c.tag_key, tag.lower()) for tag in tags]
    for column, value in widths:
        if column is None:  # not a column (e.g. the article's tags)
            continue
        limit = getattr(column.type, "length", None)
        if limit and isinstance(value, str) and len(value) > limit:
            name = "a tag" if column.table is article_tags else f"its {column.name}"
            what = f"{name} is {len(value):,} characters long; the state store keeps {limit:,}"
            return what, _HINTS.get(column.name, "shorten it")
    return None


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


def sqlite_file_missing(url: str | URL) -> bool:
    """A SQLite store whose file does not exist yet (connecting would make an empty one);
    read from the URL alone, so asking creates nothing. False for any other database."""
    parsed = make_url(url) if isinstance(url, str) else url
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return False
    return not Path(database.removeprefix("file:")).exists()


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
