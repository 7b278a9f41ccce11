"""The store's write path: a source's items written as they come, in bounded batches.

A source yields its items one at a time (``pipeline.sources.StreamingSource``) and they
are written here 500 to a transaction, so the memory an ingest needs does not grow with
the archive: only keys, fingerprints and ids are kept for the whole scan. What can only
be decided once the whole source was read is done last, in a transaction of its own:
removing the articles the source no longer lists, refreshing the fingerprints of the
unchanged ones, and saving the source's cursor. A scan that stops half-way (a crash, a
kill, a source failing) therefore removes nothing and keeps the old cursor; the batches
it committed are known next time by their fingerprints, so a re-run neither reads nor
stores them again, and nothing is stored twice.

A batch the database refuses is written again item by item, so the one bad item is
rejected with its file or post and the rest of the batch lands.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from pydantic import TypeAdapter
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from pipeline.clock import naive_utc
from pipeline.errors import Problem
from pipeline.model import Article, Item, Scan
from pipeline.schema import (
    ARTICLE_COLUMN_WIDTHS,
    LIVE,
    REMOVED,
    article_tags,
    articles,
    chunks,
    state_values,
)
from pipeline.urls import WEB_URL
from pipeline.widths import TAG_WIDTH

BATCH = 500  # items per transaction: bounded memory, and few enough commits to be cheap
_TAG_SAFE = "/:-._~!$&'()*+,;=@"  # RFC 4151 pchar, unescaped
_URI_SCHEMES = ("tag:", "urn:")  # ids that are URIs already, besides web addresses
_TEXT = TypeAdapter(str)


@dataclass
class ApplyReport:
    """What storing one scan changed."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    rejected: list[Problem] = field(default_factory=list)


@dataclass
class Streamed:
    """A scan in progress: ``items`` yields the new and changed items one at a time;
    ``scan`` (its ``changed`` left empty) is complete only once ``items`` is exhausted."""

    items: Iterable[Item]
    scan: Scan


class _Existing(NamedTuple):
    source: str
    item_key: str
    status: str
    content_hash: str
    data: str


def permanent_id(article: Article, site_url: str, first_seen: dt.datetime) -> str:
    """The feed id an article keeps for ever (RFC 4151 tag URI unless it has a URI id)."""
    if article.id.lower().startswith(_URI_SCHEMES) or WEB_URL.match(article.id):
        return article.id
    host = _host(site_url)
    specific = quote(article.id, safe=_TAG_SAFE)
    return f"tag:{host},{first_seen:%Y-%m-%d}:{specific}"


@functools.lru_cache(maxsize=8)
def _host(site_url: str) -> str:
    """The site's host name, parsed once per site rather than once per article."""
    return urlsplit(site_url).hostname or "localhost"


def stored_json(article: Article) -> tuple[str, str]:
    """(the JSON the store keeps, ``article.content_hash()``) from one serialisation.

    The hash covers the same JSON without ``origin``: its field is cut out of the stored
    text rather than the article serialised a second time. A JSON string cannot hold an
    unescaped ``"``, so the first ``,"origin":`` is the field itself.
    """
    data = article.model_dump_json(exclude={"guid", "translations"})
    field_ = ',"origin":' + _TEXT.dump_json(article.origin).decode()
    visible = data.replace(field_, "", 1)
    return data, hashlib.sha256(visible.encode()).hexdigest()


