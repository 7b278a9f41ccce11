"""Ingest: scan every source and store what changed, one source at a time.

A source that cannot be read is reported and skipped; the others still go in. Each
source's result is stored in a single transaction, so an interrupted ingest never
leaves half a source applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.errors import Problem, SourceUnavailable
from pipeline.sources import Source
from pipeline.store import ApplyReport, Store


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
        on_source(source.name)
        try:
            scan = source.scan(store.known(source.name), store.cursor(source.name))
        except SourceUnavailable as exc:
            report.unavailable[source.name] = str(exc)
            continue
        report.stored[source.name] = store.apply(source.name, scan)
    return report
