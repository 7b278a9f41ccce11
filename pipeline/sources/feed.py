"""An upstream RSS 2.0 or Atom 1.0 feed, polled with a conditional GET.

The saved cursor holds the server's ``ETag`` and ``Last-Modified``; a ``304 Not
Modified`` answer means nothing changed and nothing is parsed. A feed is a moving
window, so a scan is never complete: entries that drop off the feed are kept.

Choices made here:

* Relative links in RSS resolve against the channel ``<link>`` (the site), in Atom
  against ``xml:base`` or the feed's own URL, as RFC 4287 says.
* Titles declared plain text still have their HTML entities decoded once: RSS titles
  are very often double-escaped (``&amp;#8217;``); only ``<`` and ``>`` stay literal.
* An entry's language is the one it declares (``xml:lang``), else the feed's
  (``<language>``, ``xml:lang``, ``Content-Language``), else the source's, else the
  site's; casing is normalised to BCP 47 (``zh-cn`` → ``zh-CN``).
* Atom entries without an author take the feed's authors (RFC 4287 §4.2.1); RSS
  entries do not take ``managingEditor``. A bare e-mail address is not an author name.
* The fingerprint hashes the whole parsed entry (not only id, date, title and body),
  so a changed tag or image is picked up even when the publisher keeps the date.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
from collections.abc import Mapping
from typing import Any, Self
from urllib.parse import urljoin

import feedparser
import requests
from lxml import etree

from pipeline.errors import Problem
from pipeline.model import Article, Item, Scan
from pipeline.redact import shown_url
from pipeline.settings import SiteSettings, normalise_language
from pipeline.settings.sources import FeedSourceSettings
from pipeline.sources import SourceContext
from pipeline.sources.build import make_article, one_line, shorten, slugify, upstream_link
from pipeline.sources.http import Fetched, Limits, fetch, unavailable
from pipeline.text import html_to_text

MEDIA = "http://search.yahoo.com/mrss/"
_ENTITY_DECLARATION = re.compile(rb"<!\s*ENTITY", re.IGNORECASE)
_PROLOG = 1_000_000  # a DOCTYPE comes before the root element, so near the start
_IMAGE_FILE = re.compile(r"\.(jpe?g|png|gif|webp|avif)(\?|$)", re.IGNORECASE)


class FeedSource:
    options_model = FeedSourceSettings

    @classmethod
    def from_settings(cls, settings: FeedSourceSettings, context: SourceContext) -> Self:
        return cls(settings, context.site, context.http)

    def __init__(
        self,
        settings: FeedSourceSettings,
        site: SiteSettings,
        http: requests.Session,
        limits: Limits | None = None,
    ):
        self.settings = settings
        self.site = site
        self.http = http
        self.name = settings.name
        self.limits = limits or Limits.of(settings)

    def scan(self, known: Mapping[str, str], cursor: Mapping[str, str]) -> Scan:
        s = self.settings
        headers = {}
        if cursor.get("etag"):
            headers["If-None-Match"] = cursor["etag"]
        if cursor.get("last_modified"):
            headers["If-Modified-Since"] = cursor["last_modified"]
        response = fetch(
            self.http, s.url, source=s.name, timeout=s.timeout, headers=headers, limits=self.limits
        )
        if response.status_code == 304:
            return Scan(unchanged={k: fp for k, fp in known.items()}, complete=False)
        prolog = response.content[:_PROLOG].replace(b"\0", b"")  # UTF-16/32 as ASCII
        if _ENTITY_DECLARATION.search(prolog):
            # Feeds never need their own entities, and nested ones ("billion laughs")
            # make the XML parser expand megabytes before it gives up, once per parse.
            detail = "it declares XML entities (<!ENTITY …>), which a feed never needs"
            raise unavailable(s.name, response, detail)
        try:
            parsed = _parse(response)
        except Exception as exc:  # feedparser's own bug on a hostile document
            raise unavailable(s.name, response, f"cannot parse it ({one_line(exc)})") from None
        meta = parsed.feed
        if parsed.bozo and not parsed.entries and not meta.get("title"):
            raise unavailable(
                s.name, response, f"not an RSS or Atom feed ({parsed.bozo_exception})"
            )
        validators = {"etag": "ETag", "last_modified": "Last-Modified"}
        new_cursor = {
            k: response.headers[h] for k, h in validators.items() if response.headers.get(h)
        }
        scan = Scan(complete=False, cursor=new_cursor)
        alts = _image_alts(response.content, len(parsed.entries))
        site = self.site.model_dump()
        defaults = (meta.get("language"), meta.get("link"), s.section, s.language, site)
        seen: set[str] = set()
        for number, entry in enumerate(parsed.entries):
            key = entry.get("id") or entry.get("link")
            if not key or not isinstance(key, str):
                scan.rejected.append(
                    self._problem(f"#{number + 1}", "it has neither an id nor a link")
                )
                continue
            if key in seen:
                scan.rejected.append(self._problem(key, "another entry has the same id; skipped"))
                continue
            seen.add(key)
            # One entry's oddity, whatever it raises, costs that entry only.
            try:
                fingerprint = _fingerprint(entry, alts[number], defaults)
                if known.get(key) == fingerprint:
                    scan.unchanged[key] = fingerprint
                    continue
                article = self._article(key, entry, parsed, alts[number])
            except ValueError as exc:
                scan.rejected.append(self._problem(key, str(exc)))
                continue
            except Exception as exc:
                scan.rejected.append(self._problem(key, f"cannot be read: {one_line(exc)}"))
                continue
            scan.changed.append(Item(key=key, fingerprint=fingerprint, article=article))
        return scan

    def _problem(self, key: str, reason: str) -> Problem:
        hint = "the publisher of the feed must fix this entry; the other entries were read"
        shown = shorten(key, 200)
        return Problem(shown_url(self.settings.url), None, None, f"entry {shown}: {reason}", hint)

    def _article(self, key: str, entry: Any, parsed: Any, alt: str | None) -> Article:
        s, meta = self.settings, parsed.feed
        title = html_to_text(_as_html(entry.get("title", ""), entry.get("title_detail")))
        if not title.strip():
            raise ValueError("it has no title")
        stamp = entry.get("published_parsed") or entry.get("updated_parsed")
        if not stamp:
            raise ValueError("it has no date (pubDate, published or updated)")
        published = _utc(stamp)
        stamp = dict.get(entry, "updated_parsed")  # not feedparser's fallback to published
        updated = _utc(stamp) if stamp else None
        content = next((c for c in entry.get("content", []) if c.get("type") != "text/plain"), None)
        content = content or next(iter(entry.get("content", [])), None)
        summary = entry.get("summary") or ""
        if alt and summary == alt:  # feedparser files <media:description> as the summary
            summary = ""
        summary_html = _as_html(summary, entry.get("summary_detail"))
        body = _body(content) if content else summary_html
        where = f"source {s.name}: entry {shorten(key, 200)}"
        url = upstream_link(entry.get("link"), base=meta.get("link"), entry=where, what="link")
        images, base = _images(entry), url or meta.get("link")
        image = next(
            (
                found
                for written in images
                if (found := upstream_link(written, base=base, entry=where, what="image"))
            ),
            None,
        )
        language = _language(
            *(c.get("language") for c in entry.get("content", [])),
            (entry.get("title_detail") or {}).get("language"),
            meta.get("language"),
        )
        return make_article(
            self.site,
            id=f"{s.name}:{key}",
            source=s.name,
            origin=key,
            title=title,
            published=published,
            updated=updated if updated and updated > published else None,
            body_html=body,
            summary=summary_html
            if content and summary and summary != content.get("value")
            else None,
            slug=slugify(entry.get("title", "")),
            section=s.section or s.name,
            language=language or s.language or self.site.language,
            authors=_authors(entry, parsed),
            tags=[t.get("term") or t.get("label") or "" for t in entry.get("tags", [])],
            image=image,
            image_alt=alt,
            url=url,
        )


def _parse(response: Fetched) -> Any:
    """Parse with feedparser, giving it the charset and the base for relative links."""
    headers = {
        "content-type": response.headers.get("Content-Type", ""),
        "content-location": response.url,
    }
    if response.headers.get("Content-Language"):
        headers["content-language"] = response.headers["Content-Language"]
    content = _CHARREF.sub(_no_surrogate, response.content)
    parsed = feedparser.parse(io.BytesIO(content), response_headers=headers)
    site = urljoin(response.url, parsed.feed.get("link", ""))
    if parsed.get("version", "").startswith("rss") and site != response.url:
        headers["content-location"] = site  # RSS links are relative to the site, not the feed
        parsed = feedparser.parse(io.BytesIO(content), response_headers=headers)
    return parsed


_CHARREF = re.compile(rb"&#([xX][0-9a-fA-F]{1,16}|[0-9]{1,20});")


def _no_surrogate(match: re.Match[bytes]) -> bytes:
    """A character reference to a surrogate or past U+10FFFF becomes U+FFFD: feedparser's
    lenient parser (used for feeds that are not well-formed) raises on those."""
    digits = match.group(1)
    number = int(digits[1:], 16) if digits[:1] in (b"x", b"X") else int(digits)
    return b"&#xFFFD;" if 0xD800 <= number <= 0xDFFF or number > 0x10FFFF else match.group()


def _fingerprint(entry: Any, alt: str | None, defaults: tuple) -> str:
    data = json.dumps([entry, alt, defaults], sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()


def _as_html(value: str, detail: Mapping | None) -> str:
    """Text feedparser declared plain becomes HTML; entities are still decoded (see above)."""
    if detail and detail.get("type") == "text/plain" and detail.get("value") == value:
        return value.replace("<", "&lt;").replace(">", "&gt;")
    return value


def _body(content: Mapping) -> str:
    value = content.get("value", "")
    if content.get("type") != "text/plain":
        return value
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "".join(f"<p>{p.strip()}</p>" for p in re.split(r"\n\s*\n", value) if p.strip())


def _utc(stamp: Any) -> dt.datetime:
    return dt.datetime(*stamp[:6]).replace(tzinfo=dt.UTC)


def _language(*candidates: str | None) -> str | None:
    """The first candidate that is a language tag."""
    for value in candidates:
        try:
            return normalise_language(value or "")
        except ValueError:
            continue
    return None


def _authors(entry: Any, parsed: Any) -> list[str]:
    def names(holder: Any) -> list[str]:
        found = [a.get("name", "") for a in holder.get("authors", []) if a.get("name")]
        single = holder.get("author", "")
        return found or ([single] if single and "@" not in single else [])

    found = names(entry)
    if not found and parsed.get("version", "").startswith("atom"):
        found = names(parsed.feed)
    return found


def _images(entry: Any) -> list[str]:
    """The entry's image URLs as written, best first: media:content, media:thumbnail,
    an image enclosure."""

    def is_image(kind: str | None, url: str) -> bool:
        return (kind or "").startswith("image") or (not kind and bool(_IMAGE_FILE.search(url)))

    candidates = [
        m["url"]
        for m in entry.get("media_content", [])
        if m.get("url") and is_image(m.get("medium") or m.get("type"), m["url"])
    ]
    candidates += [m["url"] for m in entry.get("media_thumbnail", []) if m.get("url")]
    candidates += [
        link["href"]
        for link in entry.get("links", [])
        if link.get("rel") == "enclosure" and (link.get("type") or "").startswith("image/")
    ]
    return candidates


def _image_alts(data: bytes, count: int) -> list[str | None]:
    """Per entry, the media:description (or media:title) of its image media:content.

    feedparser folds these into the entry's summary, so they are read from the XML
    here; a feed lxml cannot parse strictly simply has no alt texts.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except (etree.XMLSyntaxError, ValueError):
        return [None] * count
    alts: list[str | None] = []
    for item in root.xpath("//*[local-name()='item' or local-name()='entry']"):
        alt = None
        for media in item.iter(f"{{{MEDIA}}}content"):
            kind = media.get("medium") or media.get("type") or ""
            if kind.startswith("image") or _IMAGE_FILE.search(media.get("url", "")):
                text = media.findtext(f"{{{MEDIA}}}description") or media.findtext(
                    f"{{{MEDIA}}}title"
                )
                alt = (text or "").strip() or None
                break
        alts.append(alt)
    return alts if len(alts) == count else [None] * count
