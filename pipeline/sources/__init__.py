"""Sources: where articles come from. Each turns its input into Articles.

A source is scanned with what the store already knows about it (a fingerprint per
item key, and the source's saved cursor such as an HTTP ETag) and answers with a
``Scan`` (pipeline.model): the items that are new or changed, the ones seen unchanged,
the ones rejected (each a located Problem) and whether its listing was complete (so that
items it did not list are gone).

A source that can hand its items over one at a time is a ``StreamingSource`` too: its
``stream`` answers with the same findings as a ``Streamed`` (pipeline.storing), whose
items are read as the store writes them, so that an archive of any size is never held
in memory whole. The Markdown source streams file by file and the WordPress source page
by page; the feed source does not (one feed document is read whole anyway).

Every kind of source, built-in or plug-in, is an entry point of group
``pipeline.sources`` (pipeline.plugins): config ``type`` → a class with
``options_model`` and ``from_settings``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pipeline.plugins import SOURCES, Plugins
from pipeline.settings import SiteSettings, SourceBase

if TYPE_CHECKING:  # the store's modules are not needed to build sources
    import requests

    from pipeline.model import Scan
    from pipeline.storing import Streamed


@dataclass(frozen=True)
class SourceContext:
    """What a source may use: passed in, never reached for."""

    site: SiteSettings
    http: requests.Session


class Source(Protocol):
    name: str

    def scan(self, known: Mapping[str, str], cursor: Mapping[str, str]) -> Scan:
        """Read the source. ``known`` maps item key -> fingerprint stored last time."""
        ...


@runtime_checkable
class StreamingSource(Source, Protocol):
    def stream(self, known: Mapping[str, str], cursor: Mapping[str, str]) -> Streamed:
        """As ``scan``, but the changed items are yielded by ``Streamed.items`` while the
        source is read; the rest of ``Streamed.scan`` is final once they are exhausted.
        A source that cannot be read at all raises ``SourceUnavailable`` here already."""
        ...


class SourceType(Protocol):
    """What a ``pipeline.sources`` entry point names."""

    options_model: ClassVar[type[SourceBase]]
    """Its ``sources:`` entry: a SourceBase subclass with ``type: Literal["NAME"]``."""

    @classmethod
    def from_settings(cls, settings: Any, context: SourceContext) -> Source: ...


def build_sources(
    configured: tuple[SourceBase, ...],
    site: SiteSettings,
    http: requests.Session,
    plugins: Plugins | None = None,
) -> list[Source]:
    """Instantiate every configured source, each by the adapter its ``type`` names."""
    plugins = plugins or Plugins()
    context = SourceContext(site, http)
    return [
        _source_type(plugins, settings.type).from_settings(settings, context)
        for settings in configured
    ]


def _source_type(plugins: Plugins, name: str) -> SourceType:
    found: SourceType = plugins.load(SOURCES, name)
    return found
