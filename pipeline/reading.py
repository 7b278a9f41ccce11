"""The store's read queries: the articles feeds, digests and posting ask for.

Each is served by an index, so its cost follows what it returns, not how many articles
the store holds (tests/test_query_plans.py checks the plans on SQLite and PostgreSQL at
100,000 articles). Articles come back whole, with their guid and translations filled in.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import exists, select
from sqlalchemy.engine import Connection

from pipeline.clock import naive_utc
from pipeline.model import Article, Translation
from pipeline.schema import LIVE, article_tags, articles, chunks


def latest(
    conn: Connection,
    limit: int,
    *,
    language: str | None = None,
    section: str | None = None,
    tag: str | None = None,
) -> list[Article]:
    """The newest live articles, newest first."""
    query = select(articles.c.guid, articles.c.data).where(articles.c.status == LIVE)
    if language:
        query = query.where(articles.c.language == language.lower())
    if section:
        query = query.where(articles.c.section == section)
    if tag:
        few = _rare(conn, tag.lower())
        if few is not None:
            newest = _newest(conn, few, limit, language, section)
            return with_translations(conn, _by_id(conn, newest))
        # EXISTS, not IN (subquery): read in published order, each article's tag row is
        # one primary-key probe, and a common tag fills ``limit`` soon.
        query = query.where(
            exists().where(
                article_tags.c.article_id == articles.c.id,
                article_tags.c.tag_key == tag.lower(),
            )
        )
    query = query.order_by(articles.c.published.desc(), articles.c.id).limit(limit)
    return with_translations(conn, [load(guid, data) for guid, data in conn.execute(query)])


# A tag on at most this many articles is read through its own rows: walking every live
# article newest first until ``limit`` of them have it would read the whole store.
RARE_TAG = 1000


def _rare(conn: Connection, tag: str) -> list[str] | None:
    """The ids of the articles with ``tag``, if it is rare; None if it is not."""
    query = select(article_tags.c.article_id).where(article_tags.c.tag_key == tag)
    ids = list(conn.scalars(query.limit(RARE_TAG + 1)))
    return ids if len(ids) <= RARE_TAG else None


def _newest(
    conn: Connection, ids: list[str], limit: int, language: str | None, section: str | None
) -> list[str]:
    """The ``limit`` newest live ones of ``ids`` (in the language and section, if given),
    chosen here from their primary-key rows: asked in SQL, an unanalysed SQLite walks
    the whole (status, published) index instead."""
    c = articles.c
    query = select(c.id, c.status, c.published, c.language, c.section)
    found = []
    for chunk in chunks(ids, 500):
        for row in conn.execute(query.where(c.id.in_(chunk))):
            if (
                row.status == LIVE
                and (not language or row.language == language.lower())
                and (not section or row.section == section)
            ):
                found.append(row)
    found.sort(key=lambda row: row.id)
    found.sort(key=lambda row: row.published, reverse=True)
    return [row.id for row in found[:limit]]


def recent(conn: Connection, since: dt.datetime) -> list[Article]:
    """Live articles published at or after ``since``, oldest first."""
    query = (
        select(articles.c.guid, articles.c.data)
        .where(articles.c.status == LIVE, articles.c.published >= naive_utc(since))
        .order_by(articles.c.published, articles.c.id)
    )
    return with_translations(conn, [load(*row) for row in conn.execute(query)])


def _by_id(conn: Connection, ids: list[str]) -> list[Article]:
    """The articles ``ids`` names, in that order (by primary key alone)."""
    found = {}
    query = select(articles.c.id, articles.c.guid, articles.c.data)
    for chunk in chunks(ids, 500):
        for id_, guid, data in conn.execute(query.where(articles.c.id.in_(chunk))):
            found[id_] = load(guid, data)
    return [found[id_] for id_ in ids if id_ in found]


def get(conn: Connection, article_id: str) -> Article | None:
    row = conn.execute(
        select(articles.c.guid, articles.c.data).where(articles.c.id == article_id)
    ).first()
    return with_translations(conn, [load(*row)])[0] if row else None


def with_translations(conn: Connection, found: list[Article]) -> list[Article]:
    """Link each article to its other languages: the whole translation_of family."""
    roots = sorted({a.translation_of or a.id for a in found})
    if not roots:
        return found
    family: dict[str, set[str]] = {}  # root -> the ids of its live members
    # Two lookups, each served by its own index (the primary key; translation_of). One
    # query with ``id IN … OR translation_of IN …`` made SQLite read every live article
    # through the status index, once per chunk. ``status`` is checked here rather than
    # in SQL so that no planner can prefer its index (an unanalysed SQLite may).
    query = select(articles.c.id, articles.c.status, articles.c.translation_of)
    for column in (articles.c.id, articles.c.translation_of):
        for chunk in chunks(roots, 500):
            for id_, status, translation_of in conn.execute(query.where(column.in_(chunk))):
                if status == LIVE:
                    family.setdefault(translation_of or id_, set()).add(id_)
    # Only members not already at hand are read whole (posting's candidates are most
    # of their own families: reading them twice doubled its time).
    known = {a.id: a for a in found}
    wanted = {i for ids in family.values() if len(ids) > 1 for i in ids} - known.keys()
    known.update((a.id, a) for a in _by_id(conn, sorted(wanted)))
    linked = []
    for article in found:
        members = family.get(article.translation_of or article.id, set())
        others = [
            Translation(id=m.id, language=m.language, url=m.url, title=m.title)
            for m in (known[i] for i in sorted(members) if i != article.id and i in known)
        ]
        linked.append(
            article.model_copy(update={"translations": tuple(others)}) if others else article
        )
    return linked


def load(guid: str, data: str) -> Article:
    return Article.model_validate_json(data).model_copy(update={"guid": guid})