class Writer:
    """Writes one source's items in batches; ``finish`` once the scan is complete."""

    def __init__(self, engine: Engine, site_url: str, source: str, now: dt.datetime):
        self.engine, self.site_url, self.source, self.now = engine, site_url, source, now
        self.report = ApplyReport()
        self.seen: set[str] = set()  # item keys written or refused by the database
        self.written: set[str] = set()  # article ids written in this scan
        with engine.connect() as conn:
            query = select(articles.c.id, articles.c.item_key).where(
                articles.c.source == source, articles.c.status == LIVE
            )
            self.live_by_key: dict[str, str] = {key: id_ for id_, key in conn.execute(query)}

    def write(self, items: Iterable[Item], size: int = BATCH) -> None:
        """Write every item, ``size`` to a transaction."""
        iterator = iter(items)
        while batch := list(islice(iterator, size)):
            self.seen.update(item.key for item in batch)
            rows = self._prepared(batch)
            try:
                with self.engine.begin() as conn:
                    self._write_batch(conn, rows)
            except (OperationalError, InterfaceError):
                raise  # the database is unreachable or full: not one item's fault
            except SQLAlchemyError:
                for row in rows:  # find the one the database refuses; the rest go in
                    self._write_alone(row)

    def finish(self, scan: Scan) -> ApplyReport:
        """Apply what needs the whole scan: removals, unchanged fingerprints, cursor."""
        report = self.report
        report.rejected[:0] = scan.rejected
        with self.engine.begin() as conn:
            stored = known(conn, self.source)
            refreshed = [
                {"k_source": self.source, "k_key": key, "fingerprint": fingerprint}
                for key, fingerprint in scan.unchanged.items()
                if stored.get(key) != fingerprint
            ]
            if refreshed:
                conn.execute(
                    update(articles).where(
                        articles.c.source == bindparam("k_source"),
                        articles.c.item_key == bindparam("k_key"),
                    ),
                    refreshed,
                )
            report.unchanged += len(scan.unchanged)
            retired: list[str] = []
            if scan.complete:
                seen = self.seen | set(scan.unchanged) | scan.held
                retired = [id_ for key, id_ in self.live_by_key.items() if key not in seen]
            retired = [id_ for id_ in dict.fromkeys(retired) if id_ not in self.written]
            _remove(conn, retired, self.now)
            report.removed.extend(retired)
            if scan.cursor is not None:
                save_value(conn, f"source:{self.source}", scan.cursor)
        return report

    # -- one batch ------------------------------------------------------------------------

    def _prepared(self, batch: list[Item]) -> list[tuple[Item, str, str]]:
        """(item, data, content hash) of each item that can be serialised at all."""
        rows = []
        for item in batch:
            try:
                rows.append((item, *stored_json(item.article)))
            except Exception as exc:  # e.g. a value pydantic cannot write as JSON
                self.report.rejected.append(_refused(item, _reason(exc)))
        return rows

    def _write_alone(self, row: tuple[Item, str, str]) -> None:
        item = row[0]
        try:
            with self.engine.begin() as conn:
                self._write_batch(conn, [row])
        except (OperationalError, InterfaceError):
            raise
        except SQLAlchemyError as exc:
            self.report.rejected.append(_refused(item, _reason(exc)))

    def _write_batch(self, conn: Connection, rows: list[tuple[Item, str, str]]) -> None:
        """Write one batch in ``conn``'s transaction; the report changes only if it commits."""
        source, now = self.source, self.now
        existing = _rows_by_id(conn, [item.article.id for item, _, _ in rows])
        inserts, updates, refreshed, retired = [], [], [], []
        added: list[str] = []
        updated: list[str] = []
        rejected: list[Problem] = []
        tagged: dict[str, Article] = {}
        unchanged = 0
        for item, data, content_hash in rows:
            article, old = item.article, existing.get(item.article.id)
            moved = old is not None and (old.source, old.item_key) != (source, item.key)
            if old is not None and old.status == LIVE and moved:
                rejected.append(_duplicate(article, old))
                continue
            if old is not None and old.status == LIVE and old.content_hash == content_hash:
                refreshed.append({"k_id": article.id, "fingerprint": item.fingerprint})
                unchanged += 1
                continue
            values = _row(source, item, data, content_hash, now)
            guid = permanent_id(article, self.site_url, now) if old is None else None
            problem = _too_wide({**values, "guid": guid}, article.tags)
            if problem is not None:  # PostgreSQL would refuse it, failing the whole batch
                rejected.append(Problem(article.origin, None, None, *problem))
                continue
            if old is None:
                inserts.append({**values, "guid": guid, "first_seen": now})
                added.append(article.id)
            else:
                updates.append({**values, "k_id": article.id})
                (updated if old.status == LIVE else added).append(article.id)
            tagged[article.id] = article
            # a placeholder row keeps the id taken for the rest of this batch
            existing[article.id] = _Existing(source, item.key, LIVE, content_hash, "")
            previous = self.live_by_key.get(item.key)
            if previous is not None and previous != article.id:  # its id was edited
                retired.append(previous)
        if inserts:
            conn.execute(insert(articles), inserts)
        if updates:
            conn.execute(
                update(articles).where(articles.c.id == bindparam("k_id")),
                [{k: v for k, v in row.items() if k != "id"} for row in updates],
            )
        _set_tags(conn, list(tagged.values()))
        if refreshed:
            conn.execute(update(articles).where(articles.c.id == bindparam("k_id")), refreshed)
        # An edited id is retired in the same transaction that writes the new one, so a
        # reader never sees both, nor neither.
        written = {*added, *updated}
        retiring = [id_ for id_ in dict.fromkeys(retired) if id_ not in written | self.written]
        _remove(conn, retiring, now)
        # Counted only now: a batch that fails is written again item by item.
        self.written |= written
        self.report.removed += retiring
        self.report.added += added
        self.report.updated += updated
        self.report.rejected += rejected
        self.report.unchanged += unchanged


