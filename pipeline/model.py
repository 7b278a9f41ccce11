"""The Article: the one typed record every stage shares.

Sources build Articles, the store keeps them, and feeds, digests and channels read
them. An Article is immutable; a changed article is a new Article with the same ``id``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


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

    @property
    def modified(self) -> datetime:
        """The time readers should treat as the last change."""
        return self.updated or self.published

    def content_hash(self) -> str:
        """Hash of everything a reader could see; equal hashes mean nothing to re-publish."""
        visible = self.model_dump_json(exclude={"translations", "guid", "origin"})
        return hashlib.sha256(visible.encode()).hexdigest()
