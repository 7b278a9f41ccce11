"""Ingest: scan every source and store what changed, one source at a time.

Nothing one item holds stops the others: sources reject a bad file, feed entry or post
with its location, and what is left of a scan is checked here against what the store
can hold before it is applied. A source that cannot be read, whether it says so
(``SourceUnavailable``) or fails in a way nobody foresaw, is reported in one line and
skipped; the others still go in. Only an unreachable state store stops the run.

Each source's result is stored in a single transaction, so an interrupted ingest never
leaves half a source applied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from pipeline.clock import system_clock
from pipeline.errors import Problem, SourceUnavailable, StoreError
from pipeline.model import Item, Scan
from pipeline.schema import article_tags, articles, width
from pipeline.sources import Source
from pipeline.sources.build import in_range, one_line, shorten
from pipeline.store import ApplyReport, Store, permanent_id

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    """Per source: what changed in the store, or why the source could not be read."""

    stored: dict[str, ApplyReport] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    @property
    def rejected(self) -> list[Problem]:
        return [problem for report in self.stored.values() for problem in report.rejected]

    @property
    def ok(self) -> bool:
        return not self.rejected and not self.unavailable


def ingest(
    sources: list[Source],
    store: Store,
    on_source: Callable[[str], None] = lambda name: None,
) -> IngestReport:
    """Scan each source with what the store knows of it and store the result."""
    report = IngestReport()
    for source in sources:
        name = source.name
        on_source(name)
        try:
            known, cursor = store.known(name), store.cursor(name)
        except (StoreError, SQLAlchemyError) as exc:
            raise _store_error(store, exc) from exc
        try:
            scan = source.scan(known, cursor)
        except SourceUnavailable as exc:
            report.unavailable[name] = str(exc)
            continue
        except Exception as exc:  # a bug or an input nobody foresaw: this source only
            log.debug("source %s failed", name, exc_info=True)
            report.unavailable[name] = f"could not be read: {one_line(exc)}"
            continue
        scan = storable(scan, store.site_url)
        try:
            report.stored[name] = store.apply(name, scan)
        except (StoreError, OperationalError, InterfaceError) as exc:
            raise _store_error(store, exc) from exc
        except SQLAlchemyError as exc:  # the database refused this scan's data
            log.debug("source %s not stored", name, exc_info=True)
            report.unavailable[name] = f"could not be stored: {one_line(exc, 200)}"
        except Exception as exc:
            log.debug("source %s not stored", name, exc_info=True)
            report.unavailable[name] = f"could not be stored: {one_line(exc)}"
    return report


def storable(scan: Scan, site_url: str) -> Scan:
    """``scan`` without items the store could not hold, each rejected with its reason.

    One such item would otherwise fail the whole source's transaction: a value longer
    than its column (PostgreSQL refuses, SQLite does not), a NUL or lone surrogate, a
    time out of range, or a key listed twice (its tags would be written twice).
    """
    changed: list[Item] = []
    seen: set[str] = set()
    for item in scan.changed:
        if item.key in seen:
            scan.rejected.append(_refused(item, "the source listed it twice; the first was kept"))
            continue
        seen.add(item.key)
        try:
            reason = _unstorable(item, site_url)
        except Exception as exc:
            reason = one_line(exc)
        if reason:
            scan.rejected.append(_refused(item, reason))
            scan.held.add(item.key)
            continue
        changed.append(item)
    scan.changed = changed
    return scan


def _unstorable(item: Item, site_url: str) -> str | None:
    article = item.article
    in_range(article.published)
    if article.updated is not None:
        in_range(article.updated)
    today = system_clock()
    columns = {
        "id": article.id,
        "item_key": item.key,
        "fingerprint": item.fingerprint,
        "guid": article.guid or permanent_id(article, site_url, today),
        "language": article.language,
        "section": article.section,
        "translation_of": article.translation_of,
    }
    texts = [(name, value, width(articles.c[name])) for name, value in columns.items()]
    limit = width(article_tags.c.tag_key)
    texts += [("tag", tag.lower(), limit) for tag in article.tags]
    for name, value, length in texts:
        if value is None:
            continue
        if len(value) > length:
            return f"its {name} is {len(value):,} characters long; at most {length:,} can be stored"
        if "\x00" in value:
            return f"its {name} contains a NUL character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate, e.g. from a file name not in UTF-8
            return f"its {name} is not valid Unicode text"
    article.model_dump_json()
    return None


def _refused(item: Item, reason: str) -> Problem:
    return Problem(
        shorten(item.article.origin, 1000),
        None,
        None,
        f"cannot be stored: {shorten(reason, 300)}",
        "the other articles were stored",
    )


def _store_error(store: Store, exc: Exception) -> StoreError:
    if isinstance(exc, StoreError):
        return exc
    url = store.engine.url.render_as_string(hide_password=True)
    return StoreError(f"the state store {url} cannot be used: {one_line(exc, 200)}")
