"""Ingest: scan every source and store what changed, one source at a time.

Nothing one item holds stops the others: sources reject a bad file, feed entry or post
with its location, and what is left of a scan is checked here against what the store
can hold before it is applied. A source that cannot be read, whether it says so
(``SourceUnavailable``) or fails in a way nobody foresaw, is reported in one line and
skipped; the others still go in. Only an unreachable state store stops the run.

A source that can stream (``StreamingSource``: Markdown file by file, WordPress page by
page) is written as it is read, 500 items to a transaction (``pipeline.storing``);
removals and the source's cursor are applied only once its whole scan is done. An ingest
that is killed keeps the batches it committed and removes nothing: running it again
stores the rest, and nothing twice. Other sources (the feed source) answer with one
``Scan``, stored the same way.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from pipeline.clock import system_clock
from pipeline.errors import Problem, SourceUnavailable, StoreError
from pipeline.model import Item, Scan
from pipeline.schema import ARTICLE_COLUMN_WIDTHS
from pipeline.sources import Source, StreamingSource
from pipeline.sources.build import in_range, one_line, shorten
from pipeline.store import Store
from pipeline.storing import ApplyReport, Streamed, permanent_id
from pipeline.widths import TAG_WIDTH

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
            streamed = _stream(source, known, cursor)
        except SourceUnavailable as exc:
            report.unavailable[name] = str(exc)
            continue
        except Exception as exc:  # a bug or an input nobody foresaw: this source only
            log.debug("source %s failed", name, exc_info=True)
            report.unavailable[name] = f"could not be read: {one_line(exc)}"
            continue
        guarded = _Guarded(streamed)
        items = storable_items(guarded, streamed.scan, store.site_url)
        try:
            report.stored[name] = store.apply(name, Streamed(items, streamed.scan))
        except (StoreError, OperationalError, InterfaceError) as exc:
            raise _store_error(store, exc) from exc
        except SQLAlchemyError as exc:  # the database refused this scan's data
            log.debug("source %s not stored", name, exc_info=True)
            report.unavailable[name] = f"could not be stored: {one_line(exc, 200)}"
        except Exception as exc:
            log.debug("source %s not stored", name, exc_info=True)
            report.unavailable[name] = f"could not be stored: {one_line(exc)}"
        if guarded.failure is not None:  # what it yielded before is stored; nothing removed
            failure = guarded.failure
            log.debug("source %s failed", name, exc_info=failure)
            report.unavailable[name] = (
                str(failure)
                if isinstance(failure, SourceUnavailable)
                else f"could not be read: {one_line(failure)}"
            )
    return report


def _stream(source: Source, known: dict[str, str], cursor: dict[str, str]) -> Streamed:
    if isinstance(source, StreamingSource):
        return source.stream(known, cursor)
    scan = source.scan(known, cursor)
    return Streamed(scan.changed, dataclasses.replace(scan, changed=[]))


class _Guarded:
    """A source's items until it fails, if it does: the failure is kept for the report,
    and the scan marked incomplete and its cursor dropped, so that a source that stopped
    half-way removes nothing and is read from the start next time."""

    def __init__(self, streamed: Streamed):
        self.streamed = streamed
        self.failure: Exception | None = None

    def __iter__(self) -> Iterator[Item]:
        items = iter(self.streamed.items)
        while True:
            try:
                item = next(items)
            except StopIteration:
                return
            except Exception as exc:  # the source's, not the store's: this source only
                self.failure = exc
                self.streamed.scan.complete = False
                self.streamed.scan.cursor = None
                return
            yield item


def storable(scan: Scan, site_url: str) -> Scan:
    """``scan`` without items the store could not hold, each rejected with its reason."""
    scan.changed = list(storable_items(list(scan.changed), scan, site_url))
    return scan


def storable_items(items: Iterable[Item], scan: Scan, site_url: str) -> Iterator[Item]:
    """``items`` without those the store could not hold, each rejected (in ``scan``)
    with its reason.

    One such item would otherwise fail its whole batch: a value longer than its column
    (PostgreSQL refuses, SQLite does not), a NUL or lone surrogate, a time out of range,
    or a key listed twice (its tags would be written twice).
    """
    seen: set[str] = set()
    today = system_clock()  # for the width of a feed id not yet given (its date part)
    for item in items:
        if item.key in seen:
            scan.rejected.append(_refused(item, "the source listed it twice; the first was kept"))
            continue
        seen.add(item.key)
        try:
            reason = _unstorable(item, site_url, today)
        except Exception as exc:
            reason = one_line(exc)
        if reason:
            scan.rejected.append(_refused(item, reason))
            scan.held.add(item.key)
            continue
        yield item


def _unstorable(item: Item, site_url: str, today: dt.datetime) -> str | None:
    article = item.article
    in_range(article.published)
    if article.updated is not None:
        in_range(article.updated)
    columns = {
        "id": article.id,
        "item_key": item.key,
        "fingerprint": item.fingerprint,
        "guid": article.guid or permanent_id(article, site_url, today),
        "language": article.language,
        "section": article.section,
        "translation_of": article.translation_of,
    }
    texts = [(name, value, ARTICLE_COLUMN_WIDTHS[name]) for name, value in columns.items()]
    texts += [("tag", tag.lower(), TAG_WIDTH) for tag in article.tags]
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
