"""Sources: where articles come from. Each turns its input into Articles.

A source is scanned with what the store already knows about it (a fingerprint per
item key, and the source's saved cursor such as an HTTP ETag) and answers with a
``Scan``: the items that are new or changed, the ones seen unchanged, the ones
rejected (each a located Problem) and whether its listing was complete (so that
items it did not list are gone). The registry maps a config ``type`` to its class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, assert_never

import requests

from pipeline.errors import Problem
from pipeline.model import Article
from pipeline.settings import (
    FeedSourceSettings,
    MarkdownSourceSettings,
    SiteSettings,
    SourceSettings,
    WordPressSourceSettings,
)


@dataclass(frozen=True)
class Item:
    """One article a source produced, keyed by where it lives in that source."""

    key: str
    fingerprint: str
    article: Article


@dataclass
class Scan:
    """What one scan of a source found."""

    changed: list[Item] = field(default_factory=list)
    unchanged: dict[str, str] = field(default_factory=dict)  # key -> (fresh) fingerprint
    rejected: list[Problem] = field(default_factory=list)
    held: set[str] = field(default_factory=set)  # unreadable this time: keep what is stored
    complete: bool = False  # True: keys in none of changed/unchanged/held no longer exist
    cursor: dict[str, str] | None = None  # replaces the saved cursor when not None


class Source(Protocol):
    name: str

    def scan(self, known: Mapping[str, str], cursor: Mapping[str, str]) -> Scan:
        """Read the source. ``known`` maps item key -> fingerprint stored last time."""
        ...


def build_sources(
    configured: tuple[SourceSettings, ...], site: SiteSettings, http: requests.Session
) -> list[Source]:
    """Instantiate every configured source."""
    return [_build(settings, site, http) for settings in configured]


def _build(settings: SourceSettings, site: SiteSettings, http: requests.Session) -> Source:
    # One case per config ``type``: each class takes only its own settings, and the type
    # checker sees a new settings class without a case here (assert_never). The imports
    # stay here so that startup does no work.
    from pipeline.sources.feed import FeedSource
    from pipeline.sources.markdown import MarkdownSource
    from pipeline.sources.wordpress import WordPressSource

    match settings:
        case MarkdownSourceSettings():
            return MarkdownSource(settings, site)
        case FeedSourceSettings():
            return FeedSource(settings, site, http)
        case WordPressSourceSettings():
            return WordPressSource(settings, site, http)
    assert_never(settings)
