"""Turning what a source read into an Article: the rules every source shares.

Sanitising the body, the excerpt, the read-time, the default URL and the removal of
characters XML forbids live here once, so a feed item and a Markdown file that say
the same thing become the same Article.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
import unicodedata
import zoneinfo
from collections.abc import Iterable

from pipeline import text
from pipeline.model import Article, published_links
from pipeline.redact import shown_url
from pipeline.settings import SiteSettings, normalise_language
from pipeline.urls import WEB_URL, UnsafeURL, safe_link

log = logging.getLogger(__name__)


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
    return in_range(parsed, value)


# A day inside datetime's range on each side, so that showing the moment in any time
# zone (feeds, digests, the store's UTC column) cannot overflow.
_EARLIEST = dt.datetime(1, 1, 2, tzinfo=dt.UTC)
_LATEST = dt.datetime(9999, 12, 30, tzinfo=dt.UTC)


def in_range(moment: dt.datetime, written: object = None) -> dt.datetime:
    """``moment`` if every time zone can show it; else ValueError."""
    try:
        ok = _EARLIEST <= moment.astimezone(dt.UTC) <= _LATEST
    except (OverflowError, ValueError):
        ok = False
    if not ok:
        shown = written if written is not None else moment.isoformat()
        raise ValueError(f"{shown!r} is out of range; use a date between 0001-01-02 and 9999-12-30")
    return moment


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An unexpected exception as a person reads it: its type and first line, with any
    URL's credentials masked (exception texts often repeat the URL they failed on)."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    first = WEB_URL.sub(lambda m: shown_url(m.group()), first)
    return shorten(f"{type(exc).__name__}: {first}" if first else type(exc).__name__, limit)


def shorten(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, for quoting untrusted text in a message."""
    value = value.encode("utf-8", "backslashreplace").decode("utf-8")  # lone surrogates
    return value if len(value) <= limit else value[: limit - 1] + "…"


def slugify(value: str) -> str:
    """URL path segment: lower-case letters and digits of any script, joined by hyphens."""
    value = unicodedata.normalize("NFKC", value).lower()
    value = re.sub(r"^\d{4}-\d{2}-\d{2}[-_]", "", value)  # a date prefix in a file name
    return re.sub(r"[^\w]+", "-", value).strip("-_") or "article"


@functools.lru_cache(maxsize=64)  # a source has a few sections; slugify costs ~3 µs each time
def _section_path(section: str) -> str:
    return slugify(section)


def upstream_link(value: object, *, base: str | None, entry: str, what: str) -> str | None:
    """An upstream entry's link or image as a URI, or None when it is not one readers may
    follow (``javascript:``, ``data:``…): the field is dropped with a warning and the entry
    kept, as feed readers do with such links (feedparser blanks them). Without its link
    the article takes the default URL; without its image it has none."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return safe_link(value, base=base or None)
    except UnsafeURL as exc:
        log.warning("%s: %s dropped: %s", entry, what, exc.problem)
        return None


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
    often put the whole article in their description. ``url`` (default
    ``site.url/SECTION/SLUG/``) must be an absolute http(s) link and ``image`` an http(s)
    link, possibly relative to ``url``; both leave as URIs, and ``UnsafeURL`` (a
    ValueError naming the field) refuses anything else.
    """
    clean = text.xml_safe
    # Checked first (UnsafeURL otherwise), as the body's relative links resolve against it.
    links = published_links(
        {"url": url or f"{site.url}/{_section_path(section)}/{slug}/", "image": image or None}
    )
    url = links["url"]
    # Relative links in the body resolve against the article's page, as in a browser, so
    # they still work in an email or a feed reader; unsafe ones are dropped with a warning.
    body = text.sanitize_html(clean(body_html), base_url=url, article=origin)
    plain = text.html_to_text(body)
    given_summary = text.html_to_text(text.sanitize_html(clean(summary))) if summary else ""
    title_text = " ".join(clean(title).split())
    if not title_text:
        raise ValueError("the title is empty")
    in_range(published)
    if updated is not None:
        in_range(updated)
    return Article(
        id=id,
        source=source,
        origin=origin,
        url=url,
        title=title_text,
        authors=tuple(a for a in (clean(a).strip() for a in authors) if a),
        published=published,
        updated=updated,
        language=normalise_language(language or site.language),
        section=section,
        tags=tuple(dict.fromkeys(t for t in (clean(str(t)).strip() for t in tags) if t)),
        summary=text.excerpt(given_summary or plain, site.excerpt_length, columns=True),
        body_html=body,
        read_minutes=text.read_minutes(plain),
        image=links["image"],
        image_alt=clean(image_alt) if image_alt else None,
        translation_of=translation_of,
    )