def known(conn: Connection, source: str) -> dict[str, str]:
    """item key -> fingerprint of what was stored for ``source`` (live rows win)."""
    query = select(articles.c.item_key, articles.c.fingerprint, articles.c.status).where(
        articles.c.source == source
    )
    found: dict[str, str] = {}
    for key, fingerprint, status in conn.execute(query):
        if key not in found or status == LIVE:
            found[key] = fingerprint
    return found


def save_value(conn: Connection, name: str, value: dict) -> None:
    conn.execute(delete(state_values).where(state_values.c.name == name))
    conn.execute(insert(state_values).values(name=name, value=json.dumps(value)))


def _row(
    source: str, item: Item, data: str, content_hash: str, now: dt.datetime
) -> dict[str, object]:
    article = item.article
    return {
        "id": article.id,
        "source": source,
        "item_key": item.key,
        "fingerprint": item.fingerprint,
        "content_hash": content_hash,
        "status": LIVE,
        "published": naive_utc(article.published),
        "language": article.language.lower(),
        "section": article.section,
        "translation_of": article.translation_of,
        "data": data,
        "changed_at": now,
    }


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
    for chunk in chunks(sorted(set(ids)), 500):
        for row in conn.execute(select(*columns).where(articles.c.id.in_(chunk))):
            found[row.id] = _Existing(*row[1:])
    return found


def _set_tags(conn: Connection, changed: list[Article]) -> None:
    for chunk in chunks([a.id for a in changed], 500):
        conn.execute(delete(article_tags).where(article_tags.c.article_id.in_(chunk)))
    rows = [
        {"article_id": a.id, "tag_key": key}
        for a in changed
        for key in sorted({tag.lower() for tag in a.tags})
    ]
    if rows:
        conn.execute(insert(article_tags), rows)


def _remove(conn: Connection, ids: list[str], now: dt.datetime) -> None:
    for chunk in chunks(ids, 500):
        conn.execute(
            update(articles).where(articles.c.id.in_(chunk)).values(status=REMOVED, changed_at=now)
        )


def _duplicate(article: Article, holder: _Existing) -> Problem:
    first = Article.model_validate_json(holder.data).origin if holder.data else holder.item_key
    return Problem(
        article.origin,
        None,
        None,
        f"duplicate id {article.id!r}: {first} already uses it",
        "give one of them a different `id:` (or remove the `id:` line to use the default)",
    )


def _reason(exc: BaseException) -> str:
    """The database's refusal in one line (its first; the rest is SQL and parameters)."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _refused(item: Item, reason: str) -> Problem:
    return Problem(
        item.article.origin[:1000],
        None,
        None,
        f"cannot be stored: {reason[:300]}",
        "the other articles were stored",
    )


_HINTS = {  # the model checks the Article's own fields; these are made from them
    "item_key": "give the file a shorter path",
    "guid": "give it a shorter `id:` (its feed id spells the id out with %-escapes)",
}


def _too_wide(values: dict[str, Any], tags: Iterable[str]) -> tuple[str, str] | None:
    """(what, hint) for the first value wider than its column, or None."""
    for name, value in values.items():
        limit = ARTICLE_COLUMN_WIDTHS.get(name)  # None: not a column (e.g. the article's tags)
        if limit and isinstance(value, str) and len(value) > limit:
            what = f"its {name} is {len(value):,} characters long; the state store keeps {limit:,}"
            return what, _HINTS.get(name, "shorten it")
    for key in (tag.lower() for tag in tags):  # lower() may lengthen: İ is i and a dot
        if len(key) > TAG_WIDTH:
            what = f"a tag is {len(key):,} characters long; the state store keeps {TAG_WIDTH:,}"
            return what, "shorten it"
    return None
