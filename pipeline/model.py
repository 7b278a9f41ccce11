"""The Article: the one typed record every stage shares.

Sources build Articles, the store keeps them, and feeds, digests and channels read
them. An Article is immutable; a changed article is a new Article with the same ``id``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from pipeline.errors import Problem
from pipeline.schema import ARTICLE_WIDTHS, TAG_WIDTH
from pipeline.urls import UnsafeURL, as_uri, safe_link

# The widths of the state store's columns. PostgreSQL refuses a longer value, failing the
# whole source's transaction; SQLite keeps it. A source building an Article learns of it
# at once, as a ValueError it reports against the one file or entry.
LIMITS: dict[str, int] = {
    name: ARTICLE_WIDTHS[name] for name in ("id", "source", "language", "section", "translation_of")
}
TAG_LIMIT: int = TAG_WIDTH


class Translation(BaseModel):
    """A link from an article to the same article in another language."""

    model_config = ConfigDict(frozen=True)

    id: str
    language: str
    url: str
    title: str

    @field_validator("url")
    @classmethod
    def _uri(cls, value: str) -> str:
        return _stored_uri(value)


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
        # value). NB: pydantic calls a custom __init__ from model_validate_json too, so
        # this also runs when the store loads an article.
        problem = too_long(data)
        if problem:
            raise ValueError(problem)
        super().__init__(**data)

    # Every Article's links are URIs, whoever built it: feeds, JSON Feed, email, channels
    # and pages need no URL handling of their own. These run when the store loads an
    # article too (an IRI stored by an earlier version goes out encoded), so they never
    # refuse one: an unreadable store would stop every feed and digest. An image that
    # may not be shown is dropped here; refusing a bad `url:`/`image:` with its line is
    # the sources' part (``published_links``, called by ``make_article``).
    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _stored_uri(value)

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        try:
            return safe_link(value, base=info.data.get("url"))
        except UnsafeURL:
            return None

    @property
    def modified(self) -> datetime:
        """The time readers should treat as the last change."""
        return self.updated or self.published

    def content_hash(self) -> str:
        """Hash of everything a reader could see; equal hashes mean nothing to re-publish."""
        visible = self.model_dump_json(exclude={"translations", "guid", "origin"})
        return hashlib.sha256(visible.encode()).hexdigest()


def published_links(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with ``url`` and ``image`` as the URIs readers get; ``UnsafeURL`` otherwise.

    The rule for a new article: ``url`` must be an absolute http(s) link; ``image`` an
    http(s) link, possibly relative to ``url``. Both become URIs (``冰川消融`` →
    ``%E5%86%B0…``, hosts in IDNA). ``UnsafeURL.field`` names the field at fault.
    """
    links = dict(data)
    url, image = data.get("url"), data.get("image")
    if isinstance(url, str):
        try:
            links["url"] = url = safe_link(url)
        except UnsafeURL as exc:
            raise exc.of("url") from None
    if isinstance(image, str):
        try:
            links["image"] = safe_link(image, base=url if isinstance(url, str) else None)
        except UnsafeURL as exc:
            raise exc.of("image") from None
    return links


def _stored_uri(value: str) -> str:
    try:
        return as_uri(value)
    except UnsafeURL:  # a host IDNA refuses: kept as it was stored
        return value


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


# -- what a source's scan found (the sources produce it, the store applies it) --------


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
