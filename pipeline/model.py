"""The Article: the one typed record every stage shares.

Sources build Articles, the store keeps them, and feeds, digests and channels read
them. An Article is immutable; a changed article is a new Article with the same ``id``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from pipeline.schema import article_tags, articles

# The widths of the state store's columns. PostgreSQL refuses a longer value, failing the
# whole source's transaction; SQLite keeps it. A source building an Article learns of it
# at once, as a ValueError it reports against the one file or entry.
LIMITS: dict[str, int] = {
    name: articles.c[name].type.length
    for name in ("id", "source", "language", "section", "translation_of")
}
TAG_LIMIT: int = article_tags.c.tag_key.type.length


class Translation(BaseModel):
    """A link from an article to the same article in another language."""

    model_config = ConfigDict(frozen=True)

    id: str
    language: str
    url: str
    title: str


class Article(BaseModel):
    """One published article, as every stage of the pipeline sees it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="Stable id; never derived from title or date.")
    source: str = Field(description="Name of the source that produced it.")
    origin: str = Field(description="Where it came from: a file path or an upstream URL/id.")
    url: str = Field(description="Canonical absolute link.")
    title: str
    authors: tuple[str, ...] = ()
    published: AwareDatetime
    updated: AwareDatetime | None = None
    language: str
    section: str
    tags: tuple[str, ...] = ()
    summary: str = Field(description="Plain-text excerpt: the given summary or a computed one.")
    body_html: str = Field(description="Sanitised HTML body.")
    read_minutes: int = Field(ge=1)
    image: str | None = None
    image_alt: str | None = None
    translation_of: str | None = Field(
        default=None, description="Id of the same article in another language."
    )
    translations: tuple[Translation, ...] = Field(
        default=(), description="Resolved by the store: the other languages of this article."
    )
    guid: str = Field(
        default="",
        description="Permanent feed id, assigned by the store on first ingest and never changed.",
    )

    def __init__(self, **data: Any) -> None:
        # Checked here rather than with Field(max_length=…): a plain ValueError reads as
        # one line in a source's rejection (pydantic's is a multi-line report quoting the
        # value), and articles already stored in SQLite stay loadable, since loading
        # (model_validate_json) does not pass through __init__.
        problem = too_long(data)
        if problem:
            raise ValueError(problem)
        super().__init__(**data)

    @property
    def modified(self) -> datetime:
        """The time readers should treat as the last change."""
        return self.updated or self.published

    def content_hash(self) -> str:
        """Hash of everything a reader could see; equal hashes mean nothing to re-publish."""
        visible = self.model_dump_json(exclude={"translations", "guid", "origin"})
        return hashlib.sha256(visible.encode()).hexdigest()


def too_long(data: dict[str, Any]) -> str | None:
    """Why a field is wider than its column in the state store, or None."""
    for name, limit in LIMITS.items():
        value = data.get(name)
        if isinstance(value, str) and len(value) > limit:
            return (
                f"`{name}` is {len(value):,} characters long; the state store keeps at most "
                f"{limit:,} — shorten it"
            )
    for tag in data.get("tags") or ():
        if isinstance(tag, str) and len(tag) > TAG_LIMIT:
            return (
                f"tag {tag[:20]!r}… is {len(tag):,} characters long; the state store keeps at "
                f"most {TAG_LIMIT:,} — shorten it"
            )
    return None
