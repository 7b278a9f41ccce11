"""Turning what a source read into an Article: the rules every source shares.

Sanitising the body, the excerpt, the read-time, the default URL and the removal of
characters XML forbids live here once, so a feed item and a Markdown file that say
the same thing become the same Article.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import zoneinfo
from collections.abc import Iterable

from pipeline import text
from pipeline.model import Article
from pipeline.settings import SiteSettings, normalise_language


def parse_date(value: object, timezone: str) -> dt.datetime:
    """ISO 8601 date or date-time; one written without a zone takes ``timezone``.

    Raises ValueError with a message a person can act on.
    """
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and value.strip():
        raw = value.strip()
        if re.match(r"^\d{4}-\d\d-\d\d \d", raw):
            raw = raw.replace(" ", "T", 1)
        try:
            parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"{value!r} is not an ISO 8601 date; write e.g. 2024-03-01 or "
                "2024-03-01T09:30+05:45"
            ) from None
    else:
        raise ValueError("expected a date such as 2024-03-01 or 2024-03-01T09:30+05:45")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zoneinfo.ZoneInfo(timezone))
    return parsed


def slugify(value: str) -> str:
    """URL path segment: lower-case letters and digits of any script, joined by hyphens."""
    value = unicodedata.normalize("NFKC", value).lower()
    value = re.sub(r"^\d{4}-\d{2}-\d{2}[-_]", "", value)  # a date prefix in a file name
    return re.sub(r"[^\w]+", "-", value).strip("-_") or "article"


def make_article(
    site: SiteSettings,
    *,
    id: str,
    source: str,
    origin: str,
    title: str,
    published: dt.datetime,
    body_html: str,
    slug: str,
    section: str,
    language: str | None = None,
    authors: Iterable[str] = (),
    tags: Iterable[str] = (),
    summary: str | None = None,
    image: str | None = None,
    image_alt: str | None = None,
    url: str | None = None,
    updated: dt.datetime | None = None,
    translation_of: str | None = None,
) -> Article:
    """Build an Article, applying the shared rules; raises ValueError for unusable input.

    ``title`` is plain text (a source with HTML titles converts them first);
    ``body_html`` and ``summary`` are HTML and are sanitised here. A given summary is
    bounded by ``site.excerpt_length`` like a computed one, because upstream feeds
    often put the whole article in their description.
    """
    clean = text.xml_safe
    body = text.sanitize_html(clean(body_html))
    plain = text.html_to_text(body)
    given_summary = text.html_to_text(text.sanitize_html(clean(summary))) if summary else ""
    title_text = " ".join(clean(title).split())
    if not title_text:
        raise ValueError("the title is empty")
    return Article(
        id=id,
        source=source,
        origin=origin,
        url=url or f"{site.url}/{slugify(section)}/{slug}/",
        title=title_text,
        authors=tuple(a for a in (clean(a).strip() for a in authors) if a),
        published=published,
        updated=updated,
        language=normalise_language(language or site.language),
        section=section,
        tags=tuple(dict.fromkeys(t for t in (clean(str(t)).strip() for t in tags) if t)),
        summary=text.excerpt(given_summary or plain, site.excerpt_length),
        body_html=body,
        read_minutes=text.read_minutes(plain),
        image=clean(image) if image else None,
        image_alt=clean(image_alt) if image_alt else None,
        translation_of=translation_of,
    )
