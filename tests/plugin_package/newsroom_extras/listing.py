"""A plain-text listing of a feed: its title, then one line per article."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.feeds import FeedSpec
from pipeline.model import Article


@dataclass(frozen=True)
class TextListing:
    filename: str = "articles.txt"
    media_type: str = "text/plain"

    def render(self, spec: FeedSpec, articles: Sequence[Article]) -> bytes:
        lines = [spec.title, ""]
        lines += [f"{a.published.date().isoformat()}  {a.title}  <{a.url}>" for a in articles]
        return ("\n".join(lines) + "\n").encode("utf-8")


TEXT_LISTING = TextListing()
